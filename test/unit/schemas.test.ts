import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { HardwareProfile } from "../../core/hardware-profile.js";
import { parsePlan as parsePlanFile } from "../../core/parse-plan.js";
import type { Plan } from "../../core/plan.js";
import { loadShippedProfile } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { accelerateBaseline } from "../../planner/baselines.js";
import { plan } from "../../planner/plan.js";
import type { planSchema } from "../../schemas/definitions.js";
import { generatedSchemaFiles, SCHEMAS_DIR } from "../../schemas/generate-schemas.js";
import { arr, assertMatches, type Infer, int, type Jsonify, obj, opt, str } from "../../schemas/schema-builder.js";
import { validate } from "../../schemas/validate.js";
import { simulate } from "../../simulator/simulate.js";

const PROFILES_DIR = fileURLToPath(new URL("../../../profiles/", import.meta.url));
const schemaFile = (name: string) =>
  JSON.parse(readFileSync(join(SCHEMAS_DIR, name), "utf8")) as Record<string, unknown>;
const asJson = (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown;
const model = (name: string) => findCatalogueModel(name)!;

function assertValid(value: unknown, schema: Record<string, unknown>, what: string): void {
  const errors = validate(value, schema);
  assert.deepEqual(errors, [], `${what}: ${errors.slice(0, 5).join("; ")}`);
}

test("the committed schema files equal the generator's output (npm run schemas)", () => {
  const generated = generatedSchemaFiles();
  assert.deepEqual(Object.keys(generated).sort(), [
    "plan.schema.json",
    "profile.schema.json",
    "simulation.schema.json",
  ]);
  for (const [name, text] of Object.entries(generated)) {
    assert.equal(readFileSync(join(SCHEMAS_DIR, name), "utf8"), text, `schemas/${name} is stale: run npm run schemas`);
    const doc = JSON.parse(text) as Record<string, unknown>;
    assert.equal(doc.$schema, "https://json-schema.org/draft/2020-12/schema");
  }
  const published = readdirSync(SCHEMAS_DIR)
    .filter((f) => f.endsWith(".schema.json"))
    .sort();
  assert.deepEqual(published, Object.keys(generated).sort(), "no stray schema files");
});

test("every shipped profile validates against the profile schema; broken ones do not", () => {
  const schema = schemaFile("profile.schema.json");
  const files = readdirSync(PROFILES_DIR).filter((f) => f.endsWith(".json"));
  assert.ok(files.length >= 8);
  for (const f of files) assertValid(JSON.parse(readFileSync(join(PROFILES_DIR, f), "utf8")), schema, f);
  const t4 = JSON.parse(readFileSync(join(PROFILES_DIR, "t4.json"), "utf8")) as Record<string, any>;
  const { host: _host, ...noHost } = t4;
  assert.ok(validate(noHost, schema).some((e) => e.includes("missing required property host")));
  assert.ok(validate({ ...t4, extra: 1 }, schema).some((e) => e.includes("unexpected property extra")));
  const emptyQuantity = { ...t4, gpu: { ...t4.gpu, fp16MatmulFlopsPerSecond: {} } };
  assert.ok(
    validate(emptyQuantity, schema).some((e) => e.startsWith("/gpu/fp16MatmulFlopsPerSecond: matches none of anyOf")),
  );
  const zeroCores = { ...t4, cpu: { ...t4.cpu, cores: 0 } };
  assert.ok(validate(zeroCores, schema).some((e) => e.startsWith("/cpu/cores")));
});

test("plans from plan() validate against the plan schema: OPT, Llama, Mixtral (policy.experts), per-layer baseline (policy.layerGroups)", async () => {
  const schema = schemaFile("plan.schema.json");
  const t4 = loadShippedProfile("t4");
  const workload = { promptLen: 512, genLen: 32 };
  const opt = await plan({ model: model("opt-30b"), hardware: t4, workload });
  const optFlexgen = await plan({ model: model("opt-30b"), hardware: t4, workload, costModel: "flexgen" });
  const llama = await plan({ model: model("llama-2-13b"), hardware: loadShippedProfile("rtx3090"), workload });
  const mixtral = await plan({
    model: model("mixtral-8x7b"),
    hardware: t4,
    workload: { promptLen: 64, genLen: 16 },
    experts: { batchSize: 1 },
  });
  assert.ok(mixtral.policy.experts, "the Mixtral plan has an expert policy");
  const accelerate = await accelerateBaseline({
    model: model("opt-30b"),
    hardware: t4,
    workload,
    schedule: "spillway",
  });
  assert.ok(accelerate.plan?.policy.layerGroups, "the accelerate baseline places layers whole");
  const plans: [string, Plan][] = [
    ["opt", opt],
    ["opt flexgen", optFlexgen],
    ["llama", llama],
    ["mixtral", mixtral],
    ["accelerate", accelerate.plan!],
  ];
  for (const [what, p] of plans) assertValid(asJson({ ...p, hardwareSource: "t4" }), schema, what);
  // What plan --compare --out writes validates too.
  assertValid(
    asJson({
      ...opt,
      baselines: [
        {
          name: "accelerate",
          description: accelerate.description,
          policy: accelerate.plan!.policy,
          predicted: accelerate.plan!.predicted,
        },
        { name: "flexgen", description: "x", reason: "y" },
      ],
    }),
    schema,
    "plan --compare",
  );
  // And a broken plan does not.
  const broken = asJson(opt) as Record<string, any>;
  broken.policy.weights.gpu = 1.5;
  broken.costModel = "magic";
  const errors = validate(broken, schema);
  assert.ok(
    errors.some((e) => e.startsWith("/policy/weights/gpu: 1.5 is above the maximum 1")),
    errors.join("; "),
  );
  assert.ok(
    errors.some((e) => e.startsWith("/costModel: expected one of")),
    errors.join("; "),
  );
});

test("simulate() results validate against the simulation schema (fitting and overflowing)", async () => {
  const schema = schemaFile("simulation.schema.json");
  const t4 = loadShippedProfile("t4");
  const p = await plan({ model: model("opt-6.7b"), hardware: t4, workload: { promptLen: 64, genLen: 8 } });
  const ok = simulate(p, t4, { schedule: "spillway", capacityBytes: p.predicted.capacityBytes, timeline: true });
  assert.equal(ok.overflow, undefined);
  assertValid(asJson(ok), schema, "simulation");
  // What simulate --json prints: the plan read back from its file.
  const fromFile = simulate(parsePlanFile(asJson(p), "p.json"), t4, {
    schedule: "spillway",
    capacityBytes: p.predicted.capacityBytes,
  });
  assert.ok(fromFile.planned);
  assertValid(asJson(fromFile), schema, "simulation of a plan file");
  const over = simulate(p, t4, { schedule: "flexgen", capacityBytes: { gpu: 1, cpu: 1, disk: 1 } });
  assert.ok(over.overflow);
  assertValid(asJson(over), schema, "overflowing simulation");
  assert.ok(
    validate({ ...(asJson(ok) as object), criticalResource: "tpu" }, schema).some((e) =>
      e.startsWith("/criticalResource"),
    ),
  );
});

test("a shipped profile loaded through the parser still matches the schema (parser and schema agree)", () => {
  const schema = schemaFile("profile.schema.json");
  for (const name of ["t4", "h100"]) {
    const parsed: HardwareProfile = loadShippedProfile(name);
    assertValid(asJson(parsed), schema, name);
  }
});

test("the schema definitions are checked against the TypeScript types at compile time", () => {
  // A schema that drifted from Plan (notes dropped, workload.genLen optional) does not compile.
  const drifted = obj({
    model: str(),
    workload: obj({ promptLen: int(), genLen: opt(int()) }),
    notes: opt(arr(str())),
  });
  // @ts-expect-error the drifted schema does not match Plan
  assertMatches<Infer<typeof drifted>, Jsonify<Pick<Plan, "model" | "workload" | "notes">>>(true);
  assertMatches<Infer<typeof planSchema>, Jsonify<Plan>>(true);
  // The generated plan schema requires what Plan requires.
  const required = (schemaFile("plan.schema.json").required as string[]).sort();
  assert.deepEqual(required, [
    "costModel",
    "flexgenArgs",
    "hardware",
    "model",
    "modelSpec",
    "notes",
    "policy",
    "predicted",
    "schedule",
    "search",
    "workload",
  ]);
});
