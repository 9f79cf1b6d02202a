// Generation and scoring with the incremental AU-Net.
export { Generator, promptTokens } from "./generator.js";
export type { GenerateOptions, GeneratedToken, Generation, StopReason } from "./generator.js";
export { IncrementalAUNet, SequenceState, DEFAULT_CHUNK } from "./incremental-model.js";
export type { PrefillOptions } from "./incremental-model.js";
export { KvCache } from "./kv-cache.js";
export { ByteLevels } from "./levels.js";
export { Sampler, DEFAULT_SAMPLING, argmax, logProbOf } from "./sampling.js";
export type { SamplingOptions } from "./sampling.js";
export { StopFilter } from "./stop.js";
export { scoreText } from "./score.js";
export type { Score, ScoredByte, ScoreOptions } from "./score.js";
