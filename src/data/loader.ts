// The training data loader: documents from the sources, shuffled deterministically, split into train and
// validation, packed into rows, with a position small enough to store in a checkpoint.
//
// Shuffling is two-level, so that it streams: each epoch visits the files in a seeded random order, and each
// file is read in windows of up to `shuffleWindow` documents (and at most WINDOW_BYTES), each window shuffled
// with its own seeded generator. Every random choice is derived from counters (seed, epoch, file, window),
// never from a generator that advances, so the loader's position IS its random state:
// (epoch, file, byte offset and ordinal of the window, index in the window) plus the packer's offset inside
// the current document. Restarting re-reads that one window and lands on the same document and byte.
//
// Held-out validation without a `--val` source takes a stable fraction of documents by content hash: a
// document is validation when FNV-1a(bytes) / 2^32 < fraction, whatever the seed, the order or the files
// around it, so the split never leaks between runs.

import { UserError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import type { SplitStrategy } from "./splitter.js";
import { packDocument, RowPacker, type PackedDoc, type SourcedDoc } from "./packing.js";
import { DataStats, isValidUtf8, readDocuments, type RawDocument, type SourceFile } from "./sources.js";

/** Caps the memory a shuffle window holds, whatever the document sizes. */
export const WINDOW_BYTES = 32 << 20;

export interface LoaderPosition {
  epoch: number;
  /** Index into this epoch's file order. */
  fileCursor: number;
  /** Decompressed byte offset of the window's first document in its file. */
  windowOffset: number;
  /** Window number within the file (seeds its shuffle). */
  windowOrdinal: number;
  /** Index of the document in the shuffled window. */
  index: number;
}

export interface DataLoaderState {
  position: LoaderPosition;
  /** Offset in that document of the next row's first id. */
  offset: number;
}

/** 32-bit FNV-1a of some bytes. */
export function fnv1a(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h >>> 0;
}

/** True when a document belongs to the hash-held-out validation fraction. */
export function isHeldOut(bytes: Uint8Array, fraction: number): boolean {
  return fraction > 0 && fnv1a(bytes) / 2 ** 32 < fraction;
}

/** A seed from several counters (splitmix-style mixing; distinct tuples give unrelated seeds). */
export function mixSeed(...xs: number[]): number {
  let h = 0x9e3779b9;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    // Numbers above 2^32 (long byte offsets are never mixed, but be safe) contribute their high part too.
    h ^= Math.floor(x / 2 ** 32);
  }
  return h >>> 0;
}

export interface LoaderOptions {
  seed: number;
  docBytes: number;
  shuffleWindow: number;
  /** Hash-held-out validation fraction removed from the training stream (0 with an explicit --val). */
  valFraction: number;
  strategy: SplitStrategy;
  stats: DataStats;
}

interface OpenWindow {
  offset: number;
  ordinal: number;
  docs: Uint8Array[];
  index: number;
}

/** An endless, shuffled stream of training documents (epoch after epoch), seekable to a saved position. */
export class ShuffledDocs {
  private epoch = 0;
  private order: number[] = [];
  private fileCursor = 0;
  private reader: AsyncGenerator<RawDocument> | null = null;
  private nextOrdinal = 0;
  private window: OpenWindow | null = null;
  private docsThisEpoch = 0;

  constructor(
    readonly files: readonly SourceFile[],
    readonly opts: LoaderOptions,
  ) {
    this.order = this.fileOrder(0);
  }

  // Skipped lines and files are reported once: later epochs re-read the same data into a scratch counter.
  private readonly scratch = new DataStats();
  private readOpts(): { docBytes: number; stats: DataStats } {
    return { docBytes: this.opts.docBytes, stats: this.epoch === 0 ? this.opts.stats : this.scratch };
  }

  private fileOrder(epoch: number): number[] {
    const order = this.files.map((_, i) => i);
    new Rng(mixSeed(this.opts.seed, epoch, 0xf11e)).shuffle(order);
    return order;
  }

  private async closeReader(): Promise<void> {
    if (this.reader) await this.reader.return(undefined);
    this.reader = null;
  }

  /** Read the next window of the current file; null when the file is exhausted. */
  private async readWindow(): Promise<OpenWindow | null> {
    const fileIdx = this.order[this.fileCursor];
    if (!this.reader) this.reader = readDocuments(this.files[fileIdx], 0, this.readOpts());
    const ordinal = this.nextOrdinal;
    const raw: Uint8Array[] = [];
    let offset = -1;
    let bytes = 0;
    // The pieces of one long JSONL line share its offset, so a window never ends between two of them: a
    // restart re-reads from that offset and must find the same documents (the window's bytes stay bounded by
    // the line's, which the reader already held whole).
    let more = false;
    while ((raw.length < this.opts.shuffleWindow && bytes < WINDOW_BYTES) || more) {
      const r = await this.reader.next();
      if (r.done) break;
      if (offset < 0) offset = r.value.offset;
      raw.push(r.value.bytes);
      bytes += r.value.bytes.length;
      more = r.value.more === true;
    }
    if (raw.length === 0) return null;
    this.nextOrdinal++;
    return this.makeWindow(offset, ordinal, raw);
  }

  private makeWindow(offset: number, ordinal: number, raw: Uint8Array[]): OpenWindow {
    const docs = raw.filter((b) => !isHeldOut(b, this.opts.valFraction));
    if (this.epoch === 0) for (const d of docs) if (!isValidUtf8(d)) this.opts.stats.invalidUtf8Documents++;
    new Rng(mixSeed(this.opts.seed, this.epoch, this.order[this.fileCursor], ordinal)).shuffle(docs);
    return { offset, ordinal, docs, index: 0 };
  }

