// Bits per byte per file (a directory with one file per language gives the per-language table). Each file is
// read, cut into documents and packed exactly as training and `aunet eval` do it (data/sources, data/packing,
// train/evaluate: full forwards over rows of seq_len bytes with the training level masks), but on its own, so
// a row never mixes two files. The total sums the files' nats and bytes, so it weights files by their size.

import type { SplitStrategy } from "../data/splitter.js";
import type { AUNet } from "../model/aunet.js";
import { DataStats, readDocuments, type SourceFile } from "../data/sources.js";
import { packDocument } from "../data/packing.js";
import { evaluateDocs, type EvalResult } from "../train/evaluate.js";

export interface FileBpb extends EvalResult {
  file: string;
  documents: number;
}

export interface BpbReport {
  files: FileBpb[];
  total: EvalResult;
}

export interface BpbOptions {
  /** Rows per forward (default 8). */
  batch?: number;
  /** Bytes per row; the model's max_seqlens[0] by default. */
  seqLen?: number;
  /** Plain-text document size, as in training (default 8192). */
  docBytes?: number;
  /** At most this many documents per file. */
  limit?: number;
  stats?: DataStats;
  onFile?: (row: FileBpb) => void;
}

/** An EvalResult from raw sums (per-file results add up this way). */
export function sumResults(rs: readonly EvalResult[]): EvalResult {
  let positions = 0,
    bytes = 0,
    chars = 0,
    nats = 0;
  for (const r of rs) {
    positions += r.positions;
    bytes += r.bytes;
    chars += r.chars;
    nats += r.nats;
  }
  return {
    positions,
    bytes,
    chars,
    nats,
    natsPerByte: nats / bytes,
    bitsPerByte: nats / bytes / Math.LN2,
    natsPerChar: nats / chars,
    bitsPerChar: nats / chars / Math.LN2,
    loss: nats / positions,
  };
}

export async function bitsPerByteByFile(
  model: AUNet,
  strategy: SplitStrategy,
  files: readonly SourceFile[],
  opts: BpbOptions = {},
): Promise<BpbReport> {
  const batch = opts.batch ?? 8;
  const S = opts.seqLen ?? model.config.max_seqlens[0];
  const stats = opts.stats ?? new DataStats();
  const rows: FileBpb[] = [];
  for (const file of files) {
    const docs = readDocuments(file, 0, { docBytes: opts.docBytes ?? 8192, stats });
    let documents = 0;
    const r = await evaluateDocs(
      model,
      async () => {
        if (opts.limit !== undefined && documents >= opts.limit) return null;
        const d = await docs.next();
        if (d.done) return null;
        documents++;
        return packDocument(d.value.bytes, strategy);
      },
      batch,
      S,
    );
    await docs.return(undefined);
    const row = { file: file.path, documents, ...r };
    rows.push(row);
    opts.onFile?.(row);
  }
  return { files: rows, total: sumResults(rows) };
}
