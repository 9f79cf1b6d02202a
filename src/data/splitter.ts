// The splitting function of AU-Net (spec section 6): which bytes are boundaries, and at which level.
//
// This reproduces the official `RegexPool` (apps/aunet/data/regex_cutting.py) on whole buffers. The regular
// expressions are translated to JavaScript with Python `regex`-module semantics: `\s` is spelled out (JS
// disagrees on U+0085 and U+FEFF), `\p{..}` needs the `u` flag, `\d` is Unicode Nd, offsets are counted in
// code points, and the possessive `{1,3}+` becomes `(?=(X{1,3}))\k`. The generation-time (incremental) view
// lives in incremental.ts; it is checked against this file.

import { UserError } from "../util/errors.js";
import { BOS, EOS, Utf8Reader, encodeText, isByteId } from "./bytes.js";

export type StrategyKind = "word" | "pretok" | "punct";

export interface StrategyEntry {
  /** The key as written in the config (`word1`, `pretok`, ...): its position in the strategy is its level. */
  readonly key: string;
  readonly value: string;
  readonly kind: StrategyKind;
  /** `word*` only: words per group G of `"G@M"` (the END regex closes every G-th word). */
  readonly groupSize: number;
  /**
   * Key exactly `word` only: the M values of `"G@M1-M2..."`; the n-th END match (0-based, per text segment)
   * is kept when n is a multiple of any of them. Null keeps every match.
   */
  readonly keepEvery: readonly number[] | null;
}

/** A validated splitting strategy: entry k gives level k+1. */
export class SplitStrategy {
  constructor(readonly entries: readonly StrategyEntry[]) {}

  get numLevels(): number {
    return this.entries.length;
  }

  /** The CLI spelling, `word1=1@1,word2=2@1`. */
  toString(): string {
    return this.entries.map((e) => `${e.key}=${e.value}`).join(",");
  }

  /** The config spelling, an ordered object. */
  toJSON(): Record<string, string> {
    const o: Record<string, string> = {};
    for (const e of this.entries) o[e.key] = e.value;
    return o;
  }
}

export type StrategyInput = SplitStrategy | string | Readonly<Record<string, unknown>>;

// Large enough for any sensible grouping, small enough that the END regex stays cheap to compile.
const MAX_GROUP_SIZE = 4096;
/**
 * Entries of one strategy. Each entry is one level, a model pools once per level and has at most 8 stages (the
 * paper uses 1 to 3 levels); every entry costs a pass over the text, so 3,000 entries made a 2 KB prompt take
 * 11.6 s to prefill.
 */
export const MAX_STRATEGY_ENTRIES = 16;

function parseEntry(key: string, value: unknown): StrategyEntry {
  if (typeof value !== "string") {
    throw new UserError(
      `Split strategy entry "${key}" must be a string such as "1@1", got ${JSON.stringify(value)}.`,
    );
  }
  let kind: StrategyKind;
  if (key.startsWith("word")) kind = "word";
  else if (key.startsWith("pretok")) kind = "pretok";
  else if (key.startsWith("punct")) kind = "punct";
  else {
    throw new UserError(
      `Unknown split strategy "${key}": keys must start with "word", "pretok" or "punct" (e.g. word1=1@1).`,
    );
  }
  if (kind !== "word") return { key, value, kind, groupSize: 0, keepEvery: null };

  // The official code only reads int(value.split("@")[0]), and the part after "@" only for the key `word`;
  // anything that is not digits there would crash it later, so it is rejected here.
  const m = /^(\d+)(?:@(\d+(?:-\d+)*))?$/.exec(value);
  if (m === null) {
    throw new UserError(
      `Split strategy "${key}" has malformed value "${value}": expected "G@M" such as "2@1".`,
    );
  }
  const groupSize = Number(m[1]);
  if (groupSize < 1 || groupSize > MAX_GROUP_SIZE) {
    throw new UserError(
      `Split strategy "${key}" needs a group size between 1 and ${MAX_GROUP_SIZE}, got "${value}".`,
    );
  }
  let keepEvery: number[] | null = null;
  if (key === "word") {
    if (m[2] === undefined) {
      throw new UserError(
        `Split strategy "word" needs a value "G@M" (every M-th group is kept), got "${value}".`,
      );
    }
    keepEvery = m[2].split("-").map(Number);
    if (keepEvery.some((k) => k < 1)) {
      throw new UserError(`Split strategy "word" has "${value}": every M in "G@M1-M2" must be at least 1.`);
    }
  }
  return { key, value, kind, groupSize, keepEvery };
}

