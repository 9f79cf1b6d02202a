// The few Python `str` behaviours that evaluation conventions are defined by (sacreBLEU's tokenisation,
// lm-eval-harness's preprocessing). JavaScript's `\s` disagrees with Python's `str.isspace()` (it lacks
// U+001C..U+001F and U+0085, and adds U+FEFF), and a split on the wrong whitespace changes BLEU counts.

const PY_SPACE_CLASS =
  "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PY_SPACE_RUN = new RegExp(`[${PY_SPACE_CLASS}]+`, "u");
const PY_LEADING = new RegExp(`^[${PY_SPACE_CLASS}]+`, "u");
const PY_TRAILING = new RegExp(`[${PY_SPACE_CLASS}]+$`, "u");
const PY_SPACE_CHAR = new RegExp(`^[${PY_SPACE_CLASS}]$`, "u");

/** Python `s.split()`: runs of whitespace separate words, no empty words. */
export function pySplit(s: string): string[] {
  return s.split(PY_SPACE_RUN).filter((w) => w.length > 0);
}

/** Python `s.strip()`. */
export function pyStrip(s: string): string {
  return s.replace(PY_LEADING, "").replace(PY_TRAILING, "");
}

/** Python `s.rstrip()`. */
export function pyRstrip(s: string): string {
  return s.replace(PY_TRAILING, "");
}

/** Python `str.isspace()` for one character. */
export function pyIsSpace(ch: string): boolean {
  return PY_SPACE_CHAR.test(ch);
}

/** Python `s.capitalize()`: first character upper-cased, every other one lower-cased. */
export function pyCapitalize(s: string): string {
  const cps = Array.from(s);
  if (cps.length === 0) return s;
  return cps[0].toUpperCase() + cps.slice(1).join("").toLowerCase();
}

/** Python `len(s)`: code points, not UTF-16 units. */
export function pyLen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}
