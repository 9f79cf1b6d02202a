// `aunet serve`: an OpenAI-compatible completions API over one continuously batched generator, scoring and
// splitting for the playground, the training dashboard's metrics, and the pages themselves.
//
// Robustness rules: every request body is bounded (413) and checked field by field (400 naming the field);
// the batch and its queue are bounded (429 with Retry-After); a client that goes away is cancelled at the next
// step; an exception inside one request fails that request only. drain() stops accepting, lets what is in flight
// finish, then closes.

import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { parseStrategy } from "../data/splitter.js";
import { Batcher, type Chunk, type StreamToken, type Ticket } from "./batcher.js";
import { scoreWithTop, splitLevels } from "./analysis.js";
import {
  ApiError,
  DEFAULT_LIMITS,
  parseBody,
  parseCompletion,
  parseScore,
  parseSplit,
  tokenString,
  type Limits,
} from "./protocol.js";
import { listRuns, readRunMetrics } from "./runs.js";
import type { ServedModel } from "./model.js";
import type { StopReason } from "../generate/generator.js";

export interface ServeOptions {
  model?: ServedModel;
  /** Directory of training runs for the dashboard. */
  runsDir?: string;
  maxBatch?: number;
  maxQueue?: number;
  maxBodyBytes?: number;
  limits?: Partial<Limits>;
  /** One line per request (method, path, status, milliseconds). */
  log?: (line: string) => void;
}

/** The package root: dist/src/serve/server.js -> ../../.. (web/ and the compiled modules live there). */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const WEB_DIR = path.join(ROOT, "web");
export const JS_DIR = path.join(ROOT, "dist", "src");
/** The wasm backend's kernels, for the playground's in-page models (built at install, shipped prebuilt). */
export const WASM_FILE = path.join(ROOT, "wasm", "aunet.wasm");

const MIME: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".safetensors": "application/octet-stream",
  // compileStreaming needs this type.
  ".wasm": "application/wasm",
};

const PAGES: Record<string, string> = { "/": "index.html", "/dashboard": "dashboard.html" };

export class AunetServer {
  readonly http: http.Server;
  readonly batcher: Batcher | null;
  private readonly limits: Limits;
  private readonly maxBodyBytes: number;
  private draining = false;
  private inFlight = 0;
  private inFlightDone: (() => void)[] = [];
  /** Mean seconds a completion took, for Retry-After. */
  private meanJobSeconds = 1;

