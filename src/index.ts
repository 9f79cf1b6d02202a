// The aunet library API.
export type { Backend, Storage } from "./engine/backend.js";
export type {
  AttentionGrads,
  ClipGradNormParams,
  CopyRowsParams,
  IndexedLinearGrads,
  IndexedLinearParams,
  RmsnormGrads,
} from "./engine/backend.js";
export { Tensor, backward, noGrad } from "./engine/tensor.js";
export * as ops from "./engine/ops.js";
export { RefBackend } from "./backends/ref.js";
export { defaultBackend, setDefaultBackend } from "./backends/index.js";
export { backendChoice, selectBackend, registerWebGPU } from "./backends/index.js";
export type { BackendChoice, BackendLoad } from "./backends/index.js";
export { WasmBackend } from "./backends/wasm.js";
export { AUNet, ropeTables } from "./model/aunet.js";
export type { ForwardOptions, ForwardResult } from "./model/aunet.js";
export { parseConfig, paramSpecs, countParams, ffnHidden, toOfficialJson } from "./model/config.js";
export type { AUNetConfig, ModelConfig, BlockConfig, PoolingType } from "./model/config.js";
export { computePools } from "./model/pooling.js";
export { loadConfigFromDir } from "./io/model-dir.js";
export { loadModel, loadModelDir, latestCheckpointDir, resolveCheckpoint } from "./io/checkpoint-resolver.js";
export type { LoadedModel, ResolvedCheckpoint, CheckpointForm } from "./io/checkpoint-resolver.js";
export {
  readSafetensors,
  parseSafetensors,
  writeSafetensors,
  serializeSafetensors,
} from "./io/safetensors.js";
export { checkFixture } from "./eval/check-fixture.js";
export { UserError } from "./util/errors.js";
export * from "./generate/index.js";
export * from "./eval/index.js";
export { evaluateDocs } from "./train/evaluate.js";
export { train } from "./train/trainer.js";
export type { TrainOptions, TrainSummary } from "./train/trainer.js";
export { parseRunConfig, loadRawConfig, presetNames } from "./train/run-config.js";
export type { RunConfig } from "./train/run-config.js";
export { BOS, EOS, VOCAB_SIZE, encodeText, decodeBytes, Utf8StreamDecoder } from "./data/bytes.js";
export {
  parseStrategy,
  levelMask,
  documentLevelMask,
  prefillLevels,
  SplitStrategy,
} from "./data/splitter.js";
export { IncrementalSplitter } from "./data/incremental.js";
