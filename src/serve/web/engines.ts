// Where the playground's numbers come from: the server's API, or a model running in the page on one of the
// backends in BACKENDS (the fastest this browser runs: WebGPU, WebAssembly SIMD, or the reference backend). Both answer the
// same three questions: the levels of a text, its per-byte scores, and a streamed continuation.

import type { Backend } from "../../engine/backend.js";
import { RefBackend } from "../../backends/ref.js";
import { WasmBackend } from "../../backends/wasm.js";
import { AUNet } from "../../model/aunet.js";
import { parseConfig, paramSpecs, type AUNetConfig } from "../../model/config.js";
import { parseStrategy, type SplitStrategy } from "../../data/splitter.js";
import { Generator } from "../../generate/generator.js";
import { Batcher, type StreamToken } from "../batcher.js";
import { scoreWithTop, splitLevels, type TextScore } from "../analysis.js";

/** A backend the page can run the model on. */
export interface BackendChoice {
  id: string;
  label: string;
  /** Whether this browser can run it (a cheap check; create() may still fail, and then the next one is tried). */
  available(): boolean;
  create(): Promise<Backend>;
}

/** The WebGPU adapter navigator.gpu offers, if any (typed loosely: the page's WebGPU types are not loaded here). */
interface NavigatorGpu {
  gpu?: {
    requestAdapter(
      o?: object,
    ): Promise<{ isFallbackAdapter?: boolean; info?: { isFallbackAdapter?: boolean } } | null>;
  };
}

/** The backends, fastest first: a GPU, then the WebAssembly SIMD kernels, then plain TypeScript. */
export const BACKENDS: BackendChoice[] = [
  {
    id: "webgpu",
    label: "WebGPU",
    available: () => !!(globalThis.navigator as NavigatorGpu | undefined)?.gpu,
    create: async () => {
      const gpu = (globalThis.navigator as NavigatorGpu).gpu!;
      const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
      if (!adapter) throw new Error("navigator.gpu offers no adapter");
      // A software adapter (SwiftShader, WARP) is slower than the wasm kernels on the same CPU.
      if (adapter.isFallbackAdapter || adapter.info?.isFallbackAdapter)
        throw new Error("the only adapter is a software fallback");
      // Loaded only when a GPU is there: the WebGPU kernels are the largest part of the page's code.
      const { createWebGPUBackend } = await import("../../backends/webgpu/backend.js");
      return createWebGPUBackend();
    },
  },
  {
    id: "wasm",
    label: "WebAssembly SIMD",
    available: () => typeof WebAssembly === "object",
    // The kernel module lies beside the page (the server and the static site both serve it there).
    create: async () => WasmBackend.create(fetch("wasm/aunet.wasm")),
  },
  {
    id: "reference",
    label: "reference (TypeScript)",
    available: () => true,
    create: async () => new RefBackend(),
  },
];

/**
 * The first backend of BACKENDS that this browser runs (or the one named `prefer`, when it runs), with why
 * faster ones were passed over.
 */
export async function pickBackend(
  prefer?: string | null,
): Promise<{ choice: BackendChoice; backend: Backend; skipped: string[] }> {
  const skipped: string[] = [];
  const order = prefer ? BACKENDS.filter((b) => b.id === prefer) : BACKENDS;
  if (order.length === 0) throw new Error(`no backend "${prefer}" (${BACKENDS.map((b) => b.id).join(", ")})`);
  for (const choice of order) {
    if (!choice.available()) {
      skipped.push(`${choice.label}: not in this browser`);
      continue;
    }
    try {
      return { choice, backend: await choice.create(), skipped };
    } catch (e) {
      skipped.push(`${choice.label}: ${(e as Error).message}`);
    }
  }
  throw new Error(`no backend runs here (${skipped.join("; ")})`);
}

export interface GenerateRequest {
  prompt: string;
  maxBytes: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
}

export interface Piece {
  text: string;
  tokens: StreamToken[];
}

export interface Engine {
  readonly label: string;
  readonly nLevels: number;
  readonly strategy: SplitStrategy;
  split(text: string): Promise<Int32Array>;
  score(text: string): Promise<TextScore>;
  /** Streams pieces of the continuation; resolves with the stop reason. */
  generate(req: GenerateRequest, onPiece: (p: Piece) => void, signal: AbortSignal): Promise<string>;
}

