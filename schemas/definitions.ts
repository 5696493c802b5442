/**
 * The published JSON Schemas, described once here in TypeScript and checked against the interfaces
 * they describe (see schema-builder.ts): plan files (`spillway plan --json/--out`), hardware profiles
 * (profiles/*.json, `spillway profile`) and the `spillway simulate --json` result of a dense plan.
 * `npm run schemas` writes them to schemas/*.schema.json; a test keeps the files equal to this module.
 */

import { type ClusterProfile, INTERCONNECT_KINDS } from "../core/cluster-profile.js";
import { EXPERT_BITS, EXPERT_COMPUTES, EXPERT_EVICTIONS } from "../core/expert-policy.js";
import type { HardwareProfile } from "../core/hardware-profile.js";
import { MODEL_FAMILIES } from "../core/model-spec.js";
import {
  MAX_BYTES_PER_PARAM,
  MAX_CAPACITY_BYTES,
  MAX_CLUSTER_NODES,
  MAX_CPU_CORES,
  MAX_CURVE_BYTES,
  MAX_CURVE_ROWS,
  MAX_EXPERTS,
  MAX_FFN_SIZE,
  MAX_FLEXGEN_GIB_PER_SECOND,
  MAX_FLEXGEN_TFLOPS,
  MAX_GENERATED_TOKENS,
  MAX_GPU_BATCH_SIZE,
  MAX_GPU_BATCHES,
  MAX_GPUS_PER_NODE,
  MAX_HEADS,
  MAX_HIDDEN_SIZE,
  MAX_LATENCY_SECONDS,
  MAX_LAYERS,
  MAX_POSITIONS,
  MAX_PROMPT_TOKENS,
  MAX_RATE_PER_SECOND,
  MAX_SECONDS_PER_WEIGHT,
  MAX_VOCAB_SIZE,
  MIN_FLEXGEN_GIB_PER_SECOND,
  MIN_FLEXGEN_TFLOPS,
  MIN_RATE_PER_SECOND,
  MIN_SECONDS_PER_WEIGHT,
} from "../core/physical-bounds.js";
import { STAGE_ROLES } from "../core/pipeline-plan.js";
import { COST_MODEL_NAMES, type Plan } from "../core/plan.js";
import { COMPUTE_DEVICES } from "../core/policy.js";
import { RESOURCES } from "../core/resources.js";
import { SCHEDULE_NAMES } from "../core/schedule-name.js";
import { TIERS, type Tier } from "../core/tiers.js";
import { LANES } from "../engines/engine-model.js";
import { ENGINE_NAMES } from "../engines/engine-names.js";
import type { SimulationResult } from "../simulator/simulate.js";
import {
  anyValue,
  arr,
  assertMatches,
  bool,
  document,
  type Infer,
  int,
  type Jsonify,
  type JsonSchema,
  named,
  nonEmptyStr,
  num,
  numberIn,
  obj,
  oneOfValues,
  opt,
  record,
  str,
} from "./schema-builder.js";

const BASE = "urn:spillway:schemas";
const note = { note: opt(str("a comment; ignored")) };

// ---------------------------------------------------------------------------------------------
// Hardware profile

const sourced = (value: ReturnType<typeof num>) =>
  obj(
    {
      value,
      source: str("where the number comes from: a datasheet, a benchmark's page, a measurement command"),
    },
    { fileOnly: note },
  );
const RATE = {
  minimum: MIN_RATE_PER_SECOND,
  maximum: MAX_RATE_PER_SECOND,
  description: "per second: bytes, FLOP or values (a physically meaningful range)",
};
const sourcedPositive = named("PositiveSourcedValue", sourced(num(RATE)));
const sourcedNonNegative = named(
  "NonNegativeSourcedValue",
  sourced(num({ minimum: 0, maximum: MAX_LATENCY_SECONDS, description: "seconds (at most an hour)" })),
);
const capacity = (tier: Tier) => sourced(num({ minimum: 0, maximum: MAX_CAPACITY_BYTES[tier], description: "bytes" }));
const quantityOf = (value: typeof sourcedPositive) =>
  obj(
    { datasheet: opt(value), measured: opt(value), fitted: opt(value) },
    {
      description:
        "one physical quantity as the datasheet states it, as measured and/or as fitted to the user's runs by `spillway calibrate` (the cost models use fitted, else measured, else datasheet)",
      fileOnly: note,
      requireOneOf: ["datasheet", "measured", "fitted"],
    },
  );
