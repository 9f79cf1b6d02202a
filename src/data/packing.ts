// Packing documents into training rows (spec section 8). Documents `[BOS, bytes, EOS]` are concatenated and cut
// into rows of S+1 ids; a row's input is ids[0..S), its target ids[1..S], and the last id of a row is the first
// id of the next, so every id is predicted exactly once. No padding, no attention mask between documents.
// Level masks travel with their ids (aligned with the input); the model forces position 0 of a row to the top
// level itself.

import { documentLevelMask, type SplitStrategy } from "./splitter.js";

export interface PackedDoc {
  tokens: Int32Array;
  mask: Int32Array;
}

/** `[BOS, bytes, EOS]` with the training-path level mask (BOS at the document's top level, EOS at 0). */
export function packDocument(bytes: Uint8Array, strategy: SplitStrategy): PackedDoc {
  return documentLevelMask(bytes, strategy);
}

export interface SourcedDoc<P> {
  doc: PackedDoc;
  /** Where the source stands just before this document (enough to reproduce it after a restart). */
  pos: P;
}

/** The packer's position: the document holding the next row's first id, and that id's index in it. */
export interface PackerState<P> {
  pos: P;
  offset: number;
}

/**
 * Cuts rows of S+1 ids out of a stream of documents. Its whole state is the document that holds the next row's
 * first id (the previous row's last) and that id's offset, so a checkpoint can restart it exactly.
 */
export class RowPacker<P> {
  private cur: SourcedDoc<P> | null = null;
  private offset = 0;
  private ended = false;

  constructor(
    readonly S: number,
    private readonly next: () => Promise<SourcedDoc<P> | null>,
  ) {
    if (!Number.isInteger(S) || S < 1) throw new Error(`RowPacker: sequence length must be >= 1, got ${S}`);
  }

  /**
   * Fill `ids` and `mask` (length S+1) with the next row. Returns how many ids were written: S+1, or fewer
   * when a finite source ran out (a last partial row; fewer than 2 ids means nothing is left to predict).
   */
  async fill(ids: Int32Array, mask: Int32Array): Promise<number> {
    const want = this.S + 1;
    if (this.cur === null && !this.ended) {
      this.cur = await this.next();
      this.offset = 0;
      if (this.cur === null) this.ended = true;
    }
    if (this.cur === null) return 0;
    let k = 0;
    for (;;) {
      const { tokens, mask: m } = this.cur.doc;
      const take = Math.min(want - k, tokens.length - this.offset);
      ids.set(tokens.subarray(this.offset, this.offset + take), k);
      mask.set(m.subarray(this.offset, this.offset + take), k);
      k += take;
      this.offset += take;
      if (k === want) {
        // The row's last id starts the next row.
        this.offset -= 1;
        return k;
      }
      const nxt = this.ended ? null : await this.next();
      if (nxt === null) {
        // Source exhausted: this row is the last; keep its final id as a row of one (nothing to predict).
        this.offset = tokens.length - 1;
        this.ended = true;
        return k;
      }
      this.cur = nxt;
      this.offset = 0;
    }
  }

  state(): PackerState<P> | null {
    return this.cur === null ? null : { pos: this.cur.pos, offset: this.offset };
  }

  /** Continue from a saved state; `doc` is the document at `state.pos`, read again from the source. */
  restore(doc: SourcedDoc<P>, offset: number): void {
    if (offset < 0 || offset >= doc.doc.tokens.length)
      throw new Error(
        `RowPacker.restore: offset ${offset} outside a document of ${doc.doc.tokens.length} ids`,
      );
    this.cur = doc;
    this.offset = offset;
    this.ended = false;
  }
}

/** Every row of a finite, in-memory list of documents (validation sets, tests). */
export async function packAll(
  docs: readonly PackedDoc[],
  S: number,
): Promise<{ ids: Int32Array; mask: Int32Array }[]> {
  let i = 0;
  const packer = new RowPacker<number>(S, async () => (i < docs.length ? { doc: docs[i], pos: i++ } : null));
  const rows: { ids: Int32Array; mask: Int32Array }[] = [];
  for (;;) {
    const ids = new Int32Array(S + 1),
      mask = new Int32Array(S + 1);
    const n = await packer.fill(ids, mask);
    if (n < 2) return rows;
    rows.push({ ids: ids.subarray(0, n), mask: mask.subarray(0, n) });
    if (n < S + 1) return rows;
  }
}