// ---------------------------------------------------------------------------------------------------------------
// The server's API

interface WireScore {
  bytes: number;
  log_likelihood: number;
  bits_per_byte: number;
  per_byte: { byte: number; level: number; logprob: number; top: { byte: number; logprob: number }[] }[];
}

async function post<T>(url: string, body: unknown, signal?: AbortSignal): Promise<T> {
  const r = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  if (!r.ok) {
    const e = (await r.json().catch(() => null)) as { error?: { message?: string } } | null;
    throw new Error(e?.error?.message ?? `${url}: HTTP ${r.status}`);
  }
  return (await r.json()) as T;
}

export class ServerEngine implements Engine {
  readonly label: string;

  constructor(
    readonly modelId: string,
    readonly strategy: SplitStrategy,
    readonly nLevels: number,
  ) {
    this.label = `server: ${modelId}`;
  }

  static async connect(): Promise<ServerEngine> {
    const r = (await (await fetch("v1/models")).json()) as {
      data: { id: string; stages: number; strategy: Record<string, string> }[];
    };
    const m = r.data[0];
    if (!m) throw new Error("the server has no model");
    return new ServerEngine(m.id, parseStrategy(m.strategy), m.stages - 1);
  }

  async split(text: string): Promise<Int32Array> {
    return splitLevels(text, this.strategy);
  }

  async score(text: string): Promise<TextScore> {
    const s = await post<WireScore>("v1/score", { text, top: 5 });
    return {
      logLikelihood: s.log_likelihood,
      bitsPerByte: s.bits_per_byte,
      bytes: s.per_byte.map((b) => ({
        byte: b.byte,
        level: b.level,
        logProb: b.logprob,
        top: b.top.map((t) => ({ id: t.byte, logProb: t.logprob })),
      })),
    };
  }

  async generate(req: GenerateRequest, onPiece: (p: Piece) => void, signal: AbortSignal): Promise<string> {
    const r = await fetch("v1/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        model: this.modelId,
        prompt: req.prompt,
        max_tokens: req.maxBytes,
        temperature: req.temperature,
        top_k: req.topK,
        top_p: req.topP,
        seed: req.seed,
        logprobs: 1,
        stream: true,
      }),
      signal,
    });
    if (!r.ok || !r.body) {
      const e = (await r.json().catch(() => null)) as { error?: { message?: string } } | null;
      throw new Error(e?.error?.message ?? `HTTP ${r.status}`);
    }
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    let reason = "length";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let cut: number;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") return reason;
        const msg = JSON.parse(data) as {
          error?: { message: string };
          choices: {
            text: string;
            finish_reason: string | null;
            levels: number[];
            logprobs: { token_logprobs: number[] } | null;
          }[];
        };
        if (msg.error) throw new Error(msg.error.message);
        const c = msg.choices[0];
        const bytes = new TextEncoder().encode(c.text);
        const tokens: StreamToken[] = c.levels.map((level, i) => ({
          id: i < bytes.length ? bytes[i] : 257,
          level,
          logProb: c.logprobs?.token_logprobs[i] ?? NaN,
        }));
        if (c.text.length > 0 || tokens.length > 0) onPiece({ text: c.text, tokens });
        if (c.finish_reason) reason = c.finish_reason;
      }
    }
    return reason;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// A model in the page

/** F32/BF16/F16 tensors of a safetensors buffer, by name (the subset of the format a model checkpoint uses). */
export function readSafetensorsBuffer(
  buf: ArrayBuffer,
): Map<string, { shape: number[]; data: Float32Array }> {
  const view = new DataView(buf);
  if (buf.byteLength < 8) throw new Error("not a safetensors file (too short)");
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > buf.byteLength - 8) throw new Error("not a safetensors file (bad header length)");
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, headerLen))) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + headerLen;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, e] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [a, b] = e.data_offsets;
    const n = e.shape.reduce((x, y) => x * y, 1);
    const data = new Float32Array(n);
    if (e.dtype === "F32") data.set(new Float32Array(buf.slice(base + a, base + b)));
    else if (e.dtype === "BF16" || e.dtype === "F16") {
      for (let i = 0; i < n; i++) data[i] = half(view.getUint16(base + a + 2 * i, true), e.dtype === "BF16");
    } else throw new Error(`${name}: dtype ${e.dtype} is not supported in the browser`);
    out.set(name, { shape: e.shape, data });
  }
  return out;
}

