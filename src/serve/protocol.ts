// The request bodies of the HTTP API, checked field by field. A bad request becomes an ApiError with the HTTP
// status and the offending field, answered in OpenAI's error shape: {"error": {"message", "type", "param",
// "code"}}. Unknown fields are ignored, as OpenAI does.

import type { SamplingOptions } from "../generate/sampling.js";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly type = status === 429
      ? "rate_limit_error"
      : status >= 500
        ? "server_error"
        : "invalid_request_error",
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: null } };
  }
}

export interface Limits {
  /** Longest prompt (and scored text) in bytes. */
  maxPromptBytes: number;
  /** Largest max_tokens. */
  maxTokens: number;
  /** Most prompts in one request. */
  maxPrompts: number;
}

export const DEFAULT_LIMITS: Limits = { maxPromptBytes: 16384, maxTokens: 4096, maxPrompts: 16 };

export interface CompletionParams {
  prompts: string[];
  maxBytes: number;
  sampling: SamplingOptions;
  seed: number;
  stop: string[];
  logprobs: number;
  stream: boolean;
}

export interface ScoreParams {
  text: string;
  prompt: string;
  top: number;
}

export interface SplitParams {
  text: string;
  strategy: unknown;
}

type Json = Record<string, unknown>;

/** The request body as a JSON object, or a 400 saying why not. */
export function parseBody(raw: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (e) {
    throw new ApiError(400, `the request body is not valid JSON: ${(e as Error).message}`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v))
    throw new ApiError(400, "the request body must be a JSON object");
  return v as Json;
}

function bad(param: string, what: string, got: unknown): ApiError {
  const shown = JSON.stringify(got);
  return new ApiError(
    400,
    `'${param}' must be ${what}, got ${shown === undefined ? String(got) : shown.slice(0, 80)}`,
    param,
  );
}

function has(body: Json, key: string): boolean {
  return body[key] !== undefined && body[key] !== null;
}

function number(
  body: Json,
  key: string,
  dflt: number,
  o: { int?: boolean; min?: number; max?: number; above?: number },
): number {
  if (!has(body, key)) return dflt;
  const v = body[key];
  const range =
    (o.int ? "an integer" : "a number") +
    (o.above !== undefined ? ` > ${o.above}` : o.min !== undefined ? ` >= ${o.min}` : "") +
    (o.max !== undefined ? ` and <= ${o.max}` : "");
  if (typeof v !== "number" || !Number.isFinite(v) || (o.int && !Number.isInteger(v)))
    throw bad(key, range, v);
  if (
    (o.min !== undefined && v < o.min) ||
    (o.above !== undefined && !(v > o.above)) ||
    (o.max !== undefined && v > o.max)
  )
    throw bad(key, range, v);
  return v;
}

function text(body: Json, key: string, limits: Limits, required: boolean): string {
  if (!has(body, key)) {
    if (required) throw new ApiError(400, `'${key}' is required`, key);
    return "";
  }
  const v = body[key];
  if (typeof v !== "string") throw bad(key, "a string", v);
  checkLength(key, v, limits);
  return v;
}

function checkLength(key: string, s: string, limits: Limits): void {
  // UTF-8 is at most 3 bytes per UTF-16 unit: skip the exact count for short strings.
  if (s.length * 3 > limits.maxPromptBytes && new TextEncoder().encode(s).length > limits.maxPromptBytes)
    throw new ApiError(400, `'${key}' is longer than ${limits.maxPromptBytes} bytes`, key);
}

export function parseCompletion(body: Json, limits: Limits, randomSeed: () => number): CompletionParams {
  let prompts: string[];
  const p = body.prompt;
  if (p === undefined || p === null) prompts = [""];
  else if (typeof p === "string") prompts = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === "string")) prompts = p as string[];
  else throw bad("prompt", "a string or a non-empty array of strings", p);
  if (prompts.length > limits.maxPrompts)
    throw new ApiError(400, `'prompt' has more than ${limits.maxPrompts} prompts`, "prompt");
  for (const s of prompts) checkLength("prompt", s, limits);
  const n = number(body, "n", 1, { int: true, min: 1, max: 1 });
  void n;
  if (has(body, "echo") && body.echo !== false) throw bad("echo", "false (echo is not supported)", body.echo);
  const stream = has(body, "stream") ? body.stream : false;
  if (typeof stream !== "boolean") throw bad("stream", "a boolean", stream);
  let stop: string[] = [];
  const s = body.stop;
  if (typeof s === "string") stop = [s];
  else if (Array.isArray(s) && s.length <= 4 && s.every((x) => typeof x === "string")) stop = s as string[];
  else if (s !== undefined && s !== null) throw bad("stop", "a string or an array of at most 4 strings", s);
  if (stop.some((x) => x.length === 0)) throw bad("stop", "non-empty strings", s);
  return {
    prompts,
    maxBytes: number(body, "max_tokens", 16, { int: true, min: 0, max: limits.maxTokens }),
    sampling: {
      temperature: number(body, "temperature", 1, { min: 0, max: 100 }),
      topK: number(body, "top_k", 0, { int: true, min: 0, max: 258 }),
      topP: number(body, "top_p", 1, { above: 0, max: 1 }),
    },
    seed: has(body, "seed")
      ? number(body, "seed", 0, { int: true, min: 0, max: 2 ** 31 - 1 - limits.maxPrompts })
      : randomSeed(),
    stop,
    logprobs: number(body, "logprobs", 0, { int: true, min: 0, max: 5 }),
    stream,
  };
}

export function parseScore(body: Json, limits: Limits): ScoreParams {
  const t = text(body, "text", limits, true);
  if (t.length === 0) throw bad("text", "a non-empty string", t);
  return {
    text: t,
    prompt: text(body, "prompt", limits, false),
    top: number(body, "top", 5, { int: true, min: 0, max: 20 }),
  };
}

export function parseSplit(body: Json, limits: Limits): SplitParams {
  return {
    text: text(body, "text", limits, true),
    strategy: has(body, "strategy") ? body.strategy : null,
  };
}

/** How a byte appears as a token string in OpenAI's logprobs: itself when ASCII, else `bytes:\xNN`. */
export function tokenString(id: number): string {
  if (id < 128) return String.fromCharCode(id);
  if (id < 256) return `bytes:\\x${id.toString(16).padStart(2, "0")}`;
  return id === 256 ? "<bos>" : "<eos>";
}