  private async advanceFile(): Promise<void> {
    await this.closeReader();
    this.nextOrdinal = 0;
    this.fileCursor++;
    if (this.fileCursor >= this.files.length) {
      if (this.docsThisEpoch === 0)
        throw new UserError(
          "the training data has no documents left after holding out validation (use --val, a smaller --val-fraction, or more data)",
        );
      this.epoch++;
      this.docsThisEpoch = 0;
      this.order = this.fileOrder(this.epoch);
      this.fileCursor = 0;
    }
  }

  async next(): Promise<SourcedDoc<LoaderPosition>> {
    while (this.window === null || this.window.index >= this.window.docs.length) {
      this.window = await this.readWindow();
      if (this.window === null) await this.advanceFile();
    }
    const w = this.window;
    const pos: LoaderPosition = {
      epoch: this.epoch,
      fileCursor: this.fileCursor,
      windowOffset: w.offset,
      windowOrdinal: w.ordinal,
      index: w.index,
    };
    const bytes = w.docs[w.index++];
    this.docsThisEpoch++;
    return { doc: packDocument(bytes, this.opts.strategy), pos };
  }

  /** Jump to a saved position: the next `next()` returns the document that was there. */
  async seek(pos: LoaderPosition): Promise<void> {
    if (pos.fileCursor < 0 || pos.fileCursor >= this.files.length)
      throw new UserError(
        `the checkpoint's data position (file ${pos.fileCursor}) does not fit these data sources`,
      );
    await this.closeReader();
    this.epoch = pos.epoch;
    this.order = this.fileOrder(pos.epoch);
    this.fileCursor = pos.fileCursor;
    this.reader = readDocuments(this.files[this.order[pos.fileCursor]], pos.windowOffset, this.readOpts());
    this.nextOrdinal = pos.windowOrdinal;
    const w = await this.readWindow();
    if (w === null || w.offset !== pos.windowOffset || pos.index >= w.docs.length)
      throw new UserError(
        `cannot restore the data position: ${this.files[this.order[pos.fileCursor]].path} changed since the checkpoint`,
      );
    w.index = pos.index;
    this.window = w;
    // Count the epoch as non-empty: it produced at least the documents before this position.
    this.docsThisEpoch = 1;
  }

  async close(): Promise<void> {
    await this.closeReader();
  }
}

/** Training rows [B, S+1] from a shuffled document stream, with a checkpointable position. */
export class TrainLoader {
  readonly docs: ShuffledDocs;
  private readonly packer: RowPacker<LoaderPosition>;

  constructor(
    files: readonly SourceFile[],
    readonly S: number,
    opts: LoaderOptions,
  ) {
    this.docs = new ShuffledDocs(files, opts);
    this.packer = new RowPacker(S, () => this.docs.next());
  }

  /** B rows: inputs, their level masks and targets, each [B*S] row-major. */
  async batch(B: number): Promise<{ tokens: Int32Array; mask: Int32Array; targets: Int32Array }> {
    const S = this.S;
    const tokens = new Int32Array(B * S),
      mask = new Int32Array(B * S),
      targets = new Int32Array(B * S);
    const ids = new Int32Array(S + 1),
      m = new Int32Array(S + 1);
    for (let b = 0; b < B; b++) {
      const n = await this.packer.fill(ids, m);
      if (n !== S + 1) throw new Error("the training stream ended"); // it is endless by construction
      tokens.set(ids.subarray(0, S), b * S);
      mask.set(m.subarray(0, S), b * S);
      targets.set(ids.subarray(1), b * S);
    }
    return { tokens, mask, targets };
  }

  state(): DataLoaderState | null {
    const s = this.packer.state();
    return s === null ? null : { position: s.pos, offset: s.offset };
  }

  async restore(state: DataLoaderState): Promise<void> {
    await this.docs.seek(state.position);
    const doc = await this.docs.next();
    this.packer.restore(doc, state.offset);
  }

  async close(): Promise<void> {
    await this.docs.close();
  }
}

/**
 * Documents in file order, unshuffled, until `maxBytes` of text (whole documents; 0 = no limit): an explicit
 * validation/evaluation source (`heldOut` null), or the hash-held-out fraction of the training sources.
 */
export async function* orderedDocs(
  files: readonly SourceFile[],
  opts: { docBytes: number; stats: DataStats; heldOut: number | null; maxBytes: number },
): AsyncGenerator<Uint8Array> {
  let total = 0;
  for (const f of files) {
    for await (const d of readDocuments(f, 0, opts)) {
      if (opts.heldOut !== null && !isHeldOut(d.bytes, opts.heldOut)) continue;
      yield d.bytes;
      total += d.bytes.length;
      if (opts.maxBytes > 0 && total >= opts.maxBytes) return;
    }
  }
}

/** The documents of `orderedDocs`, packed and kept in memory (a validation set). */
export async function collectDocs(
  files: readonly SourceFile[],
  strategy: SplitStrategy,
  opts: { docBytes: number; stats: DataStats; heldOut: number | null; maxBytes: number },
): Promise<{ docs: PackedDoc[]; bytes: number }> {
  const docs: PackedDoc[] = [];
  let bytes = 0;
  for await (const d of orderedDocs(files, opts)) {
    docs.push(packDocument(d, strategy));
    bytes += d.length;
  }
  // An explicit source (a --val) without a single document must not pass for an empty validation set.
  if (docs.length === 0 && opts.heldOut === null) {
    const why = opts.stats.describe();
    throw new UserError(
      `no documents in ${files.map((f) => f.path).join(", ")}${why.length ? ` (${why.join("; ")})` : " (only blank lines)"}`,
    );
  }
  return { docs, bytes };
}
