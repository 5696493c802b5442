/**
 * parsePlan() and the published plan schema agree: over every single-step mutation of real plans
 * (each field deleted, retyped, set out of range; unknown keys added; array items dropped or repeated),
 * a document the schema rejects is rejected by the parser with an error naming the mutated field, and
 * a document the parser accepts is one the schema accepts, read back unchanged. The only documents the
 * schema accepts and the parser refuses break the rules a schema cannot state (placements summing to 1,
 * layer groups covering the model, a consistent model spec, the expert policy's rules).
 */
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { InputError } from "../../core/input-error.js";
import { parsePlan } from "../../core/parse-plan.js";
import type { Plan } from "../../core/plan.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { llamaCppBaseline } from "../../planner/baselines.js";
import { loadLpSolvers } from "../../planner/lp/solve-linear-program.js";
import { planSync } from "../../planner/plan.js";
import { planSchemaDocument } from "../../schemas/definitions.js";
import { validate } from "../../schemas/validate.js";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Path = readonly (string | number)[];

const asJson = (x: unknown) => JSON.parse(JSON.stringify(x)) as Json;
const plans: Record<string, Json> = {};

before(async () => {
  await loadLpSolvers();
  const t4 = resolveHardware("t4");
  const model = (name: string) => findCatalogueModel(name)!;
  const workload = { promptLen: 64, genLen: 8 };
  plans.opt = asJson(planSync({ model: model("opt-1.3b"), hardware: t4, workload }));
  plans["opt flexgen model"] = asJson(
    planSync({ model: model("opt-1.3b"), hardware: t4, workload, costModel: "flexgen" }),
  );
  plans.mixtral = asJson({
    ...planSync({
      model: model("mixtral-8x7b"),
      hardware: t4,
      workload: { promptLen: 32, genLen: 8 },
      experts: { batchSize: 1 },
    }),
    hardwareSource: "t4",
  });
  plans["llama.cpp layer groups"] = asJson(
    (await llamaCppBaseline({ model: model("opt-6.7b"), hardware: t4, workload })).plan!,
  );
});

/** Every path in a document (the root excluded), parents before children. */
function allPaths(value: Json, path: Path = []): Path[] {
  const out: Path[] = [];
  const children: [string | number, Json][] = Array.isArray(value)
    ? value.map((v, i) => [i, v])
    : value !== null && typeof value === "object"
      ? Object.entries(value)
      : [];
  for (const [key, child] of children) out.push([...path, key], ...allPaths(child, [...path, key]));
  return out;
}

function at(doc: Json, path: Path): Json {
  return path.reduce<Json>((v, k) => (v as Record<string | number, Json>)[k]!, doc);
}

interface Mutation {
  readonly what: string;
  /** The field the mutation changes, as error messages name it (`policy.layerGroups[0].weights`). */
  readonly field: string;
  readonly doc: Json;
}

const fieldOf = (path: Path) =>
  path.reduce<string>((s, k) => (typeof k === "number" ? `${s}[${k}]` : s ? `${s}.${k}` : k), "");
const REPLACEMENTS: Json[] = [null, true, "x", "", -1, 0, 0.5, 1.5, 3, 1e9, [], {}];

