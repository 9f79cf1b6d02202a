// The byte vocabulary of AU-Net (spec section 2): byte b is id b, plus two special ids.
//
// UTF-8 is decoded here with the Unicode "maximal subpart" rule, which is what CPython's decoder does: an
// ill-formed sequence is replaced (or escaped) as the longest prefix that could still have started a valid
// character, and decoding resumes at the byte that broke it. Both the splitter (which must see the same
// U+FFFD characters as the official `bytes.decode("utf-8", errors="replace")`) and the text decoder (the
// official `errors="backslashreplace"`) are built on the same reader so they can never disagree on where a
// character ends.

export const BOS = 256;
export const EOS = 257;
export const VOCAB_SIZE = 258;

export const REPLACEMENT_CHAR = 0xfffd;

const encoder = new TextEncoder();

/** UTF-8 bytes of `s` (lone surrogates become U+FFFD, where Python would refuse to encode). */
export function encodeText(s: string): Uint8Array {
  return encoder.encode(s);
}

/** True for an id that is a plain byte; everything else (BOS, EOS, garbage) is not text. */
export function isByteId(id: number): boolean {
  return Number.isInteger(id) && id >= 0 && id <= 255;
}

/**
 * Streaming UTF-8 reader. Each `push` reports the characters that byte completed in `count`/`cps`/`badLen`:
 * at most two, because a byte that breaks a pending sequence first flushes that sequence as one invalid
 * character and is then read again as the start of a new one.
 */
export class Utf8Reader {
  /** Number of characters completed by the last push/flush (0, 1 or 2). */
  count = 0;
  /** Their code points; U+FFFD for an invalid subpart. */
  readonly cps = [0, 0];
  /** Length in bytes of the invalid subpart behind each character, 0 for a well-formed character. */
  readonly badLen = [0, 0];
  /** The bytes of each invalid subpart, packed little-endian (at most 3 bytes). */
  readonly badBytes = [0, 0];
  /**
   * Whether a character ended at the byte BEFORE the one just pushed (the flushed pending subpart), rather
   * than at the pushed byte itself. Callers that map characters back to byte positions need this.
   */
  readonly endsBefore = [false, false];

  private need = 0;
  private cp = 0;
  private lo = 0x80;
  private hi = 0xbf;
  private pendLen = 0;
  private pendPacked = 0;

  /** True while bytes of an unfinished character are held back. */
  get pending(): boolean {
    return this.pendLen > 0;
  }

  push(b: number): void {
    this.count = 0;
    if (this.pendLen > 0) {
      if (b >= this.lo && b <= this.hi) {
        this.pendPacked |= b << (8 * this.pendLen);
        this.pendLen++;
        this.cp = (this.cp << 6) | (b & 0x3f);
        this.lo = 0x80;
        this.hi = 0xbf;
        if (--this.need === 0) {
          this.pendLen = 0;
          this.emit(this.cp, 0, 0, false);
        }
        return;
      }
      this.emit(REPLACEMENT_CHAR, this.pendLen, this.pendPacked, true);
      this.pendLen = 0;
      this.need = 0;
    }
    this.lead(b);
  }

  /** End of input: an unfinished character becomes one invalid subpart. */
  flush(): void {
    this.count = 0;
    if (this.pendLen > 0) {
      this.emit(REPLACEMENT_CHAR, this.pendLen, this.pendPacked, false);
      this.pendLen = 0;
      this.need = 0;
    }
  }

  reset(): void {
    this.count = 0;
    this.pendLen = 0;
    this.need = 0;
  }

  copyFrom(o: Utf8Reader): void {
    this.count = o.count;
    for (let i = 0; i < 2; i++) {
      this.cps[i] = o.cps[i]!;
      this.badLen[i] = o.badLen[i]!;
      this.badBytes[i] = o.badBytes[i]!;
      this.endsBefore[i] = o.endsBefore[i]!;
    }
    this.need = o.need;
    this.cp = o.cp;
    this.lo = o.lo;
    this.hi = o.hi;
    this.pendLen = o.pendLen;
    this.pendPacked = o.pendPacked;
  }

  private lead(b: number): void {
    if (b < 0x80) {
      this.emit(b, 0, 0, false);
      return;
    }
    // Second-byte ranges of Unicode Table 3-7 exclude overlong forms, surrogates and values above U+10FFFF.
    let need = 0;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      else if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      else if (b === 0xf4) hi = 0x8f;
    } else {
      this.emit(REPLACEMENT_CHAR, 1, b, false);
      return;
    }
    this.need = need;
    this.lo = lo;
    this.hi = hi;
    this.cp = b & (need === 1 ? 0x1f : need === 2 ? 0x0f : 0x07);
    this.pendLen = 1;
    this.pendPacked = b;
  }

  private emit(cp: number, badLen: number, badBytes: number, endsBefore: boolean): void {
    const i = this.count++;
    this.cps[i] = cp;
    this.badLen[i] = badLen;
    this.badBytes[i] = badBytes;
    this.endsBefore[i] = endsBefore;
  }
}

function escapeBad(len: number, packed: number): string {
  let s = "";
  for (let k = 0; k < len; k++) s += "\\x" + ((packed >>> (8 * k)) & 0xff).toString(16).padStart(2, "0");
  return s;
}

function drain(r: Utf8Reader): string {
  let s = "";
  for (let i = 0; i < r.count; i++) {
    s += r.badLen[i]! > 0 ? escapeBad(r.badLen[i]!, r.badBytes[i]!) : String.fromCodePoint(r.cps[i]!);
  }
  return s;
}

/**
 * Text of a token sequence as the official ByteTokenizer.decode gives it: ids >= 256 are dropped, and every
 * byte of an ill-formed sequence is written as `\xNN`. Never throws.
 */
export function decodeBytes(ids: ArrayLike<number>): string {
  const r = new Utf8Reader();
  const parts: string[] = [];
  for (let i = 0; i < ids.length; i++) {
    const b = ids[i]!;
    if (!isByteId(b)) continue;
    r.push(b);
    if (r.count > 0) parts.push(drain(r));
  }
  r.flush();
  parts.push(drain(r));
  return parts.join("");
}

/**
 * Incremental form of `decodeBytes` for generation: `push` returns the text completed by that byte (empty
 * while a character is still incomplete), so concatenating every push and the final `flush` equals
 * `decodeBytes` of the whole sequence.
 */
export class Utf8StreamDecoder {
  private readonly reader = new Utf8Reader();

  push(id: number): string {
    if (!isByteId(id)) return "";
    this.reader.push(id);
    return drain(this.reader);
  }

  flush(): string {
    this.reader.flush();
    return drain(this.reader);
  }

  reset(): void {
    this.reader.reset();
  }
}