const quantity = named("Quantity", quantityOf(sourcedPositive));
const quantityNonNegative = named("NonNegativeQuantity", quantityOf(sourcedNonNegative));
const curveOf = <X extends string, Y extends string>(
  x: X,
  y: Y,
  xSchema: ReturnType<typeof num>,
  ySchema: ReturnType<typeof num> = num(RATE),
) =>
  obj({
    samples: arr(obj({ [x]: xSchema, [y]: ySchema } as { [K in X | Y]: ReturnType<typeof num> }), {
      minItems: 1,
      description: `sorted by strictly increasing ${x}`,
    }),
    source: str(),
  });
const link = named(
  "LinkProfile",
  obj(
    {
      pinnedBytesPerSecond: quantity,
      pageableBytesPerSecond: opt(quantity),
      latencySeconds: quantityNonNegative,
      curve: opt(curveOf("bytes", "bytesPerSecond", num({ exclusiveMinimum: 0, maximum: MAX_CURVE_BYTES }))),
    },
    { fileOnly: note },
  ),
);
const curveRows = () => int({ minimum: 1, maximum: MAX_CURVE_ROWS });
const matmulSamples = () =>
  arr(
    obj({
      rows: curveRows(),
      secondsPerWeight: num({ minimum: MIN_SECONDS_PER_WEIGHT, maximum: MAX_SECONDS_PER_WEIGHT }),
    }),
    { minItems: 1, description: "sorted by strictly increasing rows" },
  );
const matmulCurve = () =>
  curveOf(
    "rows",
    "secondsPerWeight",
    curveRows(),
    num({ minimum: MIN_SECONDS_PER_WEIGHT, maximum: MAX_SECONDS_PER_WEIGHT }),
  );
const quantizedMatmulCurves = () =>
  obj(
    { "8": opt(matmulCurve()), "4": opt(matmulCurve()), "3": opt(matmulCurve()), "2": opt(matmulCurve()) },
    {
      description:
        "measured GEMM time per weight against rows for weights stored group-wise quantised, per stored width (the MoE runtime's dequantising linear kernel)",
    },
  );
const gibPerSecond = () => num({ minimum: MIN_FLEXGEN_GIB_PER_SECOND, maximum: MAX_FLEXGEN_GIB_PER_SECOND });
const tflops = () => num({ minimum: MIN_FLEXGEN_TFLOPS, maximum: MAX_FLEXGEN_TFLOPS });