/** Every single-step mutation of `doc`. */
function mutations(doc: Json): Mutation[] {
  const out: Mutation[] = [];
  const edit = (
    path: Path,
    what: string,
    change: (parent: Record<string | number, Json> & Json[], key: string | number) => void,
    field = fieldOf(path),
  ) => {
    const copy = structuredClone(doc);
    change((path.length > 1 ? at(copy, path.slice(0, -1)) : copy) as never, path[path.length - 1]!);
    out.push({ what: `${fieldOf(path)}: ${what}`, field, doc: copy });
  };
  for (const path of allPaths(doc)) {
    const value = at(doc, path);
    const key = path[path.length - 1]!;
    if (typeof key === "string")
      edit(path, "deleted", (parent, k) => {
        delete parent[k as string];
      });
    else {
      edit(
        path,
        "item removed",
        (parent, k) => {
          parent.splice(k as number, 1);
        },
        fieldOf(path.slice(0, -1)),
      );
      edit(
        path,
        "item repeated",
        (parent, k) => {
          parent.push(structuredClone(parent[k as number]!));
        },
        fieldOf(path.slice(0, -1)),
      );
    }
    for (const r of REPLACEMENTS) {
      if (JSON.stringify(r) !== JSON.stringify(value))
        edit(path, `set to ${JSON.stringify(r)}`, (parent, k) => {
          parent[k as never] = structuredClone(r) as never;
        });
    }
    if (typeof value === "number")
      edit(path, "doubled plus one", (parent, k) => {
        parent[k as never] = (value * 2 + 1) as never;
      });
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      edit([...path, "extraField"], "unknown key added", (parent, k) => {
        parent[k as never] = 1 as never;
      });
    }
  }
  const root = structuredClone(doc) as Record<string, Json>;
  root.extraField = 1;
  out.push({ what: "unknown top-level key", field: "extraField", doc: root });
  return out;
}

/** The document without what a plan file may carry beyond the Plan type. */
function withoutFileOnly(doc: Json): Json {
  const copy = structuredClone(doc) as Record<string, Json>;
  delete copy.baselines;
  const experts = (copy.policy as Record<string, Json>).experts as Record<string, Json> | undefined;
  if (experts) delete experts.expectedHitRate;
  return copy;
}

test("real plans read back unchanged, and plan files with the extras the schema allows load too", () => {
  for (const [name, doc] of Object.entries(plans)) {
    assert.deepEqual(validate(doc, planSchemaDocument()), [], name);
    assert.deepEqual(asJson(parsePlan(doc, "p.json")), doc, name);
  }
  // plan --compare --out adds baselines; older MoE plan files carry policy.experts.expectedHitRate.
  const extras = structuredClone(plans.mixtral!) as Record<string, any>;
  extras.baselines = [
    { name: "flexgen", description: "FlexGen's policy", reason: "FlexGen does not run Mixture-of-Experts models" },
  ];
  extras.policy.experts.expectedHitRate = 0.5;
  assert.deepEqual(validate(extras, planSchemaDocument()), []);
  const parsed = parsePlan(extras, "p.json") as Plan & Record<string, unknown>;
  assert.equal(parsed.baselines, undefined, "a Plan does not keep the baselines");
  assert.deepEqual(asJson(parsed), plans.mixtral, "nor the expert policy's old expectedHitRate");
});

