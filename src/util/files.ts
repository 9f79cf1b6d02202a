// Opening files that come from the user, so that a path that is not an ordinary file is refused at once instead
// of hanging the program: a symlink to /dev/zero reads without end, and opening a FIFO for reading blocks until
// some other process writes to it. The file is opened non-blocking (which makes no difference to regular files)
// and checked with fstat on the descriptor itself, so what is checked is what is read.

import buffer from "node:buffer";
import fs from "node:fs";
import { UserError } from "./errors.js";

// Not every platform has O_NONBLOCK (Windows); there FIFOs do not exist either.
const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0);

function kind(st: fs.Stats): string {
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a FIFO (named pipe)";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isSocket()) return "a socket";
  return "not a regular file";
}

/** Opens `path` for reading if it is a regular file (after following symlinks); the caller closes `fd`. */
export function openRegularFile(path: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(path, OPEN_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`cannot read ${path}: ${code ?? (e instanceof Error ? e.message : String(e))}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile())
      throw new UserError(`cannot read ${path}: it is ${kind(st)}, and only regular files are read`);
    return { fd, size: st.size };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/**
 * The whole of a regular file, refused if it is larger than `maxBytes` (checked before anything is read).
 * `what` names the kind of file in that refusal.
 */
export function readRegularFile(path: string, maxBytes: number = Infinity, what = "the file"): Buffer {
  const { fd, size } = openRegularFile(path);
  try {
    if (size > maxBytes)
      throw new UserError(`${path} is ${size} bytes, more than ${maxBytes} allowed for ${what}`);
    if (size > buffer.constants.MAX_LENGTH)
      throw new UserError(`${path} is ${size} bytes, more than this Node.js can hold in one buffer`);
    const out = Buffer.allocUnsafe(size);
    let done = 0;
    while (done < size) {
      const n = fs.readSync(fd, out, done, size - done, done);
      if (n === 0) throw new UserError(`${path}: file shrank while being read`);
      done += n;
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}