export const profileSchema = obj(
  {
    name: str(),
    description: str(),
    host: str("the host machine the numbers describe"),
    capacityBytes: obj(
      { gpu: capacity("gpu"), cpu: capacity("cpu"), disk: capacity("disk") },
      { description: "capacities the planner may use by default, bytes" },
    ),
    gpu: obj(
      {
        name: str(),
        memoryBandwidthBytesPerSecond: quantity,
        fp16MatmulFlopsPerSecond: quantity,
        kernelLaunchSeconds: quantityNonNegative,
        matmulCurve: opt(
          obj({
            samples: matmulSamples(),
            source: str(),
            fitted: opt(
              obj(
                { samples: matmulSamples(), source: str() },
                {
                  description:
                    "the measured curve rescaled by `spillway calibrate` to the user's runs (the same rows); the cost model uses it in place of the measured samples",
                },
              ),
            ),
          }),
        ),
        quantizedMatmulCurves: opt(quantizedMatmulCurves()),
        workingBytesPerValue: opt(
          obj(
            { value: numberIn([2, 4], "2: fp16 kernels; 4: fp32 (the CPU backend)"), source: str() },
            { fileOnly: note },
          ),
        ),
        dequantizeValuesPerSecond: opt(quantity),
        attentionFlopsPerSecond: opt(quantity),
        elementwiseBytesPerSecond: opt(quantity),
        stridedBytesPerSecond: opt(quantity),
        gemmCurve: opt(curveOf("rows", "flopsPerSecond", curveRows())),
        sharesHostCores: opt(
          obj(
            { value: bool(), source: str() },
            {
              fileOnly: note,
              description:
                "true when the device is the host's own cores (the CPU backend): its kernels, the CPU's and the host -> device copies do not overlap",
            },
          ),
        ),
      },
      { fileOnly: note },
    ),
    cpu: obj(
      {
        name: str(),
        cores: int({ minimum: 1, maximum: MAX_CPU_CORES }),
        fp32FlopsPerSecond: quantity,
        memoryBandwidthBytesPerSecond: quantity,
        streamBytesPerSecond: opt(quantity),
        fp16ToFp32ValuesPerSecond: opt(quantity),
        firstTouchBytesPerSecond: opt(quantity),
        pageableRelayBytesPerSecond: opt(quantity),
        singleThreadCopyBytesPerSecond: opt(quantity),
        eagerDispatchSeconds: opt(quantityNonNegative),
        matmulCurve: opt(matmulCurve()),
        quantizedMatmulCurves: opt(quantizedMatmulCurves()),
      },
      { fileOnly: note },
    ),
    hostToDevice: link,
    deviceToHost: link,
    disk: obj(
      {
        readBytesPerSecond: quantity,
        writeBytesPerSecond: quantity,
        latencySeconds: quantityNonNegative,
        mmapReadBytesPerSecond: opt(quantity),
      },
      { fileOnly: note },
    ),
    flexgenFitted: opt(
      obj(
        {
          source: str(),
          ctogBandwidthGiBPerSecond: gibPerSecond(),
          gtocCacheBandwidthGiBPerSecond: gibPerSecond(),
          gtocHiddenBandwidthGiBPerSecond: gibPerSecond(),
          dtocBandwidthGiBPerSecond: gibPerSecond(),
          ctodCachePrefillBandwidthGiBPerSecond: gibPerSecond(),
          ctodHiddenPrefillBandwidthGiBPerSecond: gibPerSecond(),
          ctodDecodeBandwidthGiBPerSecond: gibPerSecond(),
          mmPrefillTflops: tflops(),
          mmDecodeTflops: tflops(),
          bmmPrefillTflops: tflops(),
          bmmDecodeTflops: tflops(),
          cpuTflops: tflops(),
          c1: num(),
          c2: num(),
          c3: num(),
        },
        {
          description: "FlexGen's released T4 constants, used only by the FlexGen-compatible cost model",
          fileOnly: note,
        },
      ),
    ),
  },
  { fileOnly: { $schema: opt(str("this schema's address")), notes: opt(str("a comment; ignored")) } },
);
assertMatches<Infer<typeof profileSchema>, Jsonify<HardwareProfile>>(true);

// ---------------------------------------------------------------------------------------------
// Plan

const fraction = () => num({ minimum: 0, maximum: 1 });
const placement = named(
  "Placement",
  obj({ gpu: fraction(), cpu: fraction(), disk: fraction() }, { description: "fractions on each tier; they sum to 1" }),
);
const tiers = named(
  "TierBytes",
  obj({ gpu: num({ minimum: 0 }), cpu: num({ minimum: 0 }), disk: num({ minimum: 0 }) }),
);
const capacities = named(
  "CapacityBytes",
  obj({
    gpu: num({ minimum: 0, maximum: MAX_CAPACITY_BYTES.gpu }),
    cpu: num({ minimum: 0, maximum: MAX_CAPACITY_BYTES.cpu }),
    disk: num({ minimum: 0, maximum: MAX_CAPACITY_BYTES.disk }),
  }),
);
const traffic = named(
  "TrafficBytes",
  obj({
    h2d: num({ minimum: 0 }),
    d2h: num({ minimum: 0 }),
    diskRead: num({ minimum: 0 }),
    diskWrite: num({ minimum: 0 }),
  }),
);
const bits = oneOfValues(EXPERT_BITS);

