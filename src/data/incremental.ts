// The level of each new byte during generation, in constant time per byte.
//
// The official generate.py asks `get_levels_mask(prefix)[-1]` for every new byte, i.e. it re-splits the whole
// prefix each time. Only the LAST character of the prefix matters, and for each official regex the question
// "does a match of finditer(prefix) start (or, for the END regex, end) at the last character?" has a local
// answer: it depends on the classes of the last two characters and on the lengths of the runs they end
// (digits, letters, punctuation, whitespace) and, for `(\S+?\s){G}`, on how many single-space-separated words
// the current chain has closed. So this keeps counters, never text:
//
// - `\p{N}{1,3}`, `[^\s\p{L}\p{N}]{1,3}`, ` ?\p{L}{1,16}`: a run's first character is always a scan position
//   (no earlier match can cover it), so the last character starts a match iff its run length so far is 1 mod
//   3 (or 16), except that ` ?` lets a run right after a space start at that space instead.
// - `\s*[\r\n]`: in the prefix that ends at a newline, the match starting at the first whitespace of the run
//   swallows the newline, so a newline starts a match only when it opens its whitespace run, and not even
//   then right after punctuation, whose match absorbs trailing newlines (`[\r\n]*`). This is why a whole-text
//   mask can differ: later, the first space of `word \n` becomes a boundary that the prefix never showed.
// - `(\S+?\s){G}`: matches are G consecutive words each closed by exactly one whitespace character; two
//   whitespace characters in a row end the chain, and the scan re-synchronises on the next word.
// - Punct's `\d{1,3}` groups digits from the right, so in a prefix the last digit starts a match only when it
//   is the first of its run.
//
// The byte-level wrapping (incomplete UTF-8 at either end, BOS/EOS restarting the regex state) mirrors
// shrink_to_valid_bytes and the segment split of get_levels_mask; where the official code raises, the byte
// gets 0. test/splitter.test.ts checks this against the whole-buffer splitter on every prefix.

import { Utf8Reader, isByteId } from "./bytes.js";
import {
  C_L,
  C_N,
  C_ND,
  C_NL,
  C_SPACE,
  C_WS,
  C_X,
  SplitStrategy,
  StrategyInput,
  announcedLength,
  charClass,
  isContinuation,
  parseStrategy,
} from "./splitter.js";

export interface IncrementalStats {
  /** Bytes pushed since construction or reset. */
  bytes: number;
  /** Characters run through the state machine (at most 2 per byte). */
  charSteps: number;
  /** The most characters a single push processed. */
  maxCharStepsPerPush: number;
}

export class IncrementalSplitter {
  readonly strategy: SplitStrategy;
  private readonly kinds: Int8Array; // 0 word, 1 pretok, 2 punct
  private readonly groupSize: Int32Array;
  private readonly keepEvery: (readonly number[] | null)[];

  // Byte-level state (whole prefix since reset).
  private total = 0;
  private skippingLead = true;
  private trailCont = 0;
  private lastNonCont = -1;
  private readonly reader = new Utf8Reader();

  // Character-level state (current text segment, restarted by BOS/EOS).
  private prevCls = 0; // 0 = no previous character in this segment
  private nRun = 0;
  private ndRun = 0;
  private lRun = 0;
  private xRun = 0;
  private wsRun = 0;
  private chainWords = 0;
  private readonly matchCount: Float64Array;

  private charSteps = 0;
  private maxCharStepsPerPush = 0;

  constructor(strategy: StrategyInput) {
    this.strategy = parseStrategy(strategy);
    const entries = this.strategy.entries;
    this.kinds = Int8Array.from(entries, (e) => (e.kind === "word" ? 0 : e.kind === "pretok" ? 1 : 2));
    this.groupSize = Int32Array.from(entries, (e) => e.groupSize);
    this.keepEvery = entries.map((e) => e.keepEvery);
    this.matchCount = new Float64Array(entries.length);
  }

  /** Level of `byte` given every byte pushed before it (what generation feeds the model). Never throws. */
  push(byte: number): number {
    const index = this.total++;
    const cont = isContinuation(byte);
    if (cont) this.trailCont++;
    else {
      this.trailCont = 0;
      this.lastNonCont = byte;
    }
    // The official code drops up to 5 leading continuation bytes of the buffer before decoding.
    const dropped = this.skippingLead && cont && index < 5;
    if (!dropped) this.skippingLead = false;

    if (!isByteId(byte)) {
      this.restartSegment();
      return 0;
    }
    if (dropped) return 0;

    const r = this.reader;
    r.push(byte);
    let level = 0;
    for (let k = 0; k < r.count; k++) level = this.step(charClass(r.cps[k]!));
    this.charSteps += r.count;
    if (r.count > this.maxCharStepsPerPush) this.maxCharStepsPerPush = r.count;
    return r.count > 0 && !this.endIsCut() ? level : 0;
  }

