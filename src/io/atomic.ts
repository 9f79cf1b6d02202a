// Atomic file replacement: readers (and a crash or kill mid-write) see either the old file or the complete new
// one, never a prefix. Checkpoints and run records are rewritten in place, so a torn write would destroy the only
// copy.
//
// `fs` is used through its default export on purpose: tests replace single methods with node:test's `mock.method`
// to simulate a disk failing mid-write, which a named ESM import would not see.
import fs from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { UserError } from "../util/errors.js";

export type AtomicData = Uint8Array | string | readonly Uint8Array[];

// Temp files start with "." and end with ".tmp" (ignored by .gitignore) so a leftover from a hard kill is hidden
// and easy to recognise; pid + random bytes keep concurrent writers to the same target apart.
export function tempPathFor(target: string): string {
  const dir = path.dirname(target);
  const base = path.basename(target);
  return path.join(dir, `.${base}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
}

function writeAll(fd: number, chunk: Uint8Array): void {
  // writeSync may write less than asked (large buffers, signals), so loop until the chunk is out.
  let done = 0;
  while (done < chunk.byteLength) {
    done += fs.writeSync(fd, chunk, done, chunk.byteLength - done);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// Write `data` to `target` so that the target is replaced in one step. Failures from the file system become a
// UserError (a bad output path or a full disk is not a bug); the temp file is removed and the old target is left
// as it was.
export function writeFileAtomic(target: string, data: AtomicData): void {
  const chunks: readonly Uint8Array[] =
    typeof data === "string" ? [Buffer.from(data, "utf8")] : data instanceof Uint8Array ? [data] : data;
  const tmp = tempPathFor(target);
  let fd: number | undefined;
  try {
    // Keep the permissions of a file being replaced (a chmod'ed config stays private); new files get the
    // usual 0666 & ~umask.
    let mode = 0o666;
    try {
      const st = fs.statSync(target);
      if (st.isFile()) mode = st.mode & 0o7777;
    } catch {
      // no existing file: default mode
    }
    // "wx" fails rather than clobbering if the random name ever collides.
    fd = fs.openSync(tmp, "wx", mode);
    for (const chunk of chunks) writeAll(fd, chunk);
    // Without fsync before rename, a power loss can leave the new name pointing at an empty file on
    // filesystems that reorder metadata and data writes.
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, target);
  } catch (err) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the original error is the one to report
      }
    }
    try {
      fs.unlinkSync(tmp);
    } catch {
      // never created, or already renamed
    }
    if (err instanceof UserError) throw err;
    throw new UserError(`cannot write ${target}: ${describe(err)}`);
  }
  syncDirectory(path.dirname(target));
}

// Makes the rename itself durable. Best effort: some platforms (Windows) and filesystems refuse to open or fsync a
// directory, and the data is already safely in place by then.
/** fsync a directory so that a rename into it survives a crash (best effort where unsupported). */
export function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch {
    // best effort
  } finally {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // best effort
      }
    }
  }
}

// JSON with a trailing newline, so the files diff and `cat` cleanly.
export function writeJsonAtomic(target: string, obj: unknown, space: number = 2): void {
  const text = JSON.stringify(obj, null, space);
  if (text === undefined) throw new TypeError(`writeJsonAtomic(${target}): value is not JSON-serialisable`);
  writeFileAtomic(target, text + "\n");
}
