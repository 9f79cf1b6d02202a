// One optimisation step, the only one in the project: the trainer, the BPE baseline and the benchmark all run
// this. Forward and backward over `gradAcc` micro-batches (gradients accumulate in the parameters), global-norm
// clipping, an AdamW update, gradients zeroed: the loop body of nanoGPT's train.py, lingua's recipe.
//
// The values a step produces (each micro-batch's loss, the gradient norm, the clip factor) are returned as the
// model and the optimiser hand them over, not read: a device backend keeps them on the device, and the trainer
// reads them with `readStepValues`, the one place where they cross to the host, when it logs. A step therefore
// cannot notice a non-finite loss itself; whoever reads the values must do so before it saves or validates.

import { backward, scoped, Tensor } from "../engine/tensor.js";
import * as op from "../engine/ops.js";
import type { AdamW } from "./optimizer.js";

/** What a step needs of a model: the mean loss of one micro-batch as a scalar tensor, and zeroing gradients. */
export interface StepModel<Batch> {
  loss(batch: Batch): Tensor;
  zeroGrad(): void;
}

export interface StepOptions<Batch> {
  model: StepModel<Batch>;
  /** Clips to its config's max global norm (0 disables clipping), then updates. */
  optimizer: AdamW;
  /** Micro-batches per step (gradient accumulation). */
  gradAcc: number;
  /** The next micro-batch of the training stream. */
  nextBatch: () => Promise<Batch>;
}

export interface StepValues {
  /** Each micro-batch's mean loss, a scalar tensor as the model returned it (owned here until read). */
  losses: Tensor[];
  /** [1] on the device: the global gradient norm before clipping, and the factor the gradients were multiplied by. */
  gradNorm: Tensor;
  clipScale: Tensor;
}

/** A device-side copy of a [1] scalar (the optimiser overwrites its own at every update). */
function keep(t: Tensor): Tensor {
  const c = Tensor.empty(t.backend, [1]);
  t.backend.copy(c.storage, t.storage);
  return c;
}

/** One optimizer update at learning rate `lr`. */
export async function trainStep<Batch>(o: StepOptions<Batch>, lr: number): Promise<StepValues> {
  const losses: Tensor[] = [];
  for (let micro = 0; micro < o.gradAcc; micro++) {
    const batch = await o.nextBatch();
    // Everything forward and backward allocate (activations, scratch) is released when the scope ends, so a
    // pooled backend reuses the same buffers every step; the parameters' gradients and the loss survive it.
    const loss = scoped(
      () => {
        const loss = o.model.loss(batch);
        // lingua scales each micro-batch's loss so that the accumulated gradient is the mean over them.
        backward(o.gradAcc > 1 ? op.scale(loss, 1 / o.gradAcc) : loss);
        return loss;
      },
      (loss) => [loss],
    );
    losses.push(loss);
  }
  const u = o.optimizer.update(lr); // norm, clip scale and AdamW all on the device: nothing is read here
  o.model.zeroGrad();
  return { losses, gradNorm: keep(u.gradNorm), clipScale: keep(u.clipScale) };
}

/** A step's values on the host: the loss is the mean of its micro-batches' losses. */
export interface StepReadout {
  loss: number;
  microLosses: number[];
  gradNorm: number;
  clipScale: number;
}

/**
 * The one place a step's values are read on the host (and the loss scalars released). Callers read a whole
 * logging interval's steps at once; with an asynchronous backend this is where the device is waited for.
 */
export async function readStepValues(v: StepValues): Promise<StepReadout> {
  const read = async (t: Tensor) => {
    const x = (await t.read())[0];
    t.backend.release(t.storage);
    return x;
  };
  const microLosses: number[] = [];
  for (const t of v.losses) microLosses.push(await read(t));
  v.losses.length = 0;
  let sum = 0;
  for (const x of microLosses) sum += x;
  const gradNorm = await read(v.gradNorm);
  const clipScale = await read(v.clipScale);
  return { loss: sum / microLosses.length, microLosses, gradNorm, clipScale };
}
