// Training runs for the dashboard: every directory under --runs (itself included) that holds a metrics.jsonl,
// read incrementally from a byte offset so that a page polling a run in training only gets what is new.

import fs from "node:fs";
import path from "node:path";

export interface RunInfo {
  /** Path relative to the runs directory ("." for the directory itself); the run's id in the API. */
  name: string;
  /** Size of its metrics.jsonl in bytes. */
  size: number;
}

const MAX_DEPTH = 3;
/** Most bytes of metrics returned by one call (a long run arrives in several). */
const MAX_CHUNK = 4 << 20;

export function listRuns(root: string): RunInfo[] {
  const out: RunInfo[] = [];
  const visit = (dir: string, depth: number) => {
    const m = path.join(dir, "metrics.jsonl");
    try {
      const st = fs.statSync(m);
      if (st.isFile()) out.push({ name: path.relative(root, dir) || ".", size: st.size });
    } catch {
      // not a run
    }
    if (depth >= MAX_DEPTH) return;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries)
      if (e.isDirectory() && e.name !== "checkpoints" && !e.name.startsWith("."))
        visit(path.join(dir, e.name), depth + 1);
  };
  visit(root, 0);
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The complete metric lines of run `name` from byte `offset` on, and the offset to ask from next time. A
 * half-written last line is left for the next call. Null when `name` is not a run under `root`.
 */
export function readRunMetrics(
  root: string,
  name: string,
  offset: number,
): { records: unknown[]; offset: number; size: number } | null {
  if (!listRuns(root).some((r) => r.name === name)) return null;
  const file = path.join(root, name, "metrics.jsonl");
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    // A file that shrank was restarted (a fresh run in the same directory): read it again from the start.
    const from = offset > size ? 0 : offset;
    const len = Math.min(size - from, MAX_CHUNK);
    const buf = Buffer.alloc(len);
    const got = len > 0 ? fs.readSync(fd, buf, 0, len, from) : 0;
    const end = buf.subarray(0, got).lastIndexOf(10);
    const records: unknown[] = [];
    if (end < 0) return { records, offset: from, size };
    for (const line of buf.subarray(0, end).toString("utf8").split("\n")) {
      if (!line.trim()) continue;
      try {
        records.push(JSON.parse(line));
      } catch {
        // a damaged line (crash mid-write before atomic appends existed) is skipped, as the trainer does
      }
    }
    return { records, offset: from + end + 1, size };
  } finally {
    fs.closeSync(fd);
  }
}
