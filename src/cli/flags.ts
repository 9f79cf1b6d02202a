// The one flag parser of every `aunet` command. node:util's parseArgs wants `--data a --data b`; the training
// commands also take `--data a b c` (a list runs until the next flag), which is what shells produce from globs.
//
// - "string" flags take exactly one value, "list" flags one or more (and may be repeated: values accumulate),
//   "bool" flags none. `--name=value` works for every valued flag and is the way to pass a value that starts
//   with "--"; any other argument (an empty one, one with spaces or newlines, "-1", "-x") is taken as a value
//   when it stands where a value is expected.
// - `-h` is `--help` (every command documents `-h, --help`).
// - Positional arguments are refused unless the command asks for them with { positionals: true }; then a bare
//   argument is a positional, "-" is one too, and everything after "--" is.
// - A flag whose spec has a `number` range is checked as it is parsed, so a bad value fails before any work.
//   Sizes whose absurd values would exhaust memory or never finish have a ceiling in FLAG_LIMITS, which every
//   numeric flag of that name gets, whichever command defines it.
// Every mistake is a one-line UserError naming the command and pointing at its --help.

import { UserError } from "../util/errors.js";

export interface FlagSpec {
  /** "string" takes one value, "list" one or more, "bool" none. */
  kind: "string" | "list" | "bool";
  /** A numeric flag: its value is checked against this range when parsed. */
  number?: NumberRange;
}

export interface NumberRange {
  int?: boolean;
  min?: number;
  max?: number;
  exclusiveMin?: boolean;
}

/** Random seeds are unsigned 32-bit integers: anything outside would alias another seed silently. */
export const SEED_MAX = 2 ** 32 - 1;

/**
 * Ceilings for numeric flags by name, applied by every command (the command may set a lower one). Each is far
 * above any sensible use and far below what would run for ever or exhaust memory before a first result.
 */
export const FLAG_LIMITS: Readonly<Record<string, number>> = {
  seed: SEED_MAX,
  seq: 1 << 20, // bytes per row: activations grow with it, attention with its square
  batch: 1 << 16,
  "grad-acc": 1 << 12,
  steps: 1e9,
  "doc-bytes": 1 << 30,
  vocab: 1 << 20,
  shots: 1 << 10,
  bootstrap: 1e6,
  sample: 1 << 24,
  warmup: 1e9,
  keep: 1e6,
  "ckpt-every": 1e9,
  "val-every": 1e9,
  "log-every": 1e9,
  "stop-after": 1e9,
};

/** The integer/number flag specs most commands share. */
export function intFlag(min: number, max?: number): FlagSpec {
  return { kind: "string", number: { int: true, min, max } };
}

export type FlagValues = Map<string, string | string[] | true>;

/** The flags by name, plus the positional arguments in order (always empty unless asked for). */
export type ParsedFlags = FlagValues & { positionals: string[] };

export interface ParseOptions {
  /** Accept bare arguments as positionals instead of refusing them. */
  positionals?: boolean;
}

export function parseFlags(
  command: string,
  argv: readonly string[],
  spec: Record<string, FlagSpec>,
  opts: ParseOptions = {},
): ParsedFlags {
  const out: ParsedFlags = Object.assign(new Map() as FlagValues, { positionals: [] as string[] });
  const see = `(see '${command} --help')`;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h") {
      out.set("help", true);
      continue;
    }
    if (opts.positionals && arg === "--") {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("--")) {
      if (!opts.positionals) throw new UserError(`${command}: unexpected argument '${arg}' ${see}`);
      if (arg.length > 1 && arg.startsWith("-"))
        throw new UserError(`${command}: unknown option ${arg} ${see}`);
      out.positionals.push(arg);
      continue;
    }
    let name = arg.slice(2);
    let inline: string | undefined;
    const eq = name.indexOf("=");
    if (eq >= 0) {
      inline = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const s = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (!s) throw new UserError(`${command}: unknown option --${name} ${see}`);
    if (s.kind === "bool") {
      if (inline !== undefined) throw new UserError(`${command}: --${name} takes no value`);
      out.set(name, true);
      continue;
    }
    const values: string[] = [];
    if (inline !== undefined) values.push(inline);
    while (i + 1 < argv.length && !argv[i + 1].startsWith("--") && (s.kind === "list" || values.length === 0))
      values.push(argv[++i]);
    if (values.length === 0) throw new UserError(`${command}: --${name} needs a value ${see}`);
    if (s.number) for (const x of values) checkNumber(name, x, s.number);
    if (s.kind === "string") {
      if (out.has(name)) throw new UserError(`${command}: --${name} given twice`);
      out.set(name, values[0]);
    } else {
      const prev = out.get(name);
      out.set(name, [...(Array.isArray(prev) ? prev : []), ...values]);
    }
  }
  return out;
}

/** When --help/-h was given, print `text` (with a final newline) and return true: `if (showHelp(...)) return 0`. */
export function showHelp(v: FlagValues, text: string, out: { write(chunk: string): unknown }): boolean {
  if (!v.has("help")) return false;
  out.write(text.endsWith("\n") ? text : text + "\n");
  return true;
}

export function str(v: FlagValues, name: string): string | undefined {
  const x = v.get(name);
  return typeof x === "string" ? x : undefined;
}

export function list(v: FlagValues, name: string): string[] | undefined {
  const x = v.get(name);
  return Array.isArray(x) ? x : undefined;
}

/** A numeric flag, validated: `int` for integers, with bounds (a FLAG_LIMITS ceiling applies by default). */
export function num(v: FlagValues, name: string, o: NumberRange = {}): number | undefined {
  const s = str(v, name);
  if (s === undefined) return undefined;
  return checkNumber(name, s, o);
}

/** `s` as a number within `o` (and the FLAG_LIMITS ceiling of `name`), or a one-line UserError. */
export function checkNumber(name: string, s: string, o: NumberRange): number {
  const x = Number(s);
  const min = o.min ?? -Infinity;
  const max = Math.min(o.max ?? Infinity, Object.hasOwn(FLAG_LIMITS, name) ? FLAG_LIMITS[name] : Infinity);
  const ok =
    s.trim() !== "" &&
    Number.isFinite(x) &&
    (!o.int || Number.isInteger(x)) &&
    (o.exclusiveMin ? x > min : x >= min) &&
    x <= max;
  if (!ok) {
    const bounds = [
      Number.isFinite(min) ? `${o.exclusiveMin ? ">" : ">="} ${min}` : "",
      Number.isFinite(max) ? `<= ${max}` : "",
    ].filter((b) => b !== "");
    throw new UserError(
      `--${name} must be ${o.int ? "an integer" : "a number"}${bounds.length ? " " + bounds.join(" and ") : ""}, got '${printable(s)}'`,
    );
  }
  return x;
}

/** A user's value inside an error line: control characters escaped, at most 80 characters. */
export function printable(s: string): string {
  const t = s.length > 80 ? s.slice(0, 80) + "..." : s;
  return JSON.stringify(t).slice(1, -1);
}

/** Durations: plain seconds, or with a unit: 90s, 5m, 1.5h. */
export function duration(v: FlagValues, name: string): number | undefined {
  const s = str(v, name);
  if (s === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(s.trim());
  if (!m) throw new UserError(`--${name} must be a duration such as 300, 90s, 5m or 1.5h; got '${s}'`);
  const x = Number(m[1]) * (m[2] === "h" ? 3600 : m[2] === "m" ? 60 : 1);
  if (!(x > 0)) throw new UserError(`--${name} must be positive`);
  return x;
}