const modelSpec = named(
  "ModelSpec",
  obj(
    {
      name: nonEmptyStr(),
      family: oneOfValues(MODEL_FAMILIES),
      numLayers: int({ minimum: 1, maximum: MAX_LAYERS }),
      hiddenSize: int({ minimum: 1, maximum: MAX_HIDDEN_SIZE }),
      ffnSize: int({ minimum: 1, maximum: MAX_FFN_SIZE }),
      numHeads: int({ minimum: 1, maximum: MAX_HEADS }),
      headDim: opt(int({ minimum: 1, maximum: MAX_HIDDEN_SIZE })),
      numKvHeads: int({ minimum: 1, maximum: MAX_HEADS }),
      vocabSize: int({ minimum: 1, maximum: MAX_VOCAB_SIZE }),
      maxPositions: int({ minimum: 1, maximum: MAX_POSITIONS }),
      ffnKind: oneOfValues(["relu", "swiglu"] as const),
      wordEmbedDim: int({ minimum: 1, maximum: MAX_HIDDEN_SIZE }),
      tiedEmbeddings: bool(),
      bytesPerParam: num({ exclusiveMinimum: 0, maximum: MAX_BYTES_PER_PARAM }),
      moe: opt(
        obj({
          numExperts: int({ minimum: 1, maximum: MAX_EXPERTS }),
          expertsPerToken: int({ minimum: 1, maximum: MAX_EXPERTS }),
          expertFfnSize: int({ minimum: 1, maximum: MAX_FFN_SIZE }),
          sharedExperts: opt(int({ minimum: 1, maximum: MAX_EXPERTS })),
          sharedExpertFfnSize: opt(int({ minimum: 1, maximum: MAX_FFN_SIZE })),
        }),
      ),
    },
    { description: "the model the plan was made for, so a plan file is self-contained" },
  ),
);

const expertPolicy = named(
  "ExpertPolicy",
  obj(
    {
      cacheSize: int({
        minimum: 0,
        maximum: MAX_EXPERTS,
        description: "expert slots per layer on the GPU (at most the model's experts per layer)",
      }),
      eviction: oneOfValues(EXPERT_EVICTIONS),
      offloadTier: oneOfValues(["cpu", "disk"] as const),
      bits,
      attentionBits: bits,
      prefetchExperts: int({ minimum: 0, maximum: MAX_EXPERTS }),
      prefetchLayers: int({ minimum: 1, maximum: MAX_LAYERS }),
      pregated: bool(),
      compute: oneOfValues(EXPERT_COMPUTES),
      cpuThresholdTokens: int({ minimum: 0, maximum: MAX_GPU_BATCH_SIZE * MAX_GPU_BATCHES }),
    },
    {
      description: "Mixture-of-Experts models: how routed experts are cached, prefetched and computed",
      fileOnly: { expectedHitRate: opt(fraction()) },
    },
  ),
);

const policy = named(
  "Policy",
  obj({
    gpuBatchSize: int({ minimum: 1, maximum: MAX_GPU_BATCH_SIZE }),
    numGpuBatches: int({ minimum: 1, maximum: MAX_GPU_BATCHES }),
    weights: placement,
    cache: placement,
    activations: placement,
    compressWeight: bool(),
    compressCache: bool(),
    cpuAttention: bool(),
    overlap: bool(),
    pinWeight: bool(),
    layerGroups: opt(
      arr(
        obj({
          layers: int({ minimum: 1, maximum: MAX_LAYERS }),
          weights: placement,
          compute: oneOfValues(COMPUTE_DEVICES),
        }),
        {
          minItems: 1,
          description: "per-layer placement: consecutive layer groups, first layer first, covering every layer",
        },
      ),
    ),
    embeddings: opt(placement),
    experts: opt(expertPolicy),
  }),
);

const expertFigures = obj({
  expectedHitRate: fraction(),
  touchedPerLayer: num({ minimum: 0 }),
  demandFetchesPerLayer: num({ minimum: 0 }),
  prefetchedPerLayer: num({ minimum: 0 }),
  wastedPrefetchesPerLayer: num({ minimum: 0 }),
  cpuComputedPerLayer: num({ minimum: 0 }),
  stallSecondsPerToken: num({ minimum: 0 }),
  expertBytes: num({ minimum: 0 }),
  routingSource: str(),
});

const interconnect = named(
  "InterconnectProfile",
  obj(
    {
      kind: oneOfValues(INTERCONNECT_KINDS),
      name: nonEmptyStr(),
      bytesPerSecond: quantity,
      latencySeconds: quantityNonNegative,
    },
    { fileOnly: note, description: "a link between two GPUs: one transfer's rate per direction and fixed cost" },
  ),
);

export const clusterSchema = obj(
  {
    kind: oneOfValues(["cluster"] as const),
    name: nonEmptyStr(),
    description: nonEmptyStr(),
    nodes: int({ minimum: 1, maximum: MAX_CLUSTER_NODES }),
    gpusPerNode: int({ minimum: 1, maximum: MAX_GPUS_PER_NODE }),
    perGpu: named("HardwareProfile", profileSchema),
    intraNode: opt(interconnect),
    interNode: opt(interconnect),
    notes: opt(str()),
  },
  { fileOnly: { $schema: opt(str()) } },
);
assertMatches<Infer<typeof clusterSchema>, Jsonify<ClusterProfile>>(true);

