/**
 * Plan files: readPlanFile() and parsePlanFile() are core/parse-plan.ts's readPlanFile() and parsePlan(),
 * under the names the CLI and the library have always used.
 */
export { parsePlan as parsePlanFile, readPlanFile } from "../core/parse-plan.js";