/**
 * Validate a strategy given as the official ordered object (`{word1: "1@1", word2: "2@1"}`), as its JSON
 * text, or as the CLI string `word1=1@1,word2=2@1`. Throws UserError with one sentence on anything the
 * official code would reject or crash on.
 */
export function parseStrategy(input: unknown): SplitStrategy {
  if (input instanceof SplitStrategy) return input;
  let pairs: [string, unknown][];
  if (typeof input === "string") {
    const text = input.trim();
    if (text.startsWith("{") || text.startsWith("[")) {
      let obj: unknown;
      try {
        obj = JSON.parse(text);
      } catch {
        throw new UserError(`Split strategy "${text}" is not valid JSON.`);
      }
      if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
        throw new UserError(`Split strategy JSON must be an object such as {"word1": "1@1"}.`);
      }
      pairs = Object.entries(obj);
    } else {
      pairs = [];
      for (const item of text === "" ? [] : text.split(",")) {
        const eq = item.indexOf("=");
        if (eq < 0) {
          throw new UserError(
            `Split strategy item "${item.trim()}" must be written key=value, e.g. word1=1@1.`,
          );
        }
        pairs.push([item.slice(0, eq).trim(), item.slice(eq + 1).trim()]);
      }
    }
  } else if (input !== null && typeof input === "object" && !Array.isArray(input)) {
    pairs = Object.entries(input as Record<string, unknown>);
  } else {
    throw new UserError(`Split strategy must be an object such as {"word1": "1@1"} or a string "word1=1@1".`);
  }
  if (pairs.length > MAX_STRATEGY_ENTRIES) {
    throw new UserError(
      `Split strategy has ${pairs.length} entries; at most ${MAX_STRATEGY_ENTRIES} are allowed (one per level).`,
    );
  }
  const seen = new Set<string>();
  const entries = pairs.map(([key, value]) => {
    if (seen.has(key)) throw new UserError(`Split strategy key "${key}" appears twice.`);
    seen.add(key);
    return parseEntry(key, value);
  });
  return new SplitStrategy(entries);
}

/** The highest level a strategy can assign (one per entry). */
export function numLevels(strategy: StrategyInput): number {
  return parseStrategy(strategy).numLevels;
}

// ---------------------------------------------------------------------------------------------------------
// Character classes, shared with the incremental splitter.

/** Python `regex` `\s`: Unicode White_Space (JS `\s` adds U+FEFF and lacks U+0085). */
const WS_CLASS = "\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const WS = `[${WS_CLASS}]`;
const NWS = `[^${WS_CLASS}]`;
/** `[^\s\p{L}\p{N}]`: the punctuation/symbol class of every official regex. */
const PUNCT = `[^${WS_CLASS}\\p{L}\\p{N}]`;

export const C_WS = 1;
export const C_NL = 2; // \r or \n (always also C_WS)
export const C_SPACE = 4; // U+0020, the literal space of ` ?` (always also C_WS)
export const C_L = 8;
export const C_N = 16;
export const C_ND = 32; // always also C_N
export const C_X = 64; // none of \s, \p{L}, \p{N}

const RE_WS = new RegExp(`^${WS}$`, "u");
const RE_L = /^\p{L}$/u;
const RE_N = /^\p{N}$/u;
const RE_ND = /^\p{Nd}$/u;

function computeClass(cp: number): number {
  const ch = String.fromCodePoint(cp);
  if (RE_WS.test(ch)) return C_WS | (cp === 10 || cp === 13 ? C_NL : 0) | (cp === 32 ? C_SPACE : 0);
  if (RE_L.test(ch)) return C_L;
  if (RE_N.test(ch)) return C_N | (RE_ND.test(ch) ? C_ND : 0);
  return C_X;
}

const ASCII_CLASS = new Uint8Array(128);
for (let c = 0; c < 128; c++) ASCII_CLASS[c] = computeClass(c);
const classCache = new Map<number, number>();

/** Class bits (C_*) of a code point. */
export function charClass(cp: number): number {
  if (cp < 128) return ASCII_CLASS[cp]!;
  let c = classCache.get(cp);
  if (c === undefined) {
    c = computeClass(cp);
    if (classCache.size < 65536) classCache.set(cp, c);
  }
  return c;
}