const resourceSeconds = obj(
  Object.fromEntries(RESOURCES.map((r) => [r, num({ minimum: 0 })])) as {
    [K in (typeof RESOURCES)[number]]: ReturnType<typeof num>;
  },
);

const gpuAddress = obj({ node: int({ minimum: 0 }), index: int({ minimum: 0 }) });

const pipeline = obj(
  {
    cluster: named("ClusterProfile", clusterSchema),
    microBatches: int({ minimum: 1, maximum: MAX_GPU_BATCHES, description: "micro-batches in flight" }),
    tensorParallelSize: opt(
      int({
        minimum: 2,
        maximum: MAX_GPUS_PER_NODE,
        description: "GPUs per stage (tensor parallelism within a node); absent: one GPU per stage",
      }),
    ),
    stages: arr(
      obj({
        gpu: gpuAddress,
        gpus: opt(arr(gpuAddress, { description: "a tensor-parallel stage's GPUs of one node, gpu first" })),
        layers: obj(
          { from: int({ minimum: 0, maximum: MAX_LAYERS }), to: int({ minimum: 1, maximum: MAX_LAYERS }) },
          { description: "decoder layers [from, to)" },
        ),
        role: oneOfValues(STAGE_ROLES),
        policy,
        predicted: obj({
          prefillSecondsPerMicroBatch: num({ minimum: 0 }),
          decodeSecondsPerMicroBatch: num({ minimum: 0 }),
          busySeconds: resourceSeconds,
          bytes: traffic,
          peakBytes: tiers,
          capacityBytes: capacities,
          feasible: bool(),
          infeasibleReasons: arr(str()),
          bottleneck: str(),
          allReduce: opt(
            obj(
              {
                kind: oneOfValues(INTERCONNECT_KINDS),
                name: str(),
                bytesPerSecond: num({ exclusiveMinimum: 0 }),
                latencySeconds: num({ minimum: 0 }),
                bytesPerGpu: num({ minimum: 0 }),
                busySeconds: num({ minimum: 0 }),
              },
              { description: "a tensor-parallel stage's all-reduces over the node's link, per GPU over the run" },
            ),
          ),
        }),
      }),
      { minItems: 1, description: "contiguous layer stages, first stage first" },
    ),
    links: arr(
      obj({
        from: int({ minimum: 0 }),
        to: int({ minimum: 0 }),
        kind: oneOfValues(INTERCONNECT_KINDS),
        name: str(),
        bytesPerSecond: num({ exclusiveMinimum: 0 }),
        latencySeconds: num({ minimum: 0 }),
        bytes: num({ minimum: 0 }),
        busySeconds: num({ minimum: 0 }),
      }),
      { description: "stage s to s + 1; the last returns token ids to stage 0" },
    ),
    stageIdleFraction: arr(fraction()),
  },
  { description: "pipeline-parallel plans for a cluster: the stage layout" },
);