function half(h: number, bf16: boolean): number {
  if (bf16) return new Float32Array(new Uint32Array([h << 16]).buffer)[0];
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Config and weights, checked against each other, from the two files of a model directory. */
export function modelFromFiles(
  configJson: string,
  safetensors: ArrayBuffer,
): { config: AUNetConfig; weights: Map<string, Float32Array> } {
  const config = parseConfig(JSON.parse(configJson));
  const tensors = readSafetensorsBuffer(safetensors);
  const weights = new Map<string, Float32Array>();
  for (const spec of paramSpecs(config.model)) {
    const t = tensors.get(spec.name);
    if (!t) throw new Error(`the weights lack ${spec.name}: they do not match the config`);
    if (t.shape.join() !== spec.shape.join())
      throw new Error(`${spec.name} has shape [${t.shape}] but the config needs [${spec.shape}]`);
    weights.set(spec.name, t.data);
  }
  return { config, weights };
}

/** Yield to the page between steps without the 4 ms clamp of nested timeouts. */
function defer(fn: () => void): void {
  const ch = new MessageChannel();
  ch.port1.onmessage = () => fn();
  ch.port2.postMessage(null);
}

export class LocalEngine implements Engine {
  readonly generator: Generator;
  readonly strategy: SplitStrategy;
  readonly nLevels: number;
  private readonly batcher: Batcher;

  constructor(
    readonly label: string,
    config: AUNetConfig,
    weights: Map<string, Float32Array>,
    backend: Backend,
  ) {
    const model = new AUNet(config.model, backend, weights);
    this.generator = new Generator(model, config.strategy);
    this.strategy = config.strategy;
    this.nLevels = model.nLevels;
    this.batcher = new Batcher(this.generator, { maxBatch: 4, maxQueue: 4, defer });
  }

  async split(text: string): Promise<Int32Array> {
    return splitLevels(text, this.strategy);
  }

  async score(text: string): Promise<TextScore> {
    return scoreWithTop(this.generator, text, "", { top: 5, pause: () => new Promise((r) => defer(r)) });
  }

  generate(req: GenerateRequest, onPiece: (p: Piece) => void, signal: AbortSignal): Promise<string> {
    return new Promise((resolve, reject) => {
      const ticket = this.batcher.submit({
        prompt: req.prompt,
        maxBytes: req.maxBytes,
        sampling: { temperature: req.temperature, topK: req.topK, topP: req.topP },
        seed: req.seed,
        stop: [],
        topLogprobs: 0,
        onChunk: (c) => onPiece(c),
        onDone: (reason) => resolve(reason === "max_bytes" ? "length" : "stop"),
        onError: reject,
      });
      if (!ticket) return reject(new Error("busy"));
      signal.addEventListener("abort", () => {
        ticket.cancel();
        resolve("cancelled");
      });
    });
  }
}

/** Load a model directory's two files from a URL (ending in /) onto a backend. */
export async function loadLocalEngine(
  url: string,
  choice: BackendChoice,
  backend: Backend,
): Promise<LocalEngine> {
  const base = url.endsWith("/") ? url : url + "/";
  const [cfg, st] = await Promise.all([
    fetch(base + "params.json").then((r) => {
      if (!r.ok) throw new Error(`${base}params.json: HTTP ${r.status}`);
      return r.text();
    }),
    fetch(base + "model.safetensors").then((r) => {
      if (!r.ok) throw new Error(`${base}model.safetensors: HTTP ${r.status}`);
      return r.arrayBuffer();
    }),
  ]);
  const { config, weights } = modelFromFiles(cfg, st);
  return new LocalEngine(`in the page (${choice.label}): ${base}`, config, weights, backend);
}
