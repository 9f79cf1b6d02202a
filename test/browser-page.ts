// What test/browser-backends.test.ts runs inside the page: the library's compiled modules, imported straight
// from dist/ by the browser (no bundler), on a backend the page creates. Everything here is browser-portable
// (fetch, no Node modules); the test reads the returned numbers and judges them against the reference.
import type { Backend } from "../src/engine/backend.js";
import { RefBackend } from "../src/backends/ref.js";
import { WasmBackend } from "../src/backends/wasm.js";
import { AUNet } from "../src/model/aunet.js";
import { parseConfig } from "../src/model/config.js";
import { levelMask } from "../src/data/splitter.js";
import { trainStep } from "../src/train/step.js";
import { AdamW, OFFICIAL_ADAMW } from "../src/train/optimizer.js";
import { modelFromFiles } from "../src/serve/web/engines.js";

export type BackendId = "reference" | "wasm" | "webgpu";

/** The backend `id`, as a page makes it: wasm from the served kernel module, WebGPU from navigator.gpu. */
export async function makeBackend(id: BackendId): Promise<Backend> {
  if (id === "reference") return new RefBackend();
  if (id === "wasm") return WasmBackend.create(fetch("/wasm/aunet.wasm"));
  const { createWebGPUBackend } = await import("../src/backends/webgpu/backend.js");
  return createWebGPUBackend();
}

async function get(url: string): Promise<Response> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r;
}

/** One F32 tensor of a safetensors buffer (the expected outputs also hold integer tensors, skipped here). */
function f32Tensor(buf: ArrayBuffer, name: string): Float32Array {
  const headerLen = Number(new DataView(buf).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, headerLen))) as Record<
    string,
    { dtype: string; data_offsets: [number, number] }
  >;
  const e = header[name];
  if (!e || e.dtype !== "F32") throw new Error(`no F32 tensor ${name}`);
  return new Float32Array(buf.slice(8 + headerLen + e.data_offsets[0], 8 + headerLen + e.data_offsets[1]));
}

export interface ForwardResult {
  backend: string;
  logits: number;
  logitsMaxAbsErr: number;
  loss: number;
  lossExpected: number;
}

/** An official fixture's forward (its inputs.json batch) on `id`, against the fixture's expected logits. */
export async function fixtureForward(id: BackendId, dir: string): Promise<ForwardResult> {
  const backend = await makeBackend(id);
  const [params, weights, inputs, expected] = await Promise.all([
    get(`${dir}/params.json`).then((r) => r.text()),
    get(`${dir}/model.safetensors`).then((r) => r.arrayBuffer()),
    get(`${dir}/inputs.json`).then((r) => r.json() as Promise<Record<string, number[][]>>),
    get(`${dir}/expected.safetensors`).then((r) => r.arrayBuffer()),
  ]);
  const { config, weights: w } = modelFromFiles(params, weights);
  const model = new AUNet(config.model, backend, w);
  const B = inputs.tokens.length;
  const S = inputs.tokens[0].length;
  const flat = (rows: number[][]) => Int32Array.from(rows.flat());
  const r = model.loss(flat(inputs.tokens), flat(inputs.level_mask), flat(inputs.targets), B, S, {
    padToCap: true,
  });
  const logits = await r.logits.read();
  const want = f32Tensor(expected, "logits");
  if (logits.length !== want.length) throw new Error(`${logits.length} logits, expected ${want.length}`);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(logits[i] - want[i]));
  return {
    backend: backend.name,
    logits: logits.length,
    logitsMaxAbsErr: worst,
    loss: (await r.loss.read())[0],
    lossExpected: f32Tensor(expected, "loss")[0],
  };
}

/** A small three-stage model (two pooling levels, sliding window, grouped-query attention). */
const SMALL = parseConfig({
  model: {
    dimensions: [16, 24, 32],
    head_dims: [8, 8, 8],
    layers: [1, 1, 1],
    sliding_windows: [9, null, null],
    max_seqlens: [32, 12, 6],
    residuals: [true, true],
    block: { rope_theta: 500, multiple_of: 8, n_kv_heads: 1 },
    pooling_type: "simple_indexed_matmul",
    seed: 4,
  },
  data: { seq_len: 32, regex: { strategy: { word1: "1@1", word2: "2@1" } } },
});

/** Batch `k` of a fixed text: B rows of S bytes, each row's targets the next bytes. */
function batch(k: number, B: number, S: number) {
  const text = new TextEncoder().encode(
    "the model pools words, then pairs of words, and upsamples. ".repeat(4),
  );
  const tokens = new Int32Array(B * S);
  const targets = new Int32Array(B * S);
  const mask = new Int32Array(B * S);
  for (let b = 0; b < B; b++) {
    const row = text.subarray(7 * k + 5 * b, 7 * k + 5 * b + S + 1);
    mask.set(levelMask(row.subarray(0, S), SMALL.strategy), b * S);
    for (let i = 0; i < S; i++) {
      tokens[b * S + i] = row[i];
      targets[b * S + i] = row[i + 1];
    }
  }
  return { tokens, targets, mask };
}

/** `steps` AdamW steps (the trainer's trainStep) of the small model on `id`; each step's loss. */
export async function trainLosses(id: BackendId, steps: number): Promise<number[]> {
  const backend = await makeBackend(id);
  const model = new AUNet(SMALL.model, backend);
  const B = 2;
  const S = 32;
  const optimizer = new AdamW(model.params, backend, OFFICIAL_ADAMW);
  let k = 0;
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const values = await trainStep(
      {
        model: {
          loss: (b: ReturnType<typeof batch>) => model.loss(b.tokens, b.mask, b.targets, B, S).loss,
          zeroGrad: () => model.zeroGrad(),
        },
        optimizer,
        gradAcc: 1,
        nextBatch: async () => batch(k++, B, S),
      },
      3e-3,
    );
    losses.push((await values.losses[0].read())[0]);
  }
  return losses;
}