// ---------------------------------------------------------------------------------------------------------
// The official regular expressions.
//
// Only PRETOK runs as a JavaScript regex. The other three are matched by hand below, because backtracking makes
// them quadratic on long runs: `(\S+?\s){G}` retries its lazy word from every character of a text without
// whitespace (80,000 x "a": 5.3 s), `\s*[\r\n]` rescans a run of spaces without a newline from every space,
// and PUNCT_RE's thousands look-ahead rescans a long digit run for every group of three. Each hand matcher
// reports exactly the matches the regex would (leftmost first, then on from the match's end), in linear time;
// test/hostile.test.ts checks them against the regexes on random texts, and test/splitter.test.ts against the
// official cases.

/** WORD_PUNCT_RE[0], a GPT-style pre-tokenizer; each match start is a boundary. */
const PRETOK_RE = new RegExp(
  `( ?\\p{L}{1,16})|\\p{N}{1,3}| ?(?=(${PUNCT}{1,3}))\\2[\\r\\n]*|${WS}*[\\r\\n]|${WS}+(?!${NWS})|${WS}+`,
  "gu",
);

type Classes = Uint8Array;

function classesOf(cps: ArrayLike<number>): Classes {
  const cls = new Uint8Array(cps.length);
  for (let j = 0; j < cps.length; j++) cls[j] = charClass(cps[j]!);
  return cls;
}

/**
 * The end of `\s*[\r\n]` matched at `p` (a whitespace character): one past the last line break of the
 * whitespace run starting at p, or -1 when the run has none. `runEnd` receives the run's end either way, since
 * the match fails the same way at every later position of a run without a line break.
 */
function wsToNewline(cls: Classes, p: number, runEnd: { at: number }): number {
  let last = -1;
  let r = p;
  while (r < cls.length && cls[r]! & C_WS) {
    if (cls[r]! & C_NL) last = r;
    r++;
  }
  runEnd.at = r;
  return last < 0 ? -1 : last + 1;
}

/** `X{1,3}` for a class bit X, then `[\r\n]*`: the end of the match at p (whose class has bit X). */
function upTo3ThenNewlines(cls: Classes, p: number, bit: number): number {
  let e = p + 1;
  while (e < cls.length && e < p + 3 && cls[e]! & bit) e++;
  while (e < cls.length && cls[e]! & C_NL) e++;
  return e;
}

/** Start offsets of NWORD_PUNCT_RE[0], `\p{N}{1,3}|(?:PUNCT{1,3}[\r\n]*)|\s*[\r\n]`. */
function startMatches(cls: Classes): number[] {
  const out: number[] = [];
  const run = { at: 0 };
  for (let p = 0; p < cls.length;) {
    const c = cls[p]!;
    if (c & C_N) {
      out.push(p);
      let e = p + 1;
      while (e < cls.length && e < p + 3 && cls[e]! & C_N) e++;
      p = e;
    } else if (c & C_X) {
      out.push(p);
      p = upTo3ThenNewlines(cls, p, C_X);
    } else if (c & C_WS) {
      const e = wsToNewline(cls, p, run);
      if (e >= 0) {
        out.push(p);
        p = e;
      } else p = run.at;
    } else p++;
  }
  return out;
}

/**
 * Start offsets of PUNCT_RE[0]: `\p{Nd}{1,3}(?=(?:\p{Nd}{3})+(?!\p{Nd}))` (the digits before a multiple of three
 * more), `\p{Nd}{1,3}(?=\P{Nd}|$)` (a last group), `(?=(PUNCT{1,3}))\1[\r\n]*`, `\s*[\r\n]`.
 */
function punctMatches(cls: Classes): number[] {
  const out: number[] = [];
  const run = { at: 0 };
  for (let p = 0; p < cls.length;) {
    const c = cls[p]!;
    if (c & C_ND) {
      let r = p + 1;
      while (r < cls.length && cls[r]! & C_ND) r++;
      // The first group is the 1-3 digits that leave a multiple of three (the look-ahead alternative, or the
      // second one for a run of at most 3), then groups of three up to the run's end.
      for (let q = p + ((r - p - 1) % 3) + 1, at = p; at < r; at = q, q += 3) out.push(at);
      p = r;
    } else if (c & C_X) {
      out.push(p);
      p = upTo3ThenNewlines(cls, p, C_X);
    } else if (c & C_WS) {
      const e = wsToNewline(cls, p, run);
      if (e >= 0) {
        out.push(p);
        p = e;
      } else p = run.at;
    } else p++;
  }
  return out;
}