  constructor(readonly options: ServeOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.maxBodyBytes = options.maxBodyBytes ?? 1 << 20;
    const maxBatch = options.maxBatch ?? 32;
    this.limits.maxPrompts = Math.min(this.limits.maxPrompts, maxBatch);
    this.batcher = options.model
      ? new Batcher(options.model.generator, {
          maxBatch,
          maxQueue: options.maxQueue ?? 2 * maxBatch,
          defer: (fn) => setImmediate(fn),
        })
      : null;
    this.http = http.createServer((req, res) => this.handle(req, res));
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.http.once("error", reject);
      this.http.listen(port, host, () => {
        this.http.off("error", reject);
        resolve((this.http.address() as { port: number }).port);
      });
    });
  }

  /** Stop accepting, finish every request in flight, close. */
  async drain(): Promise<void> {
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeIdleConnections();
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.inFlightDone.push(resolve));
    this.http.closeIdleConnections();
    await closed;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const t0 = performance.now();
    this.inFlight++;
    res.on("close", () => {
      this.options.log?.(
        `${req.method} ${req.url} ${res.statusCode} ${(performance.now() - t0).toFixed(0)} ms`,
      );
      if (--this.inFlight === 0) for (const f of this.inFlightDone.splice(0)) f();
    });
    if (this.draining) res.setHeader("Connection", "close");
    this.route(req, res).catch((e: unknown) => this.fail(res, e));
  }

  private fail(res: http.ServerResponse, e: unknown): void {
    const err =
      e instanceof ApiError
        ? e
        : new ApiError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`);
    if (!(e instanceof ApiError)) this.options.log?.(`error: ${e instanceof Error ? e.stack : String(e)}`);
    if (res.headersSent) {
      if (!res.writableEnded) res.end();
      return;
    }
    sendJson(res, err.status, err.body());
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const p = url.pathname;
    const api = p.startsWith("/v1/") || p === "/health";
    if (api && this.draining) throw new ApiError(503, "the server is shutting down");
    const post = ["/v1/completions", "/v1/score", "/v1/split"].includes(p);
    if (post && req.method !== "POST") throw new ApiError(405, `${p} takes POST`);
    if (!post && req.method !== "GET" && req.method !== "HEAD") throw new ApiError(405, `${p} takes GET`);

    if (p === "/v1/completions") return this.completions(await this.body(req), req, res);
    if (p === "/v1/score") return this.score(await this.body(req), res);
    if (p === "/v1/split") return this.split(await this.body(req), res);
    if (p === "/v1/models") return this.models(res);
    if (p === "/health") return this.health(res);
    if (p === "/v1/runs") return this.runs(res);
    if (p === "/v1/runs/metrics") return this.runMetrics(url, res);
    if (p === "/site.json") return sendJson(res, 200, this.siteConfig());
    if (PAGES[p]) return sendFile(res, path.join(WEB_DIR, PAGES[p]));
    if (p.startsWith("/static/")) return sendUnder(res, WEB_DIR, p.slice("/static/".length));
    if (p.startsWith("/js/") && p.endsWith(".js")) return sendUnder(res, JS_DIR, p.slice("/js/".length));
    if (p === "/wasm/aunet.wasm") return sendFile(res, WASM_FILE);
    if (p === "/model/params.json" && this.options.model)
      return sendFile(res, this.options.model.configFile, "application/json");
    if (p === "/model/model.safetensors" && this.options.model)
      return sendFile(res, path.join(this.options.model.dir, "model.safetensors"));
    throw new ApiError(404, `no such path: ${p}`);
  }

  private siteConfig(): object {
    const m = this.options.model;
    return { server: true, model: m ? { id: m.id, url: "model/" } : null, runs: !!this.options.runsDir };
  }

  /** The request body as JSON, refused past the size limit (413) or when malformed (400). */
  private body(req: http.IncomingMessage): Promise<Record<string, unknown>> {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > this.maxBodyBytes) {
      req.resume();
      return Promise.reject(new ApiError(413, `the request body is larger than ${this.maxBodyBytes} bytes`));
    }
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      let size = 0;
      req.on("data", (b: Buffer) => {
        size += b.length;
        if (size > this.maxBodyBytes) {
          req.removeAllListeners("data");
          req.resume();
          reject(new ApiError(413, `the request body is larger than ${this.maxBodyBytes} bytes`));
          return;
        }
        parts.push(b);
      });
      req.on("end", () => {
        try {
          resolve(parseBody(Buffer.concat(parts).toString("utf8")));
        } catch (e) {
          reject(e);
        }
      });
      req.on("error", reject);
    });
  }

  private needModel(): ServedModel {
    if (!this.options.model)
      throw new ApiError(404, "no model is loaded (start the server with --ckpt)", "model");
    return this.options.model;
  }

  private models(res: http.ServerResponse): void {
    const m = this.options.model;
    const data = m
      ? [
          {
            id: m.id,
            object: "model",
            created: m.created,
            owned_by: "aunet",
            parameters: m.params,
            stages: m.config.model.dimensions.length,
            strategy: m.config.strategyRaw,
          },
        ]
      : [];
    sendJson(res, 200, { object: "list", data });
  }

  private health(res: http.ServerResponse): void {
    const b = this.batcher;
    sendJson(res, 200, {
      status: this.draining ? "draining" : "ok",
      active: b?.activeCount ?? 0,
      waiting: b?.waitingCount ?? 0,
      steps: b?.steps ?? 0,
      row_steps: b?.rowSteps ?? 0,
      rss: process.memoryUsage().rss,
    });
  }

  private completions(
    body: Record<string, unknown>,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): void {
    const model = this.needModel();
    const params = parseCompletion(body, this.limits, () => randomBytes(4).readUInt32LE() >>> 2);
    const batcher = this.batcher!;
    if (!batcher.canAccept(params.prompts.length)) {
      const wait = Math.max(
        1,
        Math.ceil(this.meanJobSeconds * (1 + batcher.waitingCount / batcher.options.maxBatch)),
      );
      res.setHeader("Retry-After", String(wait));
      throw new ApiError(
        429,
        `the server is busy (${batcher.activeCount} running, ${batcher.waitingCount} queued); retry after ${wait} s`,
      );
    }
    const id = `cmpl-${randomBytes(12).toString("hex")}`;
    const created = Math.floor(Date.now() / 1000);
    const t0 = performance.now();
    const n = params.prompts.length;
    const results = params.prompts.map(() => ({
      text: [] as string[],
      tokens: [] as StreamToken[],
      reason: null as StopReason | null,
    }));
    let remaining = n;
    let finished = false;
    const tickets: Ticket[] = [];
    const promptBytes = params.prompts.reduce((a, s) => a + Buffer.byteLength(s) + 1, 0);

    const end = () => {
      finished = true;
      const secs = (performance.now() - t0) / 1000;
      this.meanJobSeconds = 0.8 * this.meanJobSeconds + 0.2 * secs;
      if (params.stream) {
        res.end("data: [DONE]\n\n");
        return;
      }
      const completionTokens = results.reduce((a, r) => a + r.tokens.length, 0);
      sendJson(res, 200, {
        id,
        object: "text_completion",
        created,
        model: model.id,
        choices: results.map((r, index) => ({
          index,
          text: r.text.join(""),
          logprobs: params.logprobs > 0 ? logprobsOf(r.tokens, 0) : null,
          finish_reason: finishReason(r.reason!),
          levels: r.tokens.map((t) => t.level),
        })),
        usage: {
          prompt_tokens: promptBytes,
          completion_tokens: completionTokens,
          total_tokens: promptBytes + completionTokens,
        },
      });
    };
    const chunkEvent = (index: number, chunk: Chunk, offset: number, reason: StopReason | null) => ({
      id,
      object: "text_completion",
      created,
      model: model.id,
      choices: [
        {
          index,
          text: chunk.text,
          logprobs: params.logprobs > 0 ? logprobsOf(chunk.tokens, offset) : null,
          finish_reason: reason === null ? null : finishReason(reason),
          levels: chunk.tokens.map((t) => t.level),
        },
      ],
    });

    if (params.stream) {
      res.writeHead(200, {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
      });
      res.flushHeaders();
    }
    res.on("close", () => {
      if (!finished) for (const t of tickets) t.cancel();
    });
    params.prompts.forEach((prompt, index) => {
      const r = results[index];
      let offset = 0;
      const ticket = batcher.submit({
        prompt,
        maxBytes: params.maxBytes,
        sampling: params.sampling,
        seed: params.seed + index,
        stop: params.stop,
        topLogprobs: params.logprobs,
        onChunk: (chunk) => {
          r.text.push(chunk.text);
          r.tokens.push(...chunk.tokens);
          if (params.stream) res.write(`data: ${JSON.stringify(chunkEvent(index, chunk, offset, null))}\n\n`);
          offset += Buffer.byteLength(chunk.text);
        },
        onDone: (reason) => {
          r.reason = reason;
          if (params.stream)
            res.write(
              `data: ${JSON.stringify(chunkEvent(index, { text: "", tokens: [] }, offset, reason))}\n\n`,
            );
          if (--remaining === 0) end();
        },
        onError: (e) => {
          finished = true;
          for (const t of tickets) t.cancel();
          if (params.stream) {
            const err = new ApiError(500, `generation failed: ${e instanceof Error ? e.message : String(e)}`);
            res.end(`data: ${JSON.stringify(err.body())}\n\n`);
          } else this.fail(res, e);
        },
      });
      // canAccept above reserved the places; submit cannot refuse in between (one thread).
      tickets.push(ticket!);
    });
  }

  private async score(body: Record<string, unknown>, res: http.ServerResponse): Promise<void> {
    const model = this.needModel();
    const p = parseScore(body, this.limits);
    // A long text is scored in slices with the generation steps in between; a client that leaves stops it.
    const gone = new AbortController();
    res.on("close", () => gone.abort());
    const s = await scoreWithTop(model.generator, p.text, p.prompt, {
      top: p.top,
      pause: () => new Promise((r) => setImmediate(r)),
      signal: gone.signal,
    });
    sendJson(res, 200, {
      object: "score",
      model: model.id,
      bytes: s.bytes.length,
      log_likelihood: s.logLikelihood,
      bits_per_byte: s.bitsPerByte,
      per_byte: s.bytes.map((b) => ({
        byte: b.byte,
        level: b.level,
        logprob: b.logProb,
        top: b.top.map((t) => ({ byte: t.id, logprob: t.logProb })),
      })),
    });
  }

  private split(body: Record<string, unknown>, res: http.ServerResponse): void {
    const p = parseSplit(body, this.limits);
    let strategy;
    if (p.strategy !== null) {
      try {
        strategy = parseStrategy(p.strategy);
      } catch (e) {
        throw new ApiError(400, `'strategy' is not a splitter strategy: ${(e as Error).message}`, "strategy");
      }
    } else strategy = this.needModel().config.strategy;
    const levels = splitLevels(p.text, strategy);
    sendJson(res, 200, { object: "split", levels: Array.from(levels), n_levels: strategy.entries.length });
  }

  private runs(res: http.ServerResponse): void {
    if (!this.options.runsDir)
      throw new ApiError(404, "no runs directory (start the server with --runs DIR)");
    sendJson(res, 200, { object: "list", data: listRuns(this.options.runsDir) });
  }

  private runMetrics(url: URL, res: http.ServerResponse): void {
    if (!this.options.runsDir)
      throw new ApiError(404, "no runs directory (start the server with --runs DIR)");
    const name = url.searchParams.get("run");
    if (!name) throw new ApiError(400, "'run' is required", "run");
    const offset = Number(url.searchParams.get("offset") ?? 0);
    if (!Number.isInteger(offset) || offset < 0)
      throw new ApiError(400, "'offset' must be an integer >= 0", "offset");
    const got = readRunMetrics(this.options.runsDir, name, offset);
    if (!got) throw new ApiError(404, `no such run: ${name}`, "run");
    sendJson(res, 200, got);
  }
}

function finishReason(r: StopReason): "stop" | "length" {
  return r === "max_bytes" ? "length" : "stop";
}

/** OpenAI's legacy logprobs object for some tokens; `offset` is the text offset of the first. */
function logprobsOf(tokens: readonly StreamToken[], offset: number) {
  const textOffset: number[] = [];
  let o = offset;
  for (const t of tokens) {
    textOffset.push(o);
    if (t.id < 256) o++;
  }
  return {
    tokens: tokens.map((t) => tokenString(t.id)),
    token_logprobs: tokens.map((t) => t.logProb),
    top_logprobs: tokens.map((t) =>
      Object.fromEntries((t.top ?? []).map((c) => [tokenString(c.id), c.logProb])),
    ),
    text_offset: textOffset,
  };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

/** A file under `root` named by a URL path (no escaping the root, no hidden files). */
function sendUnder(res: http.ServerResponse, root: string, rel: string): void {
  const parts = decodeURIComponent(rel).split("/");
  if (parts.some((s) => s === "" || s.startsWith(".") || s.includes("\\")))
    throw new ApiError(404, `no such file: ${rel}`);
  sendFile(res, path.join(root, ...parts));
}

function sendFile(res: http.ServerResponse, file: string, type?: string): void {
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch {
    throw new ApiError(404, `no such file: ${path.basename(file)}`);
  }
  res.writeHead(200, {
    "Content-Type": type ?? MIME[path.extname(file)] ?? "application/octet-stream",
    "Content-Length": data.length,
    "Cache-Control": "no-cache",
  });
  res.end(data);
}
