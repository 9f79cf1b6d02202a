// AdamW over the model's parameters with the official recipe (spec section 9): decoupled weight decay on EVERY
// parameter (norm weights and embeddings included, as lingua's build_optimizer passes model.parameters() as
// one group), global-norm gradient clipping as torch.nn.utils.clip_grad_norm_. The arithmetic of one update is
// the backend's `clipGradNorm` and `adamw` kernels; this class owns the moment buffers and the step count.
//
// The gradient norm and the clip scale are device scalars: the update reads the scale where it was computed,
// and nothing comes back to the host unless the caller reads the returned tensors (once per logging interval,
// say), so a step on an asynchronous device never waits for it.

import type { Backend, Storage } from "../engine/backend.js";
import { Tensor } from "../engine/tensor.js";

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Max global gradient norm; 0 or less disables clipping. */
  clip: number;
}

export const OFFICIAL_ADAMW: AdamWConfig = {
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.1,
  clip: 1.0,
};

/**
 * The factor clip_grad_norm_ multiplies every gradient by: max_norm / (total_norm + 1e-6), clamped to 1.
 * A non-finite norm is passed through (the caller decides to stop), never silently turned into a huge step.
 * The backends' `clipGradNorm` computes the same on the device; this host form documents and tests it.
 */
export function clipScale(gradNorm: number, clip: number): number {
  if (!(clip > 0)) return 1;
  return Math.min(1, clip / (gradNorm + 1e-6));
}

/** What one update leaves on the device for whoever wants to log it. */
export interface UpdateResult {
  /** [1]: global L2 norm of the gradients before clipping. */
  gradNorm: Tensor;
  /** [1]: the factor the gradients were multiplied by (1 when not clipped). */
  clipScale: Tensor;
}

export class AdamW {
  /** Optimizer updates taken so far (bias correction uses this + 1 for the next one). */
  step = 0;
  private readonly m = new Map<string, Storage>();
  private readonly v = new Map<string, Storage>();
  // Overwritten by every update; the tensors returned by update() read them.
  private readonly norm: Storage;
  private readonly scale: Storage;

  constructor(
    private readonly params: ReadonlyMap<string, Tensor>,
    private readonly backend: Backend,
    readonly config: AdamWConfig,
  ) {
    for (const [name, p] of params) {
      this.m.set(name, backend.alloc(p.size));
      this.v.set(name, backend.alloc(p.size));
    }
    this.norm = backend.alloc(1);
    this.scale = backend.alloc(1);
  }

  /**
   * One update with learning rate `lr`: the global gradient norm (a parameter without a gradient counts as
   * zero) and clip scale are computed on the device, then AdamW runs with the clipped gradients. A non-finite
   * norm leaves the weights and moments as they were (the caller sees it and stops). The returned tensors hold
   * this update's values until the next update.
   */
  update(lr: number): UpdateResult {
    const c = this.config;
    const grads: Storage[] = [];
    for (const p of this.params.values()) if (p.grad) grads.push(p.grad.storage);
    this.backend.clipGradNorm({ norm: this.norm, scale: this.scale, grads, maxNorm: c.clip });
    this.step++;
    for (const [name, p] of this.params) {
      const g = p.ensureGrad();
      this.backend.adamw(p.storage, g.storage, this.m.get(name)!, this.v.get(name)!, {
        lr,
        beta1: c.beta1,
        beta2: c.beta2,
        eps: c.eps,
        weightDecay: c.weightDecay,
        step: this.step,
        gradScale: this.scale,
      });
    }
    return {
      gradNorm: new Tensor(this.backend, this.norm, [1]),
      clipScale: new Tensor(this.backend, this.scale, [1]),
    };
  }

  /** First and second moments as host arrays (for checkpoints). */
  stateDict(): { m: Map<string, Float32Array>; v: Map<string, Float32Array> } {
    const m = new Map<string, Float32Array>(),
      v = new Map<string, Float32Array>();
    for (const name of this.params.keys()) {
      m.set(name, this.backend.readSync(this.m.get(name)!));
      v.set(name, this.backend.readSync(this.v.get(name)!));
    }
    return { m, v };
  }

  loadStateDict(step: number, m: Map<string, Float32Array>, v: Map<string, Float32Array>): void {
    for (const [name, p] of this.params) {
      const mm = m.get(name),
        vv = v.get(name);
      if (!mm || !vv || mm.length !== p.size || vv.length !== p.size)
        throw new Error(`optimizer state for ${name} is missing or has the wrong size`);
      this.backend.write(this.m.get(name)!, mm, 0);
      this.backend.write(this.v.get(name)!, vv, 0);
    }
    this.step = step;
  }
}