export const planSchema = obj(
  {
    model: str(),
    hardware: nonEmptyStr(),
    hardwareSource: opt(
      nonEmptyStr("how --hardware named the profile (a shipped name or a file path); informative only, never opened"),
    ),
    hardwareProfile: opt(named("HardwareProfile", profileSchema)),
    costModel: oneOfValues(COST_MODEL_NAMES),
    schedule: oneOfValues(SCHEDULE_NAMES),
    workload: obj({
      promptLen: int({ minimum: 1, maximum: MAX_PROMPT_TOKENS }),
      genLen: int({ minimum: 1, maximum: MAX_GENERATED_TOKENS }),
    }),
    policy,
    predicted: obj({
      throughputTokensPerSecond: num({ exclusiveMinimum: 0 }),
      prefillSeconds: num({ minimum: 0 }),
      decodeSeconds: num({ minimum: 0 }),
      feasible: bool(),
      infeasibleReasons: arr(str()),
      peakBytes: tiers,
      capacityBytes: capacities,
      bytes: traffic,
      busySeconds: record(
        num({ minimum: 0 }),
        "busy seconds per resource (Spillway model) or per-layer term seconds (FlexGen model)",
      ),
      bottleneck: str(),
      experts: opt(expertFigures),
      decodeSecondsPerToken: opt(num({ minimum: 0 })),
    }),
    search: obj({
      lpSolves: int({ minimum: 0 }),
      elapsedMs: num({ minimum: 0 }),
      exactEvaluations: opt(int({ minimum: 0 })),
      lpFallbacks: int({ minimum: 0 }),
      scored: bool(),
      wallClockLimitHits: opt(
        int({
          minimum: 0,
          description:
            "LPs left unsolved because the solver reached its wall-clock safety net (0: the plan depends on its inputs alone)",
        }),
      ),
      maxLpSolves: opt(int({ minimum: 0, description: "the search's budget: the most LPs it may solve" })),
      lpLimitReached: opt(bool("whether the search stopped at maxLpSolves (the best policy found so far is kept)")),
      maxGpuBatches: opt(
        int({
          minimum: 1,
          description: "the most GPU batches per block the search considered (within the simulator's task budget)",
        }),
      ),
      maxExactEvaluations: opt(
        int({
          minimum: 1,
          description: "the most exact evaluations the search could make (fewer for long generations)",
        }),
      ),
      evaluationLimitReached: opt(bool("whether the search stopped at maxExactEvaluations")),
      screenedLpSolves: opt(
        int({ minimum: 0, description: "LPs answered by Spillway's dense simplex alone (checked against the LP)" }),
      ),
      referenceLpSolves: opt(
        int({
          minimum: 0,
          description:
            "LPs solved by javascript-lp-solver or HiGHS: those whose exact figures the search needed, and those the dense simplex left to them",
        }),
      ),
      engineCandidates: opt(
        int({
          minimum: 0,
          description: "plan --engine: distinct configurations of the engine's own settings the search considered",
        }),
      ),
      engineCandidatesFeasible: opt(
        int({ minimum: 0, description: "of them, those the engine can run within its memory rule" }),
      ),
      engineEvaluations: opt(int({ minimum: 0, description: "engine-model predictions the search made" })),
      engineEvaluationLimitReached: opt(bool("whether the engine search stopped at its evaluation budget")),
    }),
    flexgenArgs: str("the equivalent python -m flexgen.flex_opt flags"),
    llamaCpp: opt(
      obj(
        {
          nGpuLayers: int({ minimum: 0 }),
          nCpuMoe: opt(int({ minimum: 0 })),
          bits,
          ggufType: opt(nonEmptyStr("the GGUF file type the advice was costed for by the llama.cpp engine model")),
          decodeTokensPerSecond: opt(num({ minimum: 0 })),
          gpuPeakBytes: opt(num({ minimum: 0 })),
          reason: opt(str()),
        },
        { description: "MoE plans: the -ngl and --n-cpu-moe that fit llama.cpp on this GPU" },
      ),
    ),
    modelSpec,
    notes: arr(str()),
    engine: opt(oneOfValues(ENGINE_NAMES)),
    engineKnobs: opt(
      obj(
        {
          nGpuLayers: opt(int({ minimum: 0 })),
          nCpuMoe: opt(int({ minimum: 0 })),
          ggufType: opt(nonEmptyStr()),
          noKvOffload: opt(bool()),
          parallelSequences: opt(int({ minimum: 1 })),
          ubatchTokens: opt(int({ minimum: 1 })),
          fewerBatch: opt(bool()),
        },
        { description: "the engine's own settings fixed for the prediction" },
      ),
    ),
    pipeline: opt(pipeline),
    enginePrediction: opt(
      obj(
        {
          engine: oneOfValues(ENGINE_NAMES),
          throughputTokensPerSecond: num({ exclusiveMinimum: 0 }),
          prefillSeconds: num({ minimum: 0 }),
          decodeSeconds: num({ minimum: 0 }),
          totalSeconds: num({ minimum: 0 }),
          feasible: bool(),
          infeasibleReasons: arr(str()),
          realizedPolicy: policy,
          peakBytes: tiers,
          capacityBytes: tiers,
          termSeconds: record(num({ minimum: 0 }), "wall seconds over the run charged to each term"),
          laneSeconds: obj(
            Object.fromEntries(LANES.map((l) => [l, num({ minimum: 0 })])) as {
              [L in (typeof LANES)[number]]: ReturnType<typeof num>;
            },
          ),
          bottleneck: str(),
          rates: arr(
            obj({
              name: str(),
              value: num({ minimum: 0 }),
              kind: oneOfValues(["datasheet", "measured", "fitted", "derived"] as const),
              source: str(),
            }),
          ),
          protocol: opt(str()),
          notes: arr(str()),
        },
        { description: "the engine model's prediction: the policy as the engine realizes it, its terms and rates" },
      ),
    ),
  },
  {
    fileOnly: {
      baselines: opt(
        arr(
          obj({
            name: str(),
            description: str(),
            policy: opt(policy),
            predicted: opt(record(anyValue())),
            reason: opt(str()),
          }),
          { description: "plan --compare: the baselines scored with the same cost model" },
        ),
      ),
    },
  },
);
assertMatches<Infer<typeof planSchema>, Jsonify<Plan>>(true);

