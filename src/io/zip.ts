// The subset of the ZIP format that PyTorch checkpoints use: stored (and, for hand-made archives, deflated)
// entries, ZIP64 for archives past 4 GiB, no encryption, one disk.
//
// Reading goes through the central directory and pulls one entry at a time from a file descriptor, so a
// checkpoint larger than a Node buffer (2 GiB from readFileSync) still opens and only the tensors asked for are
// ever in memory. Every defect is a one-line UserError naming the file: archives come from outside.
//
// Writing mirrors torch's PyTorchStreamWriter where readers can tell: every entry stored, each entry's data
// aligned to 64 bytes by padding the local header's extra field with a "FB" record (torch memory-maps records and
// expects that alignment), ZIP64 records only when a size or offset needs them.

import buffer from "node:buffer";
import fs from "node:fs";
import zlib from "node:zlib";
import { UserError } from "../util/errors.js";
import { openRegularFile } from "../util/files.js";

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const LOCAL_HEADER_SIZE = 30;
const CENTRAL_HEADER_SIZE = 46;
const EOCD_SIZE = 22;
const EOCD64_SIZE = 56;
const EOCD64_LOCATOR_SIZE = 20;
const MAX_COMMENT = 0xffff;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;
const ZIP64_EXTRA_ID = 0x0001;
const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;

// ---------------------------------------------------------------------------------------------------------------
// CRC-32 (the ZIP polynomial). zlib.crc32 arrived in Node 20.15; older 20.x releases get the table version.

let crcTable: Uint32Array | undefined;

function crc32Js(data: Uint8Array, crc: number): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** CRC-32 of `data`, continuing from `crc` (0 to start). */
export function crc32(data: Uint8Array, crc: number = 0): number {
  return nativeCrc32 ? nativeCrc32(data, crc) >>> 0 : crc32Js(data, crc);
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

/** Random access to the bytes of an archive. */
export interface ByteSource {
  readonly size: number;
  /** Exactly `length` bytes from `offset` (the caller checked the range); may share memory with the source. */
  read(offset: number, length: number): Uint8Array;
  close(): void;
}

export function bufferSource(buf: Uint8Array): ByteSource {
  return {
    size: buf.byteLength,
    read: (offset, length) => buf.subarray(offset, offset + length),
    close: () => {},
  };
}

export function fileSource(path: string): ByteSource {
  // Regular files only: a FIFO or a device would block or never end.
  const { fd, size } = openRegularFile(path);
  let open = true;
  return {
    size,
    read(offset, length) {
      if (!open) throw new Error(`${path}: read after close`);
      const out = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const n = fs.readSync(fd, out, done, length - done, offset + done);
        if (n === 0) throw new UserError(`${path}: file shrank while being read`);
        done += n;
      }
      return out;
    },
    close() {
      if (open) fs.closeSync(fd);
      open = false;
    },
  };
}

export interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localHeaderOffset: number;
}

function u64(dv: DataView, at: number): number {
  const v = dv.getBigUint64(at, true);
  // Offsets beyond 2^53 cannot occur in a file that exists; treating them as corrupt avoids silent rounding.
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(v);
}

export class ZipReader {
  private readonly byName = new Map<string, ZipEntry>();
  readonly entries: readonly ZipEntry[];

  constructor(
    private readonly src: ByteSource,
    /** Names the archive in error messages. */
    readonly label: string,
  ) {
    this.entries = this.readCentralDirectory();
    for (const e of this.entries) {
      if (this.byName.has(e.name)) this.bad(`two entries are named ${JSON.stringify(e.name)}`);
      this.byName.set(e.name, e);
    }
  }

  static open(path: string): ZipReader {
    const src = fileSource(path);
    try {
      return new ZipReader(src, path);
    } catch (e) {
      src.close();
      throw e;
    }
  }

  close(): void {
    this.src.close();
  }

