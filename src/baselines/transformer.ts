// The BPE baseline's model: a standard decoder-only transformer over tokens. It is AU-Net with one stage and the
// tokenizer's vocabulary: token embeddings (tok_embeddings), the pre-norm RoPE/SwiGLU blocks of AU-Net's trunk
// (trunk.layers.*), a final norm (vocab_norm) and the output head (vocab). Sharing the class means both sides
// of the comparison run exactly the same block, kernels and initialisation.

import type { Backend } from "../engine/backend.js";
import type { Tensor } from "../engine/tensor.js";
import { AUNet } from "../model/aunet.js";
import type { ModelConfig } from "../model/config.js";

export interface TokenModelShape {
  dim: number;
  layers: number;
  headDim: number;
  /** Tokens per training row. */
  seqLen: number;
  vocabSize: number;
  seed: number;
  ropeTheta?: number;
  multipleOf?: number;
}

export function tokenModelConfig(s: TokenModelShape): ModelConfig {
  return {
    dimensions: [s.dim],
    head_dims: [s.headDim],
    layers: [s.layers],
    sliding_windows: null,
    max_seqlens: [s.seqLen],
    residuals: [],
    block: {
      rope_theta: s.ropeTheta ?? 10000,
      multiple_of: s.multipleOf ?? 32,
      norm_eps: 1e-5,
      ffn_dim_multiplier: null,
      n_kv_heads: null,
    },
    pooling_type: "simple_indexed_matmul",
    seed: s.seed,
    vocab_size: s.vocabSize,
    lambda_level: 0,
    norm_eps: 1e-5,
  };
}

export class TokenTransformer {
  readonly net: AUNet;
  private zeros = new Int32Array(0);

  constructor(
    readonly config: ModelConfig,
    backend: Backend,
  ) {
    if (config.dimensions.length !== 1) throw new Error("TokenTransformer: a one-stage config is expected");
    this.net = new AUNet(config, backend);
  }

  /** Mean cross-entropy over B rows of S tokens (a single stage has no level masks: they are all zero). */
  loss(tokens: Int32Array, targets: Int32Array, B: number, S: number): { loss: Tensor; rowLoss: Tensor } {
    if (this.zeros.length !== B * S) this.zeros = new Int32Array(B * S);
    return this.net.loss(tokens, this.zeros, targets, B, S);
  }
}