/**
 * NWORD_PUNCT_RE[1] `(\S+?\s){G}`: G words, each closed by exactly one whitespace character; returns the index
 * of each match's closing whitespace. A match can only start at the start of a run of non-whitespace (the
 * lazy word always extends to the run's end, so every position of a run fails or succeeds alike), and it
 * succeeds when that run and the next G-1 are each followed by exactly one whitespace character, the last
 * by at least one. So: list the runs, count for each how many runs follow it one space apart, and step.
 */
function endMatches(cls: Classes, g: number): number[] {
  const n = cls.length;
  const starts: number[] = [];
  const ends: number[] = []; // one past each run: its whitespace, or n
  for (let p = 0; p < n;) {
    if (cls[p]! & C_WS) {
      p++;
      continue;
    }
    let r = p + 1;
    while (r < n && !(cls[r]! & C_WS)) r++;
    starts.push(p);
    ends.push(r);
    p = r;
  }
  const k = starts.length;
  // chain[i]: how many of the following runs are reached through single whitespace characters.
  const chain = new Int32Array(k + 1);
  for (let i = k - 2; i >= 0; i--) chain[i] = starts[i + 1] === ends[i]! + 1 ? chain[i + 1]! + 1 : 0;
  const out: number[] = [];
  for (let i = 0; i < k;) {
    const last = i + g - 1;
    if (chain[i]! >= g - 1 && last < k && ends[last]! < n) {
      out.push(ends[last]!);
      i += g;
    } else i++;
  }
  return out;
}

/**
 * Level of every character of one text segment: the highest k+1 such that strategy entry k has a boundary
 * at that character (the official merge of the per-strategy offset lists reduces to this maximum).
 */
export function charLevels(cps: ArrayLike<number>, strategy: SplitStrategy): Int32Array {
  const n = cps.length;
  const levels = new Int32Array(n);
  if (n === 0 || strategy.entries.length === 0) return levels;
  const cls = classesOf(cps);
  const mark = (j: number, level: number): void => {
    if (levels[j]! < level) levels[j] = level;
  };
  let startOffsets: number[] | null = null;
  let pretok: number[] | null = null;
  let punct: number[] | null = null;
  const endCache = new Map<number, number[]>();
  strategy.entries.forEach((e, k) => {
    const level = k + 1;
    if (e.kind === "word") {
      startOffsets ??= startMatches(cls);
      for (const off of startOffsets) mark(off, level);
      let ends = endCache.get(e.groupSize);
      if (ends === undefined) endCache.set(e.groupSize, (ends = endMatches(cls, e.groupSize)));
      ends.forEach((at, nMatch) => {
        if (e.keepEvery === null || e.keepEvery.some((every) => nMatch % every === 0)) mark(at, level);
      });
    } else if (e.kind === "pretok") {
      pretok ??= pretokMatches(cps);
      for (const off of pretok) mark(off, level);
    } else {
      punct ??= punctMatches(cls);
      for (const off of punct) mark(off, level);
    }
  });
  return levels;
}

/** Start offsets (in characters) of PRETOK_RE, which backtracks only boundedly and runs as a regex. */
function pretokMatches(cps: ArrayLike<number>): number[] {
  const units: string[] = [];
  const toChar: number[] = [];
  for (let j = 0; j < cps.length; j++) {
    const s = String.fromCodePoint(cps[j]!);
    units.push(s);
    toChar.push(j);
    if (s.length === 2) toChar.push(j);
  }
  return Array.from(units.join("").matchAll(PRETOK_RE), (m) => toChar[m.index]!);
}

// ---------------------------------------------------------------------------------------------------------
// Byte buffers.

/** A UTF-8 continuation byte (10xxxxxx). */
export function isContinuation(b: number): boolean {
  return isByteId(b) && b >= 0x80 && b < 0xc0;
}

/** The official get_utf8_byte_length: bytes a lead byte announces (0 = not a lead). Ids >= 256 count as 1. */
export function announcedLength(b: number): number {
  if (!isByteId(b) || (b & 0x80) === 0) return 1;
  if ((b & 0xe0) === 0xc0) return 2;
  if ((b & 0xf0) === 0xe0) return 3;
  if ((b & 0xf8) === 0xf0) return 4;
  return 0;
}

