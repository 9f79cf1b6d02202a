// Training text sources, read as streams of documents so that a corpus of any size never has to fit in memory.
//
// A source is a file or a directory (walked recursively, in sorted order so that runs are reproducible).
// - `.jsonl` / `.ndjson` (optionally `.gz`): one JSON object per line, the document is its `text` (or, failing
//   that, `content`) string field. Lines that are not JSON, or have neither field, are skipped and counted. A
//   text longer than 4 * docBytes is cut into documents as a plain file of that text would be (below), so that
//   one huge line costs no more than the same text in a plain file.
// - anything else is plain text (`.gz` is decompressed). A plain file is cut into documents at blank lines:
//   paragraphs are gathered until the document reaches `docBytes`, then it ends at the next blank line. Each
//   document is trained as `[BOS, bytes, EOS]`, so one huge file becomes many documents of a few kilobytes
//   instead of one multi-gigabyte row stream, which is what lets a shuffle buffer mix it. A paragraph longer
//   than 4 * docBytes is cut at its last line break (or, failing that, at a character boundary).
//
// Every document carries the byte offset where it starts (in the decompressed stream), which is all the data
// loader needs to reopen the file at that document after a restart. Because documents are cut greedily from
// their own start, reading from any document's offset yields exactly the documents a full read yields after it.
//
// Bad inputs never crash the trainer: a missing path is a UserError; empty and binary files (a NUL byte in the
// first 8 KiB, as git decides) are skipped at discovery; bad JSONL lines and unreadable or corrupt files are
// skipped while streaming; all of it is counted in `DataStats`.

import fs from "node:fs";
import { open } from "node:fs/promises";
import path from "node:path";
import { createGunzip } from "node:zlib";
import { UserError } from "../util/errors.js";
import { openRegularFile } from "../util/files.js";

export type SourceFormat = "text" | "jsonl";

export interface SourceFile {
  path: string;
  format: SourceFormat;
  gzip: boolean;
  /** Size on disk (compressed size for .gz); a fingerprint for checkpoint compatibility. */
  size: number;
}

export interface RawDocument {
  /** Offset of the document's first byte (plain text) or of its line (JSONL) in the decompressed file. */
  offset: number;
  bytes: Uint8Array;
  /**
   * True when the next document is the next piece of the same JSONL line (a long text cut like plain text):
   * such pieces share their line's offset, so a reader that restarts at an offset must keep them together.
   */
  more?: boolean;
}

/** Counters of what was skipped, reported to the user instead of crashing on bad data. */
export class DataStats {
  emptyFiles: string[] = [];
  binaryFiles: string[] = [];
  unsupportedFiles = 0;
  unreadableFiles: string[] = [];
  badJsonLines = 0;
  linesWithoutText = 0;
  emptyDocuments = 0;
  invalidUtf8Documents = 0;
  notGzipFiles: string[] = [];
  longJsonLines = 0;

  /** One line per kind of problem, with a few example paths; empty when the data was clean. */
  describe(): string[] {
    const out: string[] = [];
    const some = (xs: string[]) => xs.slice(0, 3).join(", ") + (xs.length > 3 ? ", ..." : "");
    if (this.emptyFiles.length)
      out.push(`skipped ${this.emptyFiles.length} empty file(s): ${some(this.emptyFiles)}`);
    if (this.binaryFiles.length)
      out.push(`skipped ${this.binaryFiles.length} binary file(s) (NUL bytes): ${some(this.binaryFiles)}`);
    if (this.notGzipFiles.length)
      out.push(
        `skipped ${this.notGzipFiles.length} file(s) named .gz that are not gzip (no gzip header): ${some(this.notGzipFiles)}`,
      );
    if (this.unsupportedFiles)
      out.push(`ignored ${this.unsupportedFiles} file(s) in directories without a text/JSONL extension`);
    if (this.unreadableFiles.length)
      out.push(
        `skipped the rest of ${this.unreadableFiles.length} unreadable/corrupt file(s): ${some(this.unreadableFiles)}`,
      );
    if (this.badJsonLines) out.push(`skipped ${this.badJsonLines} JSONL line(s) that are not JSON objects`);
    if (this.longJsonLines)
      out.push(`skipped ${this.longJsonLines} JSONL line(s) longer than the ${MAX_JSONL_LINE}-byte limit`);
    if (this.linesWithoutText)
      out.push(`skipped ${this.linesWithoutText} JSONL line(s) without a string "text" or "content" field`);
    if (this.invalidUtf8Documents)
      out.push(`${this.invalidUtf8Documents} document(s) contain invalid UTF-8 (kept as raw bytes)`);
    return out;
  }
}

