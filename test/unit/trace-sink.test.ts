import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { withCapacities } from "../../core/hardware-profile.js";
import { InputError } from "../../core/input-error.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { resolveModel } from "../../models/resolve-model.js";
import { PlanError, plan } from "../../planner/plan.js";
import { parseTrace } from "../../reports/read-trace.js";
import { run } from "../../runtime/run.js";
import { synthesizeOptWeights } from "../../runtime/synth-weights.js";
import { FileTraceSink } from "../../simulator/file-trace-sink.js";
import { MemoryTraceSink } from "../../simulator/memory-trace-sink.js";
import { simulate } from "../../simulator/simulate.js";
import { NoTraceSink } from "../../simulator/trace-sink.js";
import { TINY_OPT } from "../helpers.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-trace-sink-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const t4 = resolveHardware("t4");

async function opt125mPlan() {
  const planned = await plan({
    model: resolveModel("opt-125m"),
    hardware: t4,
    workload: { promptLen: 64, genLen: 4 },
    fixed: { gbs: 4, nb: 2, percent: [50, 50, 0, 100, 100, 0] },
  });
  return { planned, options: { schedule: planned.schedule, capacityBytes: planned.predicted.capacityBytes } };
}

/** A tiny OPT checkpoint (written once) and a plan for it that runs on the CPU backend in well under a second. */
let tinyWeightsDir: string | undefined;
async function tinyRun() {
  const tiny = TINY_OPT;
  if (!tinyWeightsDir) {
    tinyWeightsDir = join(dir, "weights");
    synthesizeOptWeights(tiny, tinyWeightsDir, { seed: 1 });
  }
  const hardware = withCapacities(t4, { gpu: 4 * 2 ** 20, cpu: 2 ** 30, disk: 2 ** 30 });
  const planned = await plan({
    model: tiny,
    hardware,
    workload: { promptLen: 8, genLen: 4 },
    fixed: { gbs: 2, nb: 1, percent: [50, 50, 100, 0, 100, 0] },
  });
  const options = {
    weightsDir: tinyWeightsDir,
    schedule: planned.schedule,
    capacityBytes: planned.predicted.capacityBytes,
    offloadDir: dir,
  };
  return { planned, hardware, options };
}

test("a memory sink holds exactly the events a trace file gets, and the simulation's figures do not depend on the sink", async () => {
  const { planned, options } = await opt125mPlan();
  const tracePath = join(dir, "simulated.json");
  const toFile = simulate(planned, t4, { ...options, tracePath });
  const memory = new MemoryTraceSink();
  const toMemory = simulate(planned, t4, { ...options, trace: memory });
  const toNothing = simulate(planned, t4, { ...options, trace: new NoTraceSink() });
  const untraced = simulate(planned, t4, options);

  assert.equal(memory.complete, true, "simulate() closes the sink it was given");
  assert.deepEqual(memory.document(), JSON.parse(readFileSync(tracePath, "utf8")));
  assert.equal(toMemory.traceEvents, memory.events);
  assert.equal(toFile.traceEvents, memory.events);
  assert.equal(toNothing.traceEvents, 0);
  assert.equal(untraced.traceEvents, undefined);
  const trace = parseTrace(memory.document(), "memory");
  assert.ok(
    trace.slices.length > 100 && trace.memory.length > 10,
    `${trace.slices.length} slices, ${trace.memory.length} memory samples`,
  );
  const figures = (r: typeof untraced) => ({ ...r, traceEvents: undefined });
  assert.deepEqual(figures(toFile), figures(untraced));
  assert.deepEqual(figures(toMemory), figures(untraced));
  assert.deepEqual(figures(toNothing), figures(untraced));
  assert.deepEqual(
    readdirSync(dir).filter((name) => name.startsWith("simulated")),
    ["simulated.json"],
    "no temporary file is left beside the trace",
  );
});

test("simulate() and run() refuse a trace path and a trace sink together", async () => {
  const { planned, options } = await opt125mPlan();
  const tracePath = join(dir, "both.json");
  assert.throws(
    () => simulate(planned, t4, { ...options, tracePath, trace: new MemoryTraceSink() }),
    (e: Error) => e instanceof InputError && /simulate\(\) options: tracePath: given beside trace/.test(e.message),
  );
  const tiny = await tinyRun();
  await assert.rejects(
    run(tiny.planned, tiny.hardware, { ...tiny.options, tracePath, trace: new MemoryTraceSink() }),
    (e: Error) => e instanceof InputError && /run\(\) options: tracePath: given beside trace/.test(e.message),
  );
  assert.equal(existsSync(tracePath), false);
});

test("run() reports every measured slice to its sink, and a failed run leaves the sink empty and no trace file", async () => {
  const { planned, hardware, options } = await tinyRun();

  const memory = new MemoryTraceSink();
  const measured = await run(planned, hardware, { ...options, trace: memory });
  assert.equal(memory.complete, true);
  const trace = parseTrace(memory.document(), "run");
  assert.equal(trace.slices.length, measured.events, "one slice per measured event");
  assert.equal(trace.memory.length, 0, "the runtime records no memory counters");

  const failing = new MemoryTraceSink();
  const tracePath = join(dir, "failed-run.json");
  const tooSmall = { ...options, capacityBytes: { ...options.capacityBytes, gpu: 4096 } };
  await assert.rejects(
    run(planned, hardware, { ...tooSmall, trace: failing }),
    (e: Error) => e instanceof PlanError && /does not fit at run time/.test(e.message),
  );
  assert.equal(failing.events, 0, "abort() dropped what the failed run recorded");
  assert.equal(failing.complete, false);
  await assert.rejects(run(planned, hardware, { ...tooSmall, trace: new FileTraceSink(tracePath) }), PlanError);
  assert.deepEqual(
    readdirSync(dir).filter((name) => name.startsWith("failed-run")),
    [],
    "no trace file, no temporary file",
  );
});

test("a file sink writes nothing until it is opened or written to, and a closed one is a trace the report reads", () => {
  const path = join(dir, "lazy.json");
  const unused = new FileTraceSink(path);
  assert.deepEqual(
    readdirSync(dir).filter((name) => name.startsWith("lazy")),
    [],
    "made but unused: no file",
  );
  unused.abort();
  const sink = new FileTraceSink(path);
  sink.slice("compute", "gpu", 0.5, 0.75, 0, { token: 0, layer: 3, batch: 1 });
  sink.memory(0.5, "gpu", 1024);
  sink.close();
  const trace = parseTrace(JSON.parse(readFileSync(path, "utf8")), path);
  assert.deepEqual(
    trace.slices.map((s) => [s.resource, s.name, s.startSeconds, s.durationSeconds, s.layer, s.batch, s.bytes]),
    [["gpu", "compute", 0.5, 0.25, 3, 1, undefined]],
  );
  assert.deepEqual(trace.memory, [{ tier: "gpu", seconds: 0.5, bytes: 1024 }]);
  assert.equal(sink.events, 17, "15 metadata events, a slice and a counter");
  assert.deepEqual(
    readdirSync(dir).filter((name) => name.startsWith("lazy")),
    ["lazy.json"],
  );
});