/**
 * The official shrink_to_valid_bytes: the half-open range of `bytes` that is decoded; bytes outside it get
 * level 0. At the start, up to 5 leading continuation bytes are dropped (a 6th one is decoded, as U+FFFD).
 * At the end, the trailing continuation bytes and the byte before them are dropped unless that byte
 * announces exactly that many bytes; note this also drops a plain ASCII byte before a stray continuation.
 * Where the official code crashes (empty input, nothing but continuation bytes, >= 4 trailing continuation
 * bytes) the range is chosen so that the offending bytes get level 0: a trailing run of >= 4 continuation
 * bytes is dropped together with the byte it hangs off unless that byte is a complete character itself.
 */
export function decodedRange(bytes: ArrayLike<number>): { start: number; end: number } {
  const n = bytes.length;
  let start = 0;
  while (start < n && start < 5 && isContinuation(bytes[start]!)) start++;
  let t = 0;
  while (t < n && isContinuation(bytes[n - 1 - t]!)) t++;
  if (t === n) return { start: n, end: n };
  const cand = bytes[n - 1 - t]!;
  let end: number;
  if (t >= 4) end = announcedLength(cand) === 1 ? n - t : n - 1 - t;
  else end = announcedLength(cand) === t + 1 ? n : n - 1 - t;
  return { start, end: Math.max(start, end) };
}

/**
 * The level of each byte, as the official `RegexPool.get_levels_mask(bytes)`: ids >= 256 (BOS/EOS) restart
 * the regex state and get 0, each character's level lands on its last byte, incomplete UTF-8 at either end
 * gets 0. Never throws. The one deliberate difference: where the official code decodes an ill-formed sequence
 * as U+FFFD and then lays its level out as if U+FFFD were 3 bytes (so its mask is longer than the input),
 * this mask stays aligned to the input, with the U+FFFD's level on the last byte of the sequence it replaces.
 * (When such a segment is followed by a BOS/EOS, the official code also writes every later segment at shifted
 * positions, and its generation-time level of every later byte becomes 0; that bug is not reproduced.)
 */
export function levelMask(bytes: ArrayLike<number>, strategy: StrategyInput): Int32Array {
  const strat = parseStrategy(strategy);
  const n = bytes.length;
  const out = new Int32Array(n);
  if (strat.entries.length === 0) return out;
  const { start, end } = decodedRange(bytes);
  const reader = new Utf8Reader();
  const cps: number[] = [];
  const lastByte: number[] = [];
  const take = (i: number): void => {
    for (let k = 0; k < reader.count; k++) {
      cps.push(reader.cps[k]!);
      lastByte.push(reader.endsBefore[k] ? i - 1 : i);
    }
  };
  const finishSegment = (i: number): void => {
    reader.flush();
    take(i - 1);
    const levels = charLevels(cps, strat);
    for (let j = 0; j < levels.length; j++) out[lastByte[j]!] = levels[j]!;
    cps.length = 0;
    lastByte.length = 0;
  };
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    if (!isByteId(b)) {
      finishSegment(i);
      reader.reset();
      continue;
    }
    reader.push(b);
    take(i);
  }
  finishSegment(end);
  return out;
}

/**
 * The prompt levels of generation (official get_levels_mask_prefill with force_first): the whole-buffer mask
 * with its first entry raised to the buffer's highest level.
 */
export function prefillLevels(bytes: ArrayLike<number>, strategy: StrategyInput): Int32Array {
  const mask = levelMask(bytes, strategy);
  if (mask.length > 0) {
    let top = 0;
    for (const v of mask) if (v > top) top = v;
    mask[0] = top;
  }
  return mask;
}

/**
 * One training document as the official data pipeline builds it: `[BOS] + utf8 + [EOS]`, the BOS at the
 * document's highest level and the EOS at 0. Where the official pipeline crashes (an empty document, or one
 * with no boundary at all), the BOS gets level 1 (it stays a boundary) and nothing else changes.
 */
export function documentLevelMask(
  text: string | ArrayLike<number>,
  strategy: StrategyInput,
): { tokens: Int32Array; mask: Int32Array } {
  const strat = parseStrategy(strategy);
  const bytes = typeof text === "string" ? encodeText(text) : text;
  const body = levelMask(bytes, strat);
  const n = bytes.length;
  const tokens = new Int32Array(n + 2);
  const mask = new Int32Array(n + 2);
  tokens[0] = BOS;
  tokens[n + 1] = EOS;
  let top = 0;
  for (let i = 0; i < n; i++) {
    tokens[i + 1] = bytes[i]!;
    mask[i + 1] = body[i]!;
    if (body[i]! > top) top = body[i]!;
  }
  mask[0] = top > 0 ? top : Math.min(1, strat.numLevels);
  return { tokens, mask };
}