const TEXT_EXTENSIONS = [".txt", ".text", ".md", ".markdown", ".rst"];
const JSONL_EXTENSIONS = [".jsonl", ".ndjson"];
const SNIFF_BYTES = 8192;

function classify(file: string): { format: SourceFormat; gzip: boolean; known: boolean } {
  const lower = file.toLowerCase();
  const gzip = lower.endsWith(".gz");
  const base = gzip ? lower.slice(0, -3) : lower;
  if (JSONL_EXTENSIONS.some((e) => base.endsWith(e))) return { format: "jsonl", gzip, known: true };
  return { format: "text", gzip, known: TEXT_EXTENSIONS.some((e) => base.endsWith(e)) };
}

/**
 * The files under `dir`, recursively. Each real directory and file is visited once (by device and inode), so
 * symlink loops and several links to one directory neither repeat data nor walk exponentially.
 */
function walk(dir: string, out: string[], stats: DataStats, seen: Set<string>): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch (e) {
    stats.unreadableFiles.push(`${dir} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    return;
  }
  for (const name of names) {
    if (name.startsWith(".")) continue; // hidden files, editor swap files, our own temp files
    const p = path.join(dir, name);
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch {
      continue; // a dangling symlink
    }
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) continue;
    seen.add(id);
    if (st.isDirectory()) walk(p, out, stats, seen);
    else if (st.isFile()) {
      // Inside a directory only recognised extensions count, so that stray files (images, archives) do not
      // silently become training text; a file named explicitly is read whatever its name.
      if (classify(p).known) out.push(p);
      else stats.unsupportedFiles++;
    }
  }
}

/** What the first bytes say: a NUL byte makes a plain file binary; a .gz file must start as gzip does. */
function sniff(file: string, gzip: boolean): "ok" | "binary" | "not-gzip" {
  const { fd } = openRegularFile(file);
  try {
    const buf = Buffer.alloc(SNIFF_BYTES);
    const n = fs.readSync(fd, buf, 0, SNIFF_BYTES, 0);
    // Binary inside a .gz would need decompression to see; JSONL/text parsing copes anyway.
    if (gzip) return n >= 2 && buf[0] === 0x1f && buf[1] === 0x8b ? "ok" : "not-gzip";
    return buf.subarray(0, n).includes(0) ? "binary" : "ok";
  } finally {
    fs.closeSync(fd);
  }
}

/** A .gz name with something else inside would only fail later, mid-stream, with zlib's "incorrect header check". */
function isGzip(file: string): boolean {
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.alloc(2);
    return fs.readSync(fd, buf, 0, 2, 0) === 2 && buf[0] === 0x1f && buf[1] === 0x8b;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Expand paths (files and directories) into the list of usable files, in a stable order. A path that does not
 * exist is a UserError; so is ending up with no usable file at all.
 */
export function discoverSources(paths: readonly string[], stats: DataStats, what = "--data"): SourceFile[] {
  if (paths.length === 0) throw new UserError(`${what} needs at least one file or directory`);
  const files: string[] = [];
  const seen = new Set<string>();
  for (const p of paths) {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new UserError(
        `${what}: ${p}: ${code === "ENOENT" ? "no such file or directory" : (code ?? String(e))}`,
      );
    }
    if (st.isDirectory()) {
      seen.add(`${st.dev}:${st.ino}`);
      walk(p, files, stats, seen);
    } else if (st.isFile()) files.push(p);
    else
      throw new UserError(
        `${what}: ${p} is neither a regular file nor a directory (a device, FIFO or socket)`,
      );
  }
  const out: SourceFile[] = [];
  for (const f of files) {
    let size: number;
    let kind: ReturnType<typeof sniff>;
    const { format, gzip } = classify(f);
    try {
      size = fs.statSync(f).size;
      kind = size > 0 ? sniff(f, gzip) : "ok";
    } catch (e) {
      const why = e instanceof UserError ? e.message : ((e as NodeJS.ErrnoException).code ?? String(e));
      stats.unreadableFiles.push(`${f} (${why})`);
      continue;
    }
    if (size === 0) stats.emptyFiles.push(f);
    else if (kind === "binary") stats.binaryFiles.push(f);
    else if (kind === "not-gzip") stats.notGzipFiles.push(f);
    else out.push({ path: f, format, gzip, size });
  }
  if (out.length === 0) {
    const why = stats.describe();
    throw new UserError(
      `${what}: no usable text in ${paths.join(", ")}${why.length ? ` (${why.join("; ")})` : ""}`,
    );
  }
  return out;
}

const CHUNK = 1 << 20;

/** Decompressed bytes of a file from `start` on, in chunks. */
async function* byteChunks(file: SourceFile, start: number): AsyncGenerator<Uint8Array> {
  if (!file.gzip) {
    const fh = await open(file.path, "r");
    try {
      let pos = start;
      for (;;) {
        const buf = Buffer.allocUnsafe(CHUNK);
        const { bytesRead } = await fh.read(buf, 0, CHUNK, pos);
        if (bytesRead === 0) return;
        pos += bytesRead;
        yield buf.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
  }
  // gzip cannot seek: decompress from the beginning and drop what lies before `start`.
  const stream = fs.createReadStream(file.path).pipe(createGunzip());
  let pos = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const end = pos + chunk.length;
    if (end > start) yield pos >= start ? chunk : chunk.subarray(start - pos);
    pos = end;
  }
}

/** A growable byte buffer that tracks the file offset of its first byte. */
class ByteWindow {
  buf = new Uint8Array(0);
  len = 0;
  base: number;
  constructor(base: number) {
    this.base = base;
  }
  append(chunk: Uint8Array): void {
    if (this.len + chunk.length > this.buf.length) {
      const next = new Uint8Array(Math.max(this.len + chunk.length, this.buf.length * 2, 1 << 16));
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
    }
    this.buf.set(chunk, this.len);
    this.len += chunk.length;
  }
  /** Drop the first n bytes. */
  consume(n: number): void {
    this.buf.copyWithin(0, n, this.len);
    this.len -= n;
    this.base += n;
  }
}

function isBlank(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0d || b === 0x0a;
}

// A paragraph break is a line feed, at most this many spaces/tabs/CRs, and another line feed. The bound keeps the
// look-ahead finite, so whether a break exists never depends on where the file's read chunks happen to end.
const MAX_BLANK_LINE = 64;
const LOOKAHEAD = MAX_BLANK_LINE + 2;

/** Start of the first paragraph break in [from, limit), reading at most up to len; -1 if none. */
function findBreak(b: Uint8Array, from: number, limit: number, len: number): number {
  for (let i = from; i < limit; i++) {
    if (b[i] !== 0x0a) continue;
    let j = i + 1;
    const stop = Math.min(len, j + MAX_BLANK_LINE);
    while (j < stop && (b[j] === 0x20 || b[j] === 0x09 || b[j] === 0x0d)) j++;
    if (j < len && b[j] === 0x0a) return i;
  }
  return -1;
}

/** The last position in [lo, hi) where a document may be hard-cut: after a line feed, else at a character start. */
function hardCut(b: Uint8Array, lo: number, hi: number): number {
  for (let i = hi - 1; i >= lo; i--) if (b[i] === 0x0a) return i + 1;
  let c = hi;
  while (c > lo && (b[c] & 0xc0) === 0x80) c--;
  return c > lo ? c : hi;
}

/** Plain text cut into documents of about `docBytes` at paragraph breaks (see the header). */
async function* textDocuments(
  file: SourceFile,
  start: number,
  docBytes: number,
): AsyncGenerator<RawDocument> {
  const maxDoc = 4 * docBytes;
  const w = new ByteWindow(start);
  let atStart = true;
  let scanned = docBytes; // breaks before this position of the current document were already ruled out
  /** Cut the first `end` bytes off as a document (without trailing blank lines); null if only blanks. */
  const take = (end: number): RawDocument | null => {
    let stop = end;
    while (stop > 0 && isBlank(w.buf[stop - 1])) stop--;
    const doc = stop > 0 ? { offset: w.base, bytes: w.buf.slice(0, stop) } : null;
    w.consume(end);
    atStart = true;
    scanned = docBytes;
    return doc;
  };
  /** Drop blank bytes before a document; false when the buffer holds nothing else (yet). */
  const skipBlank = (): boolean => {
    let i = 0;
    while (i < w.len && isBlank(w.buf[i])) i++;
    w.consume(i);
    if (w.len === 0) return false;
    atStart = false;
    return true;
  };
  /** The next complete document in the buffer, or null if more input is needed (or, at EOF, none is left). */
  const next = (eof: boolean): RawDocument | null | "more" => {
    if (atStart && !skipBlank()) return "more";
    // Before EOF only positions with a full look-ahead are decided.
    const decided = eof ? w.len : w.len - LOOKAHEAD;
    const limit = Math.min(decided, maxDoc);
    const br = findBreak(w.buf, scanned, limit, w.len);
    if (br >= 0) return take(br);
    scanned = Math.max(scanned, limit);
    if (decided >= maxDoc && w.len > maxDoc) return take(hardCut(w.buf, docBytes, maxDoc));
    if (eof) return take(w.len);
    return "more";
  };
  for await (const chunk of byteChunks(file, start)) {
    w.append(chunk);
    for (;;) {
      const doc = next(false);
      if (doc === "more") break;
      if (doc) yield doc;
    }
  }
  while (w.len > 0) {
    const doc = next(true);
    if (doc === "more") return;
    if (doc) yield doc;
  }
}

const utf8 = new TextDecoder("utf-8");
const encoder = new TextEncoder();

/** The document text of one JSONL line, or why there is none. */
export function jsonlText(line: string): string | "bad-json" | "no-text" {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch {
    return "bad-json";
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) return "bad-json";
  const rec = obj as Record<string, unknown>;
  if (typeof rec.text === "string") return rec.text;
  if (typeof rec.content === "string") return rec.content;
  return "no-text";
}

/**
 * A text cut into documents exactly as a plain file of that content would be (see textDocuments): greedy
 * from the start, at the first paragraph break after `docBytes`, hard-cut at 4 * docBytes.
 */
export function cutText(b: Uint8Array, docBytes: number): Uint8Array[] {
  const maxDoc = 4 * docBytes;
  const out: Uint8Array[] = [];
  let pos = 0;
  for (;;) {
    while (pos < b.length && isBlank(b[pos])) pos++;
    if (pos >= b.length) return out;
    const rest = b.subarray(pos);
    const br = findBreak(rest, docBytes, Math.min(rest.length, maxDoc), rest.length);
    const end = br >= 0 ? br : rest.length > maxDoc ? hardCut(rest, docBytes, maxDoc) : rest.length;
    let stop = end;
    while (stop > 0 && isBlank(rest[stop - 1])) stop--;
    if (stop > 0) out.push(rest.subarray(0, stop));
    pos += end;
  }
}

/**
 * The longest JSONL line read; longer ones are skipped and counted (the line is held whole while its JSON is
 * parsed, so without a bound one line without a newline could take any amount of memory).
 */
export const MAX_JSONL_LINE = 256 << 20;

async function* jsonlDocuments(
  file: SourceFile,
  start: number,
  docBytes: number,
  stats: DataStats,
  maxLine: number,
): AsyncGenerator<RawDocument> {
  const w = new ByteWindow(start);
  const lineDocs = (end: number): RawDocument[] => {
    const raw = w.buf.subarray(0, end);
    let s = 0;
    while (s < raw.length && isBlank(raw[s])) s++;
    if (s === raw.length) return []; // blank line: not worth a warning
    const r = jsonlText(utf8.decode(raw));
    if (r === "bad-json") stats.badJsonLines++;
    else if (r === "no-text") stats.linesWithoutText++;
    else if (r.length === 0) stats.emptyDocuments++;
    else {
      const bytes = encoder.encode(r);
      // A document up to the plain-text hard limit stays whole and exact; a longer one (one 55 MB line took
      // 3.96 GB to train on) is cut like plain text, its pieces sharing the line's offset.
      if (bytes.length <= 4 * docBytes) return [{ offset: w.base, bytes }];
      const pieces = cutText(bytes, docBytes);
      return pieces.map((p, i) => ({ offset: w.base, bytes: p, more: i + 1 < pieces.length }));
    }
    return [];
  };
  let scanFrom = 0;
  let skipping = false; // inside a line longer than MAX_JSONL_LINE: drop bytes up to its end
  for await (const chunk of byteChunks(file, start)) {
    w.append(chunk);
    for (;;) {
      const nl = w.buf.subarray(0, w.len).indexOf(0x0a, scanFrom);
      if (nl < 0) {
        if (w.len > maxLine) {
          if (!skipping) stats.longJsonLines++;
          skipping = true;
          w.consume(w.len);
        }
        scanFrom = w.len;
        break;
      }
      const docs = skipping ? [] : lineDocs(nl);
      skipping = false;
      w.consume(nl + 1);
      scanFrom = 0;
      yield* docs;
    }
  }
  if (w.len > 0 && !skipping) yield* lineDocs(w.len);
}

/**
 * The documents of one file from byte offset `start` (a document offset previously reported, or 0). A file
 * that becomes unreadable or turns out corrupt mid-way ends early with a note in `stats` rather than throwing.
 */
export async function* readDocuments(
  file: SourceFile,
  start: number,
  opts: { docBytes: number; stats: DataStats; maxLineBytes?: number },
): AsyncGenerator<RawDocument> {
  const inner =
    file.format === "jsonl"
      ? jsonlDocuments(file, start, opts.docBytes, opts.stats, opts.maxLineBytes ?? MAX_JSONL_LINE)
      : textDocuments(file, start, opts.docBytes);
  try {
    for await (const doc of inner) yield doc;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const note = `${file.path} (${code ?? (e instanceof Error ? e.message : String(e))})`;
    if (!opts.stats.unreadableFiles.includes(note)) opts.stats.unreadableFiles.push(note);
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** True when the bytes are well-formed UTF-8. */
export function isValidUtf8(bytes: Uint8Array): boolean {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}
