/**
 * Reads a plan file (what `spillway plan --out` writes) for simulation, validating every field it uses.
 */
import { asObject, child, type FieldContext, readNumber, readEnum, readObject, readString } from "../core/fields.js";
import { parseModelSpec } from "../core/model-spec.js";
import { parsePolicy } from "../core/policy.js";
import { checkLayerGroups } from "../planner/spillway/evaluate-policy.js";
import { readJsonFile } from "../core/read-json-file.js";
import type { PlanToSimulate, PlannedFigures } from "./simulate.js";

export interface PlanFile extends PlanToSimulate {
  readonly hardware: string;
  readonly hardwareSource: string | undefined;
  readonly schedule: "spillway" | "flexgen" | undefined;
  readonly capacityBytes: { gpu: number; cpu: number; disk: number } | undefined;
}

function readTiers(o: Record<string, unknown>, key: string, ctx: FieldContext): { gpu: number; cpu: number; disk: number } {
  const c = child(ctx, key);
  const t = readObject(o, key, ctx);
  return { gpu: readNumber(t, "gpu", c, { min: 0 }), cpu: readNumber(t, "cpu", c, { min: 0 }), disk: readNumber(t, "disk", c, { min: 0 }) };
}

export function parsePlanFile(data: unknown, source: string): PlanFile {
  const ctx: FieldContext = { source, path: "" };
  const o = asObject(data, ctx);
  const modelSpec = parseModelSpec(readObject(o, "modelSpec", ctx), `${source} (modelSpec)`);
  const workloadCtx = child(ctx, "workload");
  const w = readObject(o, "workload", ctx);
  const workload = { promptLen: readNumber(w, "promptLen", workloadCtx, { min: 1, integer: true }), genLen: readNumber(w, "genLen", workloadCtx, { min: 1, integer: true }) };
  const policy = parsePolicy(o.policy, child(ctx, "policy"));
  checkLayerGroups(modelSpec, policy, source);
  const schedule = o.schedule === undefined ? undefined : readEnum(o, "schedule", ctx, ["spillway", "flexgen"] as const);
  let planned: PlannedFigures | undefined;
  let capacityBytes: PlanFile["capacityBytes"];
  if (o.predicted !== undefined) {
    const pc = child(ctx, "predicted");
    const p = readObject(o, "predicted", ctx);
    const b = readObject(p, "bytes", pc);
    const bc = child(pc, "bytes");
    planned = {
      throughputTokensPerSecond: readNumber(p, "throughputTokensPerSecond", pc, { greaterThan: 0 }),
      prefillSeconds: readNumber(p, "prefillSeconds", pc, { min: 0 }),
      decodeSeconds: readNumber(p, "decodeSeconds", pc, { min: 0 }),
      peakBytes: readTiers(p, "peakBytes", pc),
      bytes: { h2d: readNumber(b, "h2d", bc, { min: 0 }), d2h: readNumber(b, "d2h", bc, { min: 0 }), diskRead: readNumber(b, "diskRead", bc, { min: 0 }), diskWrite: readNumber(b, "diskWrite", bc, { min: 0 }) },
      ...(typeof p.busySeconds === "object" && p.busySeconds !== null ? { busySeconds: p.busySeconds as Record<string, number> } : {}),
      ...(p.experts !== undefined ? { experts: { expectedHitRate: readNumber(readObject(p, "experts", pc), "expectedHitRate", child(pc, "experts"), { min: 0, max: 1 }) } } : {}),
    };
    if (p.capacityBytes !== undefined) capacityBytes = readTiers(p, "capacityBytes", pc);
  }
  return {
    modelSpec, workload, policy, hardware: readString(o, "hardware", ctx),
    hardwareSource: o.hardwareSource === undefined ? undefined : readString(o, "hardwareSource", ctx),
    schedule: schedule as PlanFile["schedule"], capacityBytes, ...(planned ? { planned } : {}),
  };
}

export function readPlanFile(path: string): PlanFile {
  return parsePlanFile(readJsonFile(path), path === "-" ? "<stdin>" : path);
}
