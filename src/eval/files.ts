// Reading the user's task files: any failure to read is the user's to fix, so it becomes a one-line UserError.

import { readFileSync, statSync } from "node:fs";
import { UserError } from "../util/errors.js";

/** A whole text file as UTF-8 (a leading byte-order mark dropped). */
export function readTextFile(path: string, what: string): string {
  let text: string;
  try {
    if (statSync(path).isDirectory()) throw new UserError(`${what}: ${path} is a directory, expected a file`);
    text = readFileSync(path, "utf8");
  } catch (e) {
    if (e instanceof UserError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${what}: ${path}: ${code === "ENOENT" ? "no such file" : (code ?? String(e))}`);
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * The lines of a text file, line endings (\n or \r\n) removed; a final line ending does not start another
 * line. Line i of the result is line i+1 of the file, so callers can cite line numbers.
 */
export function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}
