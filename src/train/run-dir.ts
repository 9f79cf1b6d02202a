// A training run's directory: checked and locked before anything is written, and its metrics log.
//
// One run per directory: two `train` processes on one --out would interleave checkpoints and prune each other's.
// `<out>/train.lock` holds the owner's pid and host; it is created exclusively, removed when the run ends, and a
// lock whose process is gone (a kill -9, a second Ctrl-C) is stale and taken over.
//
// `fs` is used through its default export so that tests can inject failures (a full disk) with mock.method.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { UserError } from "../util/errors.js";
import { writeFileAtomic } from "../io/atomic.js";
import { CHECKPOINTS } from "./checkpoint.js";

export const LOCK_FILE = "train.lock";
export const METRICS_FILE = "metrics.jsonl";

const errCode = (e: unknown) =>
  (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e));

/** Whether process `pid` exists on this machine (EPERM: it exists but belongs to someone else). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export class RunDir {
  private locked = false;
  private readonly onExit = () => this.release();

  private constructor(readonly dir: string) {}

  /**
   * Check that `dir` can be a run directory (creating it), and lock it. One-line errors for a file, a path under
   * a file, a directory that cannot be written, and a directory another live run holds.
   */
  static open(dir: string, flag = "--out"): RunDir {
    let st: fs.Stats | null = null;
    try {
      st = fs.statSync(dir);
    } catch (e) {
      const code = errCode(e);
      if (code === "ENOTDIR")
        throw new UserError(`${flag} ${dir}: a parent of it is a file, not a directory`);
      if (code !== "ENOENT") throw new UserError(`${flag} ${dir}: cannot use it (${code})`);
    }
    if (st && !st.isDirectory()) throw new UserError(`${flag} ${dir} is a file, not a directory`);
    if (!st) {
      try {
        fs.mkdirSync(dir, { recursive: true });
      } catch (e) {
        const code = errCode(e);
        if (code === "ENOTDIR" || code === "EEXIST")
          throw new UserError(`${flag} ${dir}: a parent of it is a file, not a directory`);
        throw new UserError(`${flag} ${dir}: cannot create it (${code})`);
      }
    }
    const run = new RunDir(dir);
    run.lock(flag);
    return run;
  }

  get lockPath(): string {
    return path.join(this.dir, LOCK_FILE);
  }

  private lock(flag: string): void {
    const body =
      JSON.stringify({ pid: process.pid, host: os.hostname(), started: new Date().toISOString() }) + "\n";
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = fs.openSync(this.lockPath, "wx");
        try {
          fs.writeSync(fd, body);
        } finally {
          fs.closeSync(fd);
        }
        this.locked = true;
        process.on("exit", this.onExit);
        return;
      } catch (e) {
        const code = errCode(e);
        if (code !== "EEXIST") {
          if (code === "EACCES" || code === "EROFS" || code === "EPERM")
            throw new UserError(`${flag} ${this.dir} is not writable (${code})`);
          throw new UserError(`${flag} ${this.dir}: cannot create ${LOCK_FILE} (${code})`);
        }
      }
      const owner = this.readOwner();
      if (owner && owner.host === os.hostname() && !alive(owner.pid)) {
        // Stale: its process is gone. Check once more right before removing it, so that a lock another process
        // has just taken over is not removed.
        const again = this.readOwner();
        if (again?.pid === owner.pid) fs.rmSync(this.lockPath, { force: true });
        continue;
      }
      if (owner === null) {
        // Being written this instant by another process, or an empty file left by a crash between open and
        // write: only the second survives a short wait.
        const age =
          Date.now() - (fs.statSync(this.lockPath, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
        if (age > 5000) fs.rmSync(this.lockPath, { force: true });
        continue;
      }
      throw new UserError(
        `${flag} ${this.dir} is in use by another training run (pid ${owner.pid}${owner.host !== os.hostname() ? ` on ${owner.host}` : ""}); wait for it, or remove ${this.lockPath} if that process is gone`,
      );
    }
    throw new UserError(`${flag} ${this.dir}: could not take ${this.lockPath}; try again`);
  }

  private readOwner(): { pid: number; host: string } | null {
    try {
      const o = JSON.parse(fs.readFileSync(this.lockPath, "utf8")) as { pid?: unknown; host?: unknown };
      if (Number.isSafeInteger(o.pid) && typeof o.host === "string")
        return { pid: o.pid as number, host: o.host };
    } catch {
      // unreadable or half-written
    }
    return null;
  }

  /** Remove a previous run's checkpoints and records (the demo with --force; under the lock). */
  clear(): void {
    fs.rmSync(path.join(this.dir, CHECKPOINTS), { recursive: true, force: true });
    for (const name of [METRICS_FILE, "curve.svg", "params.json"])
      fs.rmSync(path.join(this.dir, name), { force: true });
  }

  /** Give the directory up (idempotent; also runs at process exit). */
  release(): void {
    if (!this.locked) return;
    this.locked = false;
    process.off("exit", this.onExit);
    fs.rmSync(this.lockPath, { force: true });
  }
}

/** Appending to metrics.jsonl failed (a full disk): the trainer saves a checkpoint before reporting it. */
export class MetricsWriteError extends UserError {}

export interface MetricRecord {
  kind: "train" | "val";
  step: number;
  [k: string]: unknown;
}

/** The records of a metrics.jsonl (a torn last line, from a kill, is ignored). */
export function readMetrics(file: string): MetricRecord[] {
  if (!fs.existsSync(file)) return [];
  const out: MetricRecord[] = [];
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as MetricRecord;
      if (typeof r?.step === "number") out.push(r);
    } catch {
      // a line torn by a kill: ignore it
    }
  }
  return out;
}

/**
 * metrics.jsonl, appended one whole line at a time. A write that fails part-way (a full disk) is cut back to
 * the last complete line before the error is reported, so the file never holds a torn line from a live run.
 */
export class MetricsLog {
  private fd: number;
  private size: number;

  /** Start the log keeping the records of `kept` (a resumed run drops what was logged past its checkpoint). */
  constructor(
    readonly file: string,
    kept: readonly MetricRecord[],
  ) {
    writeFileAtomic(file, kept.map((r) => JSON.stringify(r) + "\n").join(""));
    this.fd = fs.openSync(file, "r+");
    this.size = fs.fstatSync(this.fd).size;
  }

  append(records: readonly MetricRecord[]): void {
    if (records.length === 0) return;
    const buf = Buffer.from(records.map((r) => JSON.stringify(r) + "\n").join(""), "utf8");
    let done = 0;
    try {
      while (done < buf.length) done += fs.writeSync(this.fd, buf, done, buf.length - done, this.size + done);
      this.size += buf.length;
    } catch (e) {
      try {
        fs.ftruncateSync(this.fd, this.size);
      } catch {
        // the report below is what matters
      }
      throw new MetricsWriteError(`cannot append to ${this.file}: ${errCode(e)}`);
    }
  }

  close(): void {
    if (this.fd < 0) return;
    fs.closeSync(this.fd);
    this.fd = -1;
  }
}
