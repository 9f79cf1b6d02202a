// A small flag parser for the training commands. node:util's parseArgs wants `--data a --data b`; these
// commands also take `--data a b c` (a list runs until the next flag), which is what shells produce from globs.

import { UserError } from "./errors.js";

export interface FlagSpec {
  /** "string" takes one value, "list" one or more, "bool" none. */
  kind: "string" | "list" | "bool";
}

export type FlagValues = Map<string, string | string[] | true>;

export function parseFlags(
  command: string,
  argv: readonly string[],
  spec: Record<string, FlagSpec>,
): FlagValues {
  const out: FlagValues = new Map();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h") {
      out.set("help", true);
      continue;
    }
    if (!arg.startsWith("--"))
      throw new UserError(`${command}: unexpected argument '${arg}' (see '${command} --help')`);
    let name = arg.slice(2);
    let inline: string | undefined;
    const eq = name.indexOf("=");
    if (eq >= 0) {
      inline = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const s = spec[name];
    if (!s) throw new UserError(`${command}: unknown option --${name} (see '${command} --help')`);
    if (s.kind === "bool") {
      if (inline !== undefined) throw new UserError(`${command}: --${name} takes no value`);
      out.set(name, true);
      continue;
    }
    const values: string[] = [];
    if (inline !== undefined) values.push(inline);
    while (i + 1 < argv.length && !argv[i + 1].startsWith("--") && (s.kind === "list" || values.length === 0))
      values.push(argv[++i]);
    if (values.length === 0) throw new UserError(`${command}: --${name} needs a value`);
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

export function str(v: FlagValues, name: string): string | undefined {
  const x = v.get(name);
  return typeof x === "string" ? x : undefined;
}

export function list(v: FlagValues, name: string): string[] | undefined {
  const x = v.get(name);
  return Array.isArray(x) ? x : undefined;
}

/** A numeric flag, validated: `int` for integers, with a lower bound. */
export function num(
  v: FlagValues,
  name: string,
  o: { int?: boolean; min?: number; exclusiveMin?: boolean } = {},
): number | undefined {
  const s = str(v, name);
  if (s === undefined) return undefined;
  const x = Number(s);
  const min = o.min ?? -Infinity;
  const ok =
    s.trim() !== "" &&
    Number.isFinite(x) &&
    (!o.int || Number.isInteger(x)) &&
    (o.exclusiveMin ? x > min : x >= min);
  if (!ok)
    throw new UserError(
      `--${name} must be ${o.int ? "an integer" : "a number"}${Number.isFinite(min) ? ` ${o.exclusiveMin ? ">" : ">="} ${min}` : ""}, got '${s}'`,
    );
  return x;
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