// ---------------------------------------------------------------------------------------------
// Simulation result

const resources = <S extends ReturnType<typeof num>>(value: () => S) =>
  obj(Object.fromEntries(RESOURCES.map((r) => [r, value()])) as { [K in (typeof RESOURCES)[number]]: S });

export const simulationSchema = obj({
  schedule: oneOfValues(SCHEDULE_NAMES),
  throughputTokensPerSecond: num({ minimum: 0 }),
  prefillSeconds: num({ minimum: 0 }),
  decodeSeconds: num({ minimum: 0 }),
  makespanSeconds: num({ minimum: 0 }),
  events: int({ minimum: 0, description: "tasks simulated (transfers, kernels, barriers)" }),
  peakBytes: tiers,
  capacityBytes: tiers,
  bytes: traffic,
  busySeconds: resources(() => num({ minimum: 0 })),
  utilisation: resources(() => num({ minimum: 0 })),
  criticalResource: oneOfValues(RESOURCES),
  overflow: opt(
    obj(
      {
        tier: oneOfValues(TIERS),
        seconds: num({ minimum: 0 }),
        inUseBytes: num({ minimum: 0 }),
        capacityBytes: num({ minimum: 0 }),
        what: str(),
      },
      { description: "the first moment a tier ran over its capacity" },
    ),
  ),
  planned: opt(
    obj(
      {
        throughputTokensPerSecond: num({ minimum: 0 }),
        prefillSeconds: num({ minimum: 0 }),
        decodeSeconds: num({ minimum: 0 }),
        peakBytes: tiers,
        bytes: traffic,
        busySeconds: opt(record(num({ minimum: 0 }))),
        experts: opt(obj({ expectedHitRate: fraction() })),
      },
      {
        description: "the planner's figures the simulation is compared with: these keys of plan.predicted",
        open: true,
      },
    ),
  ),
  relativeError: opt(num({ description: "(simulated - planned) / planned throughput" })),
  disagreements: arr(str()),
  traceEvents: opt(int({ minimum: 0 })),
  timeline: opt(str("text Gantt chart of one layer's window (--timeline)")),
  budget: opt(
    obj(
      {
        taskBound: int({ minimum: 0, description: "at most this many tasks, counted from the plan's shape" }),
        maxTasks: int({ minimum: 0, description: "the budget: plans whose bound is above it are refused" }),
        taskBoundPerToken: int({ minimum: 0 }),
        maxTasksPerToken: int({ minimum: 0 }),
      },
      { description: "the task budget the simulation was held to (a bound on its time and memory)" },
    ),
  ),
});
assertMatches<Infer<typeof simulationSchema>, Jsonify<SimulationResult>>(true);

let planDocument: JsonSchema | undefined;

/** The plan schema as published (schemas/plan.schema.json): what parsePlan() checks plan files against. */
export function planSchemaDocument(): JsonSchema {
  planDocument ??= document(
    `${BASE}:plan`,
    "Spillway plan",
    "A plan file: what `spillway plan --json` prints and `--out` writes, and what simulate, run, report and export read.",
    planSchema,
  );
  return planDocument;
}

/** The published documents by file name. */
export function schemaDocuments(): Record<string, JsonSchema> {
  return {
    "plan.schema.json": planSchemaDocument(),
    "profile.schema.json": document(
      `${BASE}:profile`,
      "Spillway hardware profile",
      "A hardware profile: profiles/*.json and what `spillway profile` writes. Every number carries its source.",
      profileSchema,
    ),
    "simulation.schema.json": document(
      `${BASE}:simulation`,
      "Spillway simulation result",
      "What `spillway simulate --json` prints for a dense plan (MoE plans print their replay result instead).",
      simulationSchema,
    ),
  };
}