  /** Levels of a run of bytes, pushed one by one. */
  pushAll(bytes: ArrayLike<number>): Int32Array {
    const out = new Int32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) out[i] = this.push(bytes[i]!);
    return out;
  }

  /** Forget everything, as for a new buffer. */
  reset(): void {
    this.total = 0;
    this.skippingLead = true;
    this.trailCont = 0;
    this.lastNonCont = -1;
    this.restartSegment();
    this.charSteps = 0;
    this.maxCharStepsPerPush = 0;
  }

  /** An independent copy (e.g. to continue a prompt several ways). */
  clone(): IncrementalSplitter {
    const c = new IncrementalSplitter(this.strategy);
    c.total = this.total;
    c.skippingLead = this.skippingLead;
    c.trailCont = this.trailCont;
    c.lastNonCont = this.lastNonCont;
    c.reader.copyFrom(this.reader);
    c.prevCls = this.prevCls;
    c.nRun = this.nRun;
    c.ndRun = this.ndRun;
    c.lRun = this.lRun;
    c.xRun = this.xRun;
    c.wsRun = this.wsRun;
    c.chainWords = this.chainWords;
    c.matchCount.set(this.matchCount);
    c.charSteps = this.charSteps;
    c.maxCharStepsPerPush = this.maxCharStepsPerPush;
    return c;
  }

  get stats(): IncrementalStats {
    return { bytes: this.total, charSteps: this.charSteps, maxCharStepsPerPush: this.maxCharStepsPerPush };
  }

  /**
   * shrink_to_valid_bytes on the prefix: its last byte is dropped (level 0) unless the trailing continuation
   * bytes are exactly those announced by the byte before them. The official crashes (nothing but
   * continuation bytes, >= 4 trailing ones) also give 0.
   */
  private endIsCut(): boolean {
    const t = this.trailCont;
    if (t >= 4 || this.lastNonCont < 0) return true;
    return announcedLength(this.lastNonCont) !== t + 1;
  }

  private restartSegment(): void {
    this.reader.reset();
    this.prevCls = 0;
    this.nRun = 0;
    this.ndRun = 0;
    this.lRun = 0;
    this.xRun = 0;
    this.wsRun = 0;
    this.chainWords = 0;
    this.matchCount.fill(0);
  }

  /** Advance by one character; returns its level as the last character of the prefix. */
  private step(cls: number): number {
    const prev = this.prevCls;
    const isWS = (cls & C_WS) !== 0;
    const isNL = (cls & C_NL) !== 0;
    const isX = (cls & C_X) !== 0;
    const prevIsX = (prev & C_X) !== 0;
    const prevIsSpace = (prev & C_SPACE) !== 0;

    // NWORD_PUNCT_RE[0], shared by every word* entry.
    const startHit =
      ((cls & C_N) !== 0 && this.nRun % 3 === 0) ||
      (isX && this.xRun % 3 === 0) ||
      (isNL && this.wsRun === 0 && !prevIsX);
    // A whitespace character right after a word closes it; it closes a group when the chain reaches G words.
    const closes = isWS && prev !== 0 && (prev & C_WS) === 0;
    const chainWords = closes ? this.chainWords + 1 : 0;

    let level = 0;
    const n = this.kinds.length;
    for (let k = 0; k < n; k++) {
      let hit: boolean;
      const kind = this.kinds[k]!;
      if (kind === 0) {
        hit = startHit;
        if (closes && chainWords % this.groupSize[k]! === 0) {
          const every = this.keepEvery[k]!;
          const m = this.matchCount[k]!;
          this.matchCount[k] = m + 1;
          if (every === null || every.some((e) => m % e === 0)) hit = true;
        }
      } else if (kind === 1) {
        if ((cls & C_L) !== 0) hit = this.lRun % 16 === 0 && !(this.lRun === 0 && prevIsSpace);
        else if ((cls & C_N) !== 0) hit = this.nRun % 3 === 0;
        else if (isX) hit = this.xRun % 3 === 0 && !(this.xRun === 0 && prevIsSpace);
        // Whitespace: the run's first scan position, and the character right after its last newline.
        else if (this.wsRun === 0) hit = !(prevIsX && isNL);
        else hit = !isNL && (prev & C_NL) !== 0;
      } else {
        hit =
          ((cls & C_ND) !== 0 && this.ndRun === 0) ||
          (isX && this.xRun % 3 === 0) ||
          (isNL && this.wsRun === 0 && !prevIsX);
      }
      if (hit) level = k + 1;
    }

    this.nRun = (cls & C_N) !== 0 ? this.nRun + 1 : 0;
    this.ndRun = (cls & C_ND) !== 0 ? this.ndRun + 1 : 0;
    this.lRun = (cls & C_L) !== 0 ? this.lRun + 1 : 0;
    this.xRun = isX ? this.xRun + 1 : 0;
    this.wsRun = isWS ? this.wsRun + 1 : 0;
    if (isWS) this.chainWords = chainWords;
    this.prevCls = cls;
    return level;
  }
}

/** The incremental level of every byte of `bytes`, from a fresh splitter. */
export function incrementalLevels(bytes: ArrayLike<number>, strategy: StrategyInput): Int32Array {
  return new IncrementalSplitter(strategy).pushAll(bytes);
}
