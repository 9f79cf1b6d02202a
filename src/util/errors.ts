// A mistake by the user (bad flag, bad config, unreadable file): the CLI prints its message on one line and
// exits 1, without a stack trace. Anything else that escapes is a bug and keeps its trace.
//
// Messages often quote what a file or a flag contained (a pickle's global name, a JSON key, a path), and those
// come from outside: the message is made safe for a terminal here, once, so that no caller has to remember.
// Control characters (ESC sequences could retitle or clear the terminal; a line feed would break the one-line
// promise) and bidirectional overrides are written as escapes, and a message longer than MAX_MESSAGE_CHARS
// keeps its start and end with the middle elided (a 20 MB name must not become a 20 MB line).

/** The longest message shown whole; longer ones keep their first and last parts. */
export const MAX_MESSAGE_CHARS = 2000;
const TAIL_CHARS = 300;

// C0 controls, DEL, C1 controls, line/paragraph separators, and the bidirectional embeddings, overrides and
// isolates that can make a terminal show text in another order than it is.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function escapeChar(c: string): string {
  const code = c.charCodeAt(0);
  if (c === "\n") return "\\n";
  if (c === "\r") return "\\r";
  if (c === "\t") return "\\t";
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;
}

/** `s` as one printable line of bounded length: control characters escaped, the middle of a long text elided. */
export function safeLine(s: string, max: number = MAX_MESSAGE_CHARS): string {
  // Cut first, so escaping never touches more than the kept part of a huge message.
  let out = s;
  if (s.length > max) {
    const tail = Math.min(TAIL_CHARS, Math.floor(max / 4));
    const head = max - tail;
    out = `${s.slice(0, head)} [... ${s.length - head - tail} characters left out ...] ${s.slice(s.length - tail)}`;
  }
  return out.replace(UNSAFE, escapeChar);
}

export class UserError extends Error {
  /**
   * `message` is shown as one safe line (see the header). `detail`, for text the program itself wrote (a usage
   * summary), follows on its own lines unchanged.
   */
  constructor(message: string, opts: { detail?: string } = {}) {
    super(safeLine(message) + (opts.detail === undefined ? "" : `\n${opts.detail}`));
    this.name = "UserError";
  }
}
