// Multiple-choice items from JSONL, in the field layouts of the common datasets, turned into the context and
// continuations that lm-eval-harness scores (its task YAMLs for hellaswag, arc_easy/arc_challenge and piqa):
//
// - HellaSwag `{ctx_a, ctx_b, activity_label, endings, label}` (or `ctx` instead of ctx_a/ctx_b): context
//   `preprocess(activity_label + ": " + ctx_a + " " + capitalize(ctx_b))`, choices `preprocess(ending)`,
//   where preprocess strips, turns " [title]" into ". ", drops other [bracketed] WikiHow artifacts and
//   collapses double spaces.
// - ARC `{question, choices: {text, label}, answerKey}`: context "Question: <question>\nAnswer:", gold the
//   position of answerKey among the labels (letters or digits).
// - PIQA `{goal, sol1, sol2, label}`: context "Question: <goal>\nAnswer:".
// - generic `{context, choices, gold}`: the context verbatim.
//
// The scored continuation is " " + choice (lm-eval's default target_delimiter), except in the generic layout
// when the context is empty or already ends in whitespace, or the choice starts with whitespace: there the
// choice is appended as it is, so that data written with its own spacing is not given a second space.
// Length normalisation counts the choice without the delimiter, as lm-eval's acc_norm does.

import { UserError } from "../util/errors.js";
import { splitLines } from "./files.js";
import { pyCapitalize, pyIsSpace, pyStrip } from "./pystr.js";

export type McqLayout = "hellaswag" | "arc" | "piqa" | "generic";

export interface McqItem {
  /** Line of the item in its file (1-based). */
  line: number;
  layout: McqLayout;
  context: string;
  /** The answers as the dataset gives them (after the layout's preprocessing); lengths are taken of these. */
  choices: string[];
  /** What is scored after the context, one per choice. */
  continuations: string[];
  gold: number;
}

type Json = Record<string, unknown>;

function fail(where: string, msg: string): never {
  throw new UserError(`${where}: ${msg}`);
}

function str(o: Json, key: string, where: string, layout: string): string {
  const v = o[key];
  if (typeof v !== "string") fail(where, `${layout} item needs a string "${key}"`);
  return v;
}

function strList(o: Json, key: string, where: string, layout: string): string[] {
  const v = o[key];
  if (!Array.isArray(v) || v.length < 2 || v.some((x) => typeof x !== "string"))
    fail(where, `${layout} item needs "${key}": a list of at least two strings`);
  return v as string[];
}

/** An answer index given as a number or a numeric string (HellaSwag stores "3"). */
function index(v: unknown, n: number, where: string, key: string): number {
  const x = typeof v === "string" && /^\s*\d+\s*$/.test(v) ? Number(v) : v;
  if (typeof x !== "number" || !Number.isInteger(x))
    fail(where, `"${key}" must be a choice index, got ${JSON.stringify(v) ?? "nothing"}`);
  if (x < 0 || x >= n) fail(where, `"${key}" is ${x} but there are ${n} choices`);
  return x;
}

/** lm-eval-harness's HellaSwag preprocess. */
export function hellaswagPreprocess(text: string): string {
  return pyStrip(text)
    .replace(/ \[title\]/g, ". ")
    .replace(/\[.*?\]/g, "")
    .replace(/ {2}/g, " ");
}

function withDelimiter(context: string, choice: string, layout: McqLayout): string {
  if (layout !== "generic") return " " + choice;
  const last = Array.from(context.slice(-2)).pop();
  const first = Array.from(choice.slice(0, 2))[0];
  if (last === undefined || pyIsSpace(last) || (first !== undefined && pyIsSpace(first))) return choice;
  return " " + choice;
}

/** Which layout an object is in, by its fields; null when none fits. */
export function detectLayout(o: Json): McqLayout | null {
  if ("endings" in o) return "hellaswag";
  const c = o.choices;
  if ("answerKey" in o || ("question" in o && c !== null && typeof c === "object" && !Array.isArray(c)))
    return "arc";
  if ("goal" in o && "sol1" in o) return "piqa";
  if ("context" in o && "choices" in o) return "generic";
  return null;
}

export function parseMcqObject(value: unknown, line: number, where: string): McqItem {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    fail(where, "expected a JSON object");
  const o = value as Json;
  const layout = detectLayout(o);
  let context: string;
  let choices: string[];
  let gold: number;
  switch (layout) {
    case "hellaswag": {
      let ctx: string;
      if (typeof o.ctx_a === "string" && typeof o.ctx_b === "string")
        ctx = o.ctx_a + " " + pyCapitalize(o.ctx_b);
      else ctx = str(o, "ctx", where, "HellaSwag");
      const label = typeof o.activity_label === "string" ? o.activity_label + ": " : "";
      context = hellaswagPreprocess(label + ctx);
      choices = strList(o, "endings", where, "HellaSwag").map(hellaswagPreprocess);
      if (o.label === "" || o.label === undefined || o.label === null)
        fail(where, `HellaSwag item has no "label" (an unlabelled test split cannot be scored)`);
      gold = index(o.label, choices.length, where, "label");
      break;
    }
    case "arc": {
      const q = str(o, "question", where, "ARC");
      const c = o.choices as Json | undefined;
      if (c === null || typeof c !== "object" || Array.isArray(c))
        fail(where, `ARC item needs "choices": {"text": [...], "label": [...]}`);
      choices = strList(c, "text", where, "ARC choices");
      const labels = strList(c, "label", where, "ARC choices");
      if (labels.length !== choices.length)
        fail(where, `ARC choices have ${choices.length} texts but ${labels.length} labels`);
      const key = o.answerKey;
      if (typeof key !== "string" || !labels.includes(key))
        fail(
          where,
          `ARC "answerKey" ${JSON.stringify(key) ?? "is missing"}: not one of ${labels.join(", ")}`,
        );
      context = `Question: ${q}\nAnswer:`;
      gold = labels.indexOf(key);
      break;
    }
    case "piqa": {
      context = `Question: ${str(o, "goal", where, "PIQA")}\nAnswer:`;
      choices = [str(o, "sol1", where, "PIQA"), str(o, "sol2", where, "PIQA")];
      gold = index(o.label, 2, where, "label");
      break;
    }
    case "generic": {
      context = str(o, "context", where, "generic");
      choices = strList(o, "choices", where, "generic");
      gold = index(o.gold, choices.length, where, "gold");
      break;
    }
    default:
      fail(
        where,
        `unrecognised item with fields ${Object.keys(o).join(", ") || "(none)"}: expected HellaSwag ` +
          `(ctx, endings, label), ARC (question, choices, answerKey), PIQA (goal, sol1, sol2, label) or ` +
          `generic (context, choices, gold)`,
      );
  }
  choices.forEach((c, i) => {
    if (c.length === 0) fail(where, `choice ${i} is empty`);
  });
  const continuations = choices.map((c) => withDelimiter(context, c, layout));
  return { line, layout, context, choices, continuations, gold };
}

/** Every non-blank line of a JSONL file as an item. */
export function parseMcqJsonl(text: string, source: string): McqItem[] {
  const items: McqItem[] = [];
  splitLines(text).forEach((raw, i) => {
    if (raw.trim() === "") return;
    const where = `${source}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      fail(where, `not valid JSON (${(e as Error).message})`);
    }
    items.push(parseMcqObject(value, i + 1, where));
  });
  if (items.length === 0) throw new UserError(`${source}: no items`);
  return items;
}
