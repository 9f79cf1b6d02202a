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

/** NWORD_PUNCT_RE[0]: where a boundary starts for every `word*` strategy (numbers, punctuation, newlines). */
const START_RE = new RegExp(`\\p{N}{1,3}|(?:${PUNCT}{1,3}[\\r\\n]*)|${WS}*[\\r\\n]`, "gu");
/** WORD_PUNCT_RE[0], a GPT-style pre-tokenizer; each match start is a boundary. */
const PRETOK_RE = new RegExp(
  `( ?\\p{L}{1,16})|\\p{N}{1,3}| ?(?=(${PUNCT}{1,3}))\\2[\\r\\n]*|${WS}*[\\r\\n]|${WS}+(?!${NWS})|${WS}+`,
  "gu",
);
/** PUNCT_RE[0]: digit groups of three from the right (thousands), punctuation runs, newlines. */
const PUNCT_RE = new RegExp(
  `\\p{Nd}{1,3}(?=(?:\\p{Nd}{3})+(?!\\p{Nd}))|\\p{Nd}{1,3}(?=\\P{Nd}|$)|(?=(${PUNCT}{1,3}))\\1[\\r\\n]*|${WS}*[\\r\\n]`,
  "gu",
);
const endRegexCache = new Map<number, RegExp>();
/** NWORD_PUNCT_RE[1] `(\S+?\s){G}`: G words, each closed by exactly one whitespace character. */
function endRegex(g: number): RegExp {
  let re = endRegexCache.get(g);
  if (re === undefined) {
    re = new RegExp(`(?:${NWS}+?${WS}){${g}}`, "gu");
    endRegexCache.set(g, re);
  }
  return re;
}

/**
 * Level of every character of one text segment: the highest k+1 such that strategy entry k has a boundary
 * at that character (the official merge of the per-strategy offset lists reduces to this maximum).
 */
export function charLevels(cps: ArrayLike<number>, strategy: SplitStrategy): Int32Array {
  const n = cps.length;
  const levels = new Int32Array(n);
  if (n === 0 || strategy.entries.length === 0) return levels;
  const units: string[] = [];
  const toChar: number[] = [];
  for (let j = 0; j < n; j++) {
    const s = String.fromCodePoint(cps[j]!);
    units.push(s);
    toChar.push(j);
    if (s.length === 2) toChar.push(j);
  }
  const text = units.join("");

  const mark = (utf16: number, level: number): void => {
    const j = toChar[utf16]!;
    if (levels[j]! < level) levels[j] = level;
  };
  let startOffsets: number[] | null = null;
  strategy.entries.forEach((e, k) => {
    const level = k + 1;
    if (e.kind === "word") {
      if (startOffsets === null) startOffsets = Array.from(text.matchAll(START_RE), (m) => m.index);
      for (const off of startOffsets) mark(off, level);
      let nMatch = 0;
      for (const m of text.matchAll(endRegex(e.groupSize))) {
        const keep = e.keepEvery === null || e.keepEvery.some((every) => nMatch % every === 0);
        nMatch++;
        // The closing whitespace is a BMP character, so end-1 is its own UTF-16 unit.
        if (keep) mark(m.index + m[0].length - 1, level);
      }
    } else {
      for (const m of text.matchAll(e.kind === "pretok" ? PRETOK_RE : PUNCT_RE)) mark(m.index, level);
    }
  });
  return levels;
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