test("parser and schema agree on every single-step mutation of real plans", () => {
  const schema = planSchemaDocument();
  const counts = { schemaRejects: 0, ruleRejects: 0, accepted: 0 };
  const ruleRejected = new Set<string>();
  for (const [name, doc] of Object.entries(plans)) {
    for (const m of mutations(doc)) {
      const label = `${name}: ${m.what}`;
      const schemaErrors = validate(m.doc, schema);
      let parsed: Plan | undefined;
      let error: unknown;
      try {
        parsed = parsePlan(m.doc, "p.json");
      } catch (e) {
        error = e;
      }
      if (error !== undefined) {
        assert.ok(error instanceof InputError, `${label}: ${String(error)}`);
        assert.equal(error.source, "p.json", label);
      }
      if (schemaErrors.length > 0) {
        counts.schemaRejects++;
        assert.ok(
          error instanceof InputError,
          `${label}: the schema rejects it (${schemaErrors[0]}) but the parser accepts it`,
        );
        const field = error.field ?? "";
        // Deleting the only value of a quantity (datasheet, measured or fitted) leaves its parent without
        // one: the parent is the field to name.
        const emptied =
          m.what.endsWith(": deleted") &&
          field === m.field.split(".").slice(0, -1).join(".") &&
          /expected at least one of/.test(error.message);
        const within =
          emptied || field === m.field || field.startsWith(`${m.field}.`) || field.startsWith(`${m.field}[`);
        assert.ok(
          within,
          `${label}: the error names ${error.field}, not the mutated field or one inside it: ${error.message}`,
        );
      } else if (error instanceof InputError) {
        counts.ruleRejects++;
        ruleRejected.add(`${name}: ${m.what}`);
        assert.match(
          error.field ?? "",
          /^(modelSpec|policy|hardwareProfile)(\.|\[|$)/,
          `${label}: only the model spec's, the policy's and the carried profile's rules go beyond the schema: ${error.message}`,
        );
      } else {
        counts.accepted++;
        assert.deepEqual(asJson(parsed), withoutFileOnly(m.doc), `${label}: read back unchanged`);
      }
    }
  }
  assert.ok(counts.schemaRejects > 1000 && counts.accepted > 100 && counts.ruleRejects > 10, JSON.stringify(counts));
  // The rules a schema cannot state are among them.
  for (const expected of [
    "opt: policy.weights.gpu: set to 0.5",
    "llama.cpp layer groups: policy.layerGroups[0]: item repeated",
    "opt: modelSpec.numHeads: set to 3",
  ]) {
    assert.ok(
      ruleRejected.has(expected),
      `${expected} is refused by a rule (${[...ruleRejected].slice(0, 5).join("; ")} ...)`,
    );
  }
});

test("plan file errors name the file, the field and what was expected", () => {
  const doc = plans.opt as Record<string, any>;
  const fails = (edit: (d: Record<string, any>) => void, expected: RegExp) => {
    const copy = structuredClone(doc);
    edit(copy);
    assert.throws(
      () => parsePlan(copy, "p.json"),
      (e: unknown) => e instanceof InputError && expected.test(e.message),
      expected.source,
    );
  };
  fails((d) => {
    d.policy.weights.gpu = 1.5;
  }, /^p\.json: policy\.weights\.gpu: expected a number >= 0 and <= 1, got 1\.5$/);
  fails((d) => {
    d.policy.weights.gpu = "half";
  }, /^p\.json: policy\.weights\.gpu: expected a finite number >= 0 and <= 1, got the string "half"$/);
  fails((d) => {
    d.policy.gpuBatchSize = 2.5;
  }, /^p\.json: policy\.gpuBatchSize: expected an integer >= 1 and <= 1048576, got 2\.5$/);
  fails((d) => {
    d.costModel = "magic";
  }, /^p\.json: costModel: expected one of "spillway", "flexgen", got the string "magic"$/);
  fails((d) => {
    delete d.modelSpec;
  }, /^p\.json: modelSpec: missing; expected an object$/);
  fails((d) => {
    d.hardware = "";
  }, /^p\.json: hardware: expected a non-empty string, got the string ""$/);
  fails((d) => {
    d.policy.overlapp = true;
  }, /^p\.json: policy\.overlapp: unknown field; expected one of gpuBatchSize, numGpuBatches, .*pinWeight/);
  fails((d) => {
    d.policy.weights = { gpu: 0.5, cpu: 0.25, disk: 0.125 };
  }, /^p\.json: policy\.weights: gpu \+ cpu \+ disk must be 1, got 0\.875$/);
  fails((d) => {
    d.modelSpec.numHeads = 7;
  }, /^p\.json: modelSpec\.numHeads: hidden size 2048 is not divisible by 7 heads/);
  fails((d) => {
    d.predicted.throughputTokensPerSecond = 0;
  }, /^p\.json: predicted\.throughputTokensPerSecond: expected a number > 0, got 0$/);
  assert.throws(
    () => parsePlan([1, 2], "p.json"),
    /^InputError: p\.json: expected an object, got an array$|p\.json: expected an object, got an array/,
  );
});
