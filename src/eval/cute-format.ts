// CUTE task files and prompts (Edman et al. 2024, github.com/Leukas/CUTE).
//
// A task file is TSV with a header row, split on tabs only (no quoting: CUTE's inputs contain quotes), in one
// of two layouts:
// - CUTE: columns `input1[, input2[, input3]], label`, as in CUTE's data/<task>.tsv. The question is the
//   task's CUTE question with the inputs filled in (`Spell out the word "{1}".`), or a --template.
// - prompt/answer: columns `prompt, answer`; the prompt is the question as written.
//
// Prompt (CUTE's few-shot prompt without the chat template, with the examples taken from the file):
//
//   <CUTE instruction>, based on the following examples:      (CUTE tasks only)
//   <blank line>
//   1. <question> Answer: "<label>"
//   ...
//   <blank line>
//   Question: <question> Answer: "
//
// The model's answer is what it generates up to the closing quote (or a newline), trimmed.

import { UserError } from "../util/errors.js";
import { splitLines } from "./files.js";

export interface CuteRow {
  /** Line in the file (1-based). */
  line: number;
  /** The inputs (CUTE layout) or the single prompt (prompt/answer layout). */
  inputs: string[];
  label: string;
}

export interface CuteTable {
  layout: "cute" | "prompt";
  rows: CuteRow[];
}

interface CuteTemplate {
  instruction: string;
  question: string;
}

/** The instruction and question of each CUTE task ({1}, {2}, {3}: input1..input3). */
export const CUTE_TASKS: Readonly<Record<string, CuteTemplate>> = {
  spell: {
    instruction: "Spell out the word, putting spaces between each letter",
    question: 'Spell out the word "{1}".',
  },
  spell_inverse: {
    instruction: "Write the word that is spelled out, without any spaces",
    question: 'Write the word "{1}".',
  },
  contains_char: {
    instruction: "Answer whether the specified letter is in the given word",
    question: 'Is there a "{1}" in "{2}"?',
  },
  contains_word: {
    instruction: "Answer whether the specified word is in the given sentence (case insensitive)",
    question: 'Is there a "{1}" in "{2}"?',
  },
  orth: {
    instruction: "Select the word that is closer in Levenshtein distance to the given word",
    question: 'Closer in Levenshtein distance to "{1}": "{2}", "{3}".',
  },
  sem: {
    instruction: "Select the word that is more semantically related to the given word",
    question: 'More semantically related to "{1}": "{2}", "{3}".',
  },
  ins_char: {
    instruction:
      "Add the specified letter after every instance of the second specified letter in a given word",
    question: 'Add an "{1}" after every "{2}" in "{3}".',
  },
  ins_word: {
    instruction:
      "Add the specified word after every instance of the second specified word in a given sentence",
    question: 'Add "{1}" after every "{2}" in "{3}".',
  },
  del_char: {
    instruction: "Delete every instance of a specified letter in a given word",
    question: 'Delete every instance of "{1}" in "{2}".',
  },
  del_word: {
    instruction: "Delete every instance of a specified word in a given sentence",
    question: 'Delete every instance of "{1}" in "{2}".',
  },
  swap_char: {
    instruction: "Swap the positions of two specified letters in a given word",
    question: 'Swap "{1}" and "{2}" in "{3}".',
  },
  swap_word: {
    instruction: "Swap the positions of two specified words in a given sentence",
    question: 'Swap "{1}" and "{2}" in "{3}".',
  },
  sub_char: {
    instruction: "Substitute the first specified letter with the second specified letter in a given word",
    question: 'Substitute "{1}" with "{2}" in "{3}".',
  },
  sub_word: {
    instruction: "Substitute the first specified word with the second specified word in a given sentence",
    question: 'Substitute "{1}" with "{2}" in "{3}".',
  },
};

/** CUTE compares these case-insensitively (its WORD_TASKS). */
export const CUTE_CASE_INSENSITIVE = new Set([
  "ins_word",
  "del_word",
  "sub_word",
  "swap_word",
  "contains_word",
]);

/**
 * The CUTE task a file is named after, or null: the longest task name that the file name contains as a whole
 * part, between non-letters (`data/spell_rand.tsv` and `cute_spell_test.tsv` -> spell, `spell_inverse.tsv` ->
 * spell_inverse, `spelling.tsv` -> null).
 */
export function cuteTaskFromPath(path: string): string | null {
  const base = (path.split(/[\\/]/).pop() ?? "").toLowerCase();
  let best: string | null = null;
  for (const task of Object.keys(CUTE_TASKS)) {
    const at = new RegExp(`(?:^|[^a-z])${task}(?:[^a-z]|$)`).test(base);
    if (at && (best === null || task.length > best.length)) best = task;
  }
  return best;
}

export function parseCuteTsv(text: string, source: string): CuteTable {
  const lines = splitLines(text);
  if (lines.length === 0) throw new UserError(`${source}: empty file (expected a header row)`);
  const header = lines[0].split("\t").map((h) => h.trim());
  let layout: CuteTable["layout"];
  let labelCol: number;
  let inputCols: number[];
  if (header.length === 2 && header[0] === "prompt" && header[1] === "answer") {
    layout = "prompt";
    inputCols = [0];
    labelCol = 1;
  } else {
    layout = "cute";
    labelCol = header.indexOf("label");
    inputCols = [];
    for (let k = 1; header.includes(`input${k}`); k++) inputCols.push(header.indexOf(`input${k}`));
    if (labelCol < 0 || inputCols.length === 0)
      throw new UserError(
        `${source}: header "${lines[0]}" is neither CUTE's (input1[, input2, input3], label) nor prompt<TAB>answer`,
      );
  }
  const rows: CuteRow[] = [];
  for (let i = 1; i < lines.length; i++) {
    if (lines[i].trim() === "") continue;
    const cells = lines[i].split("\t");
    if (cells.length !== header.length)
      throw new UserError(
        `${source}:${i + 1}: ${cells.length} tab-separated fields, the header has ${header.length}`,
      );
    rows.push({ line: i + 1, inputs: inputCols.map((c) => cells[c]), label: cells[labelCol] });
  }
  if (rows.length === 0) throw new UserError(`${source}: no rows after the header`);
  return { layout, rows };
}

/** How a row becomes a question: a template with {1}, {2}, ... for the inputs, or the prompt itself. */
export interface CuteQuestion {
  /** null for the prompt/answer layout. */
  template: string | null;
  /** The line that opens the prompt; null for none. */
  instruction: string | null;
}

/** Check that a template only names inputs a row has; returns it for chaining. */
export function checkTemplate(template: string, nInputs: number, source: string): string {
  for (const m of template.matchAll(/\{(\d+)\}/g)) {
    const k = Number(m[1]);
    if (k < 1 || k > nInputs)
      throw new UserError(`${source}: the template uses {${k}} but rows have ${nInputs} input column(s)`);
  }
  return template;
}

export function question(row: CuteRow, q: CuteQuestion): string {
  if (q.template === null) return row.inputs[0];
  return q.template.replace(/\{(\d+)\}/g, (_, k: string) => row.inputs[Number(k) - 1]);
}

export function cutePrompt(shots: readonly CuteRow[], row: CuteRow, q: CuteQuestion): string {
  const parts: string[] = [];
  if (q.instruction !== null) parts.push(`${q.instruction}, based on the following examples:\n\n`);
  shots.forEach((s, i) => parts.push(`${i + 1}. ${question(s, q)} Answer: "${s.label}"\n`));
  if (shots.length > 0) parts.push("\n");
  parts.push(`Question: ${question(row, q)} Answer: "`);
  return parts.join("");
}