  get(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  private bad(why: string): never {
    throw new UserError(`${this.label}: not a valid zip archive: ${why}`);
  }

  private readAt(offset: number, length: number, what: string): Uint8Array {
    if (!(offset >= 0 && length >= 0 && offset + length <= this.src.size))
      this.bad(
        `${what} (bytes ${offset}..${offset + length}) lies outside the ${this.src.size}-byte file (truncated?)`,
      );
    return this.src.read(offset, length);
  }

  private readCentralDirectory(): ZipEntry[] {
    const size = this.src.size;
    if (size < EOCD_SIZE) this.bad(`only ${size} bytes long`);
    // The end record sits before an optional comment of up to 64 KiB, so search backwards through that window.
    const tailLen = Math.min(size, EOCD_SIZE + MAX_COMMENT);
    const tail = this.src.read(size - tailLen, tailLen);
    const tdv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    let at = -1;
    for (let i = tailLen - EOCD_SIZE; i >= 0; i--) {
      if (tdv.getUint32(i, true) === SIG_EOCD && i + EOCD_SIZE + tdv.getUint16(i + 20, true) <= tailLen) {
        at = i;
        break;
      }
    }
    if (at < 0) this.bad("no end-of-central-directory record");
    const eocdOffset = size - tailLen + at;
    const disk = tdv.getUint16(at + 4, true);
    const cdDisk = tdv.getUint16(at + 6, true);
    let count = tdv.getUint16(at + 10, true);
    let cdSize = tdv.getUint32(at + 12, true);
    let cdOffset = tdv.getUint32(at + 16, true);
    if (disk !== 0 || cdDisk !== 0) this.bad("multi-disk archives are not supported");

    if (count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) {
      const locAt = eocdOffset - EOCD64_LOCATOR_SIZE;
      if (locAt < 0) this.bad("ZIP64 sizes without a ZIP64 locator");
      const loc = this.readAt(locAt, EOCD64_LOCATOR_SIZE, "the ZIP64 locator");
      const ldv = new DataView(loc.buffer, loc.byteOffset, loc.byteLength);
      if (ldv.getUint32(0, true) !== SIG_EOCD64_LOCATOR) this.bad("ZIP64 sizes without a ZIP64 locator");
      const recAt = u64(ldv, 8);
      const rec = this.readAt(recAt, EOCD64_SIZE, "the ZIP64 end record");
      const rdv = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
      if (rdv.getUint32(0, true) !== SIG_EOCD64) this.bad("the ZIP64 end record has a bad signature");
      count = u64(rdv, 32);
      cdSize = u64(rdv, 40);
      cdOffset = u64(rdv, 48);
    }
    const cd = this.readAt(cdOffset, cdSize, "the central directory");
    const dv = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
    const names = new TextDecoder("utf-8");
    const entries: ZipEntry[] = [];
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + CENTRAL_HEADER_SIZE > cd.byteLength || dv.getUint32(p, true) !== SIG_CENTRAL)
        this.bad(`central directory entry ${i} is damaged`);
      const flags = dv.getUint16(p + 8, true);
      const method = dv.getUint16(p + 10, true);
      const crc = dv.getUint32(p + 16, true);
      let compressedSize = dv.getUint32(p + 20, true);
      let usize = dv.getUint32(p + 24, true);
      const nameLen = dv.getUint16(p + 28, true);
      const extraLen = dv.getUint16(p + 30, true);
      const commentLen = dv.getUint16(p + 32, true);
      let localHeaderOffset = dv.getUint32(p + 42, true);
      const end = p + CENTRAL_HEADER_SIZE + nameLen + extraLen + commentLen;
      if (end > cd.byteLength) this.bad(`central directory entry ${i} is damaged`);
      const name = names.decode(cd.subarray(p + CENTRAL_HEADER_SIZE, p + CENTRAL_HEADER_SIZE + nameLen));
      if (flags & 1) this.bad(`${JSON.stringify(name)} is encrypted`);
      // ZIP64: the fields that overflowed are 0xFFFFFFFF and their real values follow, in this order, in the
      // 0x0001 extra record.
      let x = p + CENTRAL_HEADER_SIZE + nameLen;
      const xEnd = x + extraLen;
      while (x + 4 <= xEnd) {
        const id = dv.getUint16(x, true);
        const len = dv.getUint16(x + 2, true);
        if (x + 4 + len > xEnd) this.bad(`${JSON.stringify(name)} has a damaged extra field`);
        if (id === ZIP64_EXTRA_ID) {
          let q = x + 4;
          const next = (): number => {
            if (q + 8 > x + 4 + len) this.bad(`${JSON.stringify(name)} has a short ZIP64 record`);
            const v = u64(dv, q);
            q += 8;
            return v;
          };
          if (usize === U32_MAX) usize = next();
          if (compressedSize === U32_MAX) compressedSize = next();
          if (localHeaderOffset === U32_MAX) localHeaderOffset = next();
        }
        x += 4 + len;
      }
      entries.push({ name, method, crc32: crc, compressedSize, size: usize, localHeaderOffset });
      p = end;
    }
    return entries;
  }

  /** The whole entry, decompressed and checked against its CRC. */
  read(entry: ZipEntry | string): Uint8Array {
    const e = typeof entry === "string" ? this.get(entry) : entry;
    if (!e) this.bad(`no entry named ${JSON.stringify(entry)}`);
    const what = JSON.stringify(e.name);
    const head = this.readAt(e.localHeaderOffset, LOCAL_HEADER_SIZE, `the local header of ${what}`);
    const hdv = new DataView(head.buffer, head.byteOffset, head.byteLength);
    if (hdv.getUint32(0, true) !== SIG_LOCAL) this.bad(`the local header of ${what} has a bad signature`);
    // The local header's own name and extra lengths decide where the data starts; they may differ from the
    // central directory's (torch pads only the local copy).
    const dataAt =
      e.localHeaderOffset + LOCAL_HEADER_SIZE + hdv.getUint16(26, true) + hdv.getUint16(28, true);
    const raw = this.readAt(dataAt, e.compressedSize, `the data of ${what}`);
    let data: Uint8Array;
    if (e.method === METHOD_STORED) {
      if (e.compressedSize !== e.size) this.bad(`${what} is stored but its two sizes differ`);
      data = raw;
    } else if (e.method === METHOD_DEFLATE) {
      // Deflate expands at most 1032:1, so a larger claim is a lie; and the output is capped at the declared
      // size, so a small entry that claims little but inflates to gigabytes stops there (a "zip bomb").
      if (e.size > e.compressedSize * 1032 + 1024)
        this.bad(
          `${what} claims ${e.size} bytes from ${e.compressedSize} deflated, more than deflate can give`,
        );
      if (e.size > buffer.constants.MAX_LENGTH)
        this.bad(`${what} is ${e.size} bytes, more than this Node.js can hold in one buffer`);
      try {
        data = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE")
          this.bad(`${what} inflates to more than the ${e.size} bytes the directory says`);
        return this.bad(`${what} does not inflate (${err instanceof Error ? err.message : String(err)})`);
      }
      if (data.byteLength !== e.size)
        this.bad(`${what} inflates to ${data.byteLength} bytes, the directory says ${e.size}`);
    } else {
      return this.bad(`${what} uses compression method ${e.method} (only stored and deflate are supported)`);
    }
    if (crc32(data) !== e.crc32) this.bad(`${what} fails its CRC check (corrupt or truncated)`);
    return data;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

export interface ZipRecord {
  name: string;
  /** The content, in pieces so large tensors are never concatenated. */
  chunks: readonly Uint8Array[];
}

export interface ZipWriteOptions {
  /** Data alignment of every entry (torch: 64). */
  align?: number;
  /** "always" writes ZIP64 records even for small archives, so tests can exercise them. */
  zip64?: "auto" | "always";
}

// A fixed timestamp (1980-01-01 00:00) keeps the output a pure function of its content.
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;

/** The archive as a list of chunks in file order (record data chunks are passed through, not copied). */
export function zipChunks(records: readonly ZipRecord[], opts: ZipWriteOptions = {}): Uint8Array[] {
  const align = opts.align ?? 64;
  const force64 = opts.zip64 === "always";
  const enc = new TextEncoder();
  const out: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let cursor = 0;
  for (const r of records) {
    const name = enc.encode(r.name);
    const size = r.chunks.reduce((s, c) => s + c.byteLength, 0);
    let crc = 0;
    for (const c of r.chunks) crc = crc32(c, crc);
    const offset = cursor;
    const big = force64 || size >= U32_MAX || offset >= U32_MAX;
    const zip64Local = big ? 4 + 16 : 0;
    // The padding record needs at least its own 4-byte header, so it is always present, as in torch.
    const start = offset + LOCAL_HEADER_SIZE + name.byteLength + zip64Local + 4;
    const pad = (align - (start % align)) % align;
    const extraLen = zip64Local + 4 + pad;
    const head = new Uint8Array(LOCAL_HEADER_SIZE + name.byteLength + extraLen);
    const dv = new DataView(head.buffer);
    dv.setUint32(0, SIG_LOCAL, true);
    dv.setUint16(4, big ? 45 : 20, true);
    dv.setUint16(6, 0, true);
    dv.setUint16(8, METHOD_STORED, true);
    dv.setUint16(10, DOS_TIME, true);
    dv.setUint16(12, DOS_DATE, true);
    dv.setUint32(14, crc, true);
    dv.setUint32(18, big ? U32_MAX : size, true);
    dv.setUint32(22, big ? U32_MAX : size, true);
    dv.setUint16(26, name.byteLength, true);
    dv.setUint16(28, extraLen, true);
    head.set(name, LOCAL_HEADER_SIZE);
    let x = LOCAL_HEADER_SIZE + name.byteLength;
    if (big) {
      dv.setUint16(x, ZIP64_EXTRA_ID, true);
      dv.setUint16(x + 2, 16, true);
      dv.setBigUint64(x + 4, BigInt(size), true);
      dv.setBigUint64(x + 12, BigInt(size), true);
      x += 20;
    }
    head[x] = 0x46; // "F"
    head[x + 1] = 0x42; // "B"
    dv.setUint16(x + 2, pad, true);
    head.fill(0x5a, x + 4); // "Z", torch's filler
    out.push(head, ...r.chunks);
    cursor += head.byteLength + size;

    const sizes64 = force64 || size >= U32_MAX;
    const offset64 = force64 || offset >= U32_MAX;
    const cx = (sizes64 ? 16 : 0) + (offset64 ? 8 : 0);
    const ch = new Uint8Array(CENTRAL_HEADER_SIZE + name.byteLength + (cx ? 4 + cx : 0));
    const cdv = new DataView(ch.buffer);
    cdv.setUint32(0, SIG_CENTRAL, true);
    cdv.setUint16(4, cx ? 45 : 20, true);
    cdv.setUint16(6, cx ? 45 : 20, true);
    cdv.setUint16(8, 0, true);
    cdv.setUint16(10, METHOD_STORED, true);
    cdv.setUint16(12, DOS_TIME, true);
    cdv.setUint16(14, DOS_DATE, true);
    cdv.setUint32(16, crc, true);
    cdv.setUint32(20, sizes64 ? U32_MAX : size, true);
    cdv.setUint32(24, sizes64 ? U32_MAX : size, true);
    cdv.setUint16(28, name.byteLength, true);
    cdv.setUint16(30, cx ? 4 + cx : 0, true);
    cdv.setUint32(42, offset64 ? U32_MAX : offset, true);
    ch.set(name, CENTRAL_HEADER_SIZE);
    if (cx) {
      let q = CENTRAL_HEADER_SIZE + name.byteLength;
      cdv.setUint16(q, ZIP64_EXTRA_ID, true);
      cdv.setUint16(q + 2, cx, true);
      q += 4;
      if (sizes64) {
        cdv.setBigUint64(q, BigInt(size), true);
        cdv.setBigUint64(q + 8, BigInt(size), true);
        q += 16;
      }
      if (offset64) cdv.setBigUint64(q, BigInt(offset), true);
    }
    central.push(ch);
  }
  const cdOffset = cursor;
  const cdSize = central.reduce((s, c) => s + c.byteLength, 0);
  out.push(...central);
  cursor += cdSize;
  const n = records.length;
  const need64 = force64 || n >= U16_MAX || cdSize >= U32_MAX || cdOffset >= U32_MAX;
  if (need64) {
    const rec = new Uint8Array(EOCD64_SIZE + EOCD64_LOCATOR_SIZE);
    const rdv = new DataView(rec.buffer);
    rdv.setUint32(0, SIG_EOCD64, true);
    rdv.setBigUint64(4, BigInt(EOCD64_SIZE - 12), true);
    rdv.setUint16(12, 45, true);
    rdv.setUint16(14, 45, true);
    rdv.setBigUint64(24, BigInt(n), true);
    rdv.setBigUint64(32, BigInt(n), true);
    rdv.setBigUint64(40, BigInt(cdSize), true);
    rdv.setBigUint64(48, BigInt(cdOffset), true);
    rdv.setUint32(EOCD64_SIZE, SIG_EOCD64_LOCATOR, true);
    rdv.setBigUint64(EOCD64_SIZE + 8, BigInt(cursor), true);
    rdv.setUint32(EOCD64_SIZE + 16, 1, true);
    out.push(rec);
  }
  const end = new Uint8Array(EOCD_SIZE);
  const edv = new DataView(end.buffer);
  edv.setUint32(0, SIG_EOCD, true);
  edv.setUint16(8, need64 ? U16_MAX : n, true);
  edv.setUint16(10, need64 ? U16_MAX : n, true);
  edv.setUint32(12, need64 ? U32_MAX : cdSize, true);
  edv.setUint32(16, need64 ? U32_MAX : cdOffset, true);
  out.push(end);
  return out;
}
