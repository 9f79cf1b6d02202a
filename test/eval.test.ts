// Downstream evaluation: task file formats, multiple-choice scoring against independent forwards, sacreBLEU
// BLEU/chrF against published and hand-derived values, CUTE exact match, bits per byte per file, and the
// one-line UserErrors of `aunet eval --task`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UserError } from "../src/util/errors.js";
import { evalTaskCommand } from "../src/cli/eval-tasks.js";
import { loadModel } from "../src/cli/load-model.js";
import { BOS, encodeText } from "../src/data/bytes.js";
import { IncrementalSplitter } from "../src/data/incremental.js";
import { documentLevelMask, prefillLevels, type SplitStrategy } from "../src/data/splitter.js";
import { DataStats, discoverSources } from "../src/data/sources.js";
import { noGrad } from "../src/engine/tensor.js";
import { Generator } from "../src/generate/generator.js";
import { scoreText } from "../src/generate/score.js";
import type { AUNet } from "../src/model/aunet.js";
import { bootstrapMeans, quantile } from "../src/eval/bootstrap.js";
import { bitsPerByteByFile } from "../src/eval/bpb.js";
import { computeBleu, corpusBleu, tokenize13a } from "../src/eval/bleu.js";
import { corpusChrf } from "../src/eval/chrf.js";
import { cuteMatches, evaluateCute } from "../src/eval/cute.js";
import { CUTE_TASKS, cutePrompt, cuteTaskFromPath, parseCuteTsv } from "../src/eval/cute-format.js";
import { parseMcqJsonl, type McqItem } from "../src/eval/mcq-format.js";
import { evaluateMcq } from "../src/eval/mcq.js";
import {
  DEFAULT_TRANSLATION_TEMPLATE,
  evaluateTranslation,
  translationPrompt,
} from "../src/eval/translate.js";
import { FIXTURES } from "./helpers.js";

const DATA = join(process.cwd(), "test", "data", "eval");
const CKPT = join(FIXTURES, "2stage_word_english");
const CKPT3 = join(FIXTURES, "3stage_word_2words_mixed");
const skip = !existsSync(join(CKPT, "model.safetensors")) || !existsSync(join(CKPT3, "model.safetensors"));

const read = (p: string) => readFileSync(join(DATA, p), "utf8");
const mcqFile = (name: string) => parseMcqJsonl(read(`mcq/${name}.jsonl`), name);

class Collect {
  text = "";
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}

async function runCli(args: string[]): Promise<string> {
  const out = new Collect();
  assert.equal(await evalTaskCommand(args, out), 0);
  return out.text;
}

const models = new Map<string, ReturnType<typeof loadModel>>();
function model(dir: string): ReturnType<typeof loadModel> {
  let m = models.get(dir);
  if (!m) models.set(dir, (m = loadModel(dir)));
  return m;
}

// ---------------------------------------------------------------------------------------------------------
// Formats

test("HellaSwag items follow lm-eval-harness preprocessing and its ' ' + ending continuation", () => {
  const items = mcqFile("hellaswag");
  assert.equal(items.length, 3);
  const [a, b, c] = items;
  assert.equal(a.layout, "hellaswag");
  // ctx_a + " " + ctx_b.capitalize(), behind the activity label.
  assert.equal(
    a.context,
    "Removing ice from car: Then, the man writes over the snow covering the window of a car, and a woman " +
      "wearing winter clothes smiles. Then",
  );
  assert.equal(a.gold, 3);
  assert.equal(a.continuations[3], " , the man continues removing the snow on his car.");
  // " [title]" becomes ". ", other brackets vanish, double spaces collapse; the strip comes first, so a
  // leading "[step] " leaves a leading space (as in lm-eval).
  assert.equal(
    b.context,
    "Home and Garden: How to grow tomatoes. Pick a sunny spot. You want at least six hours of sun",
  );
  assert.deepEqual(b.choices, [
    " Water the seedlings every day.",
    "a day, so check the spot over a full day.",
    "and keep them in a cold cellar.",
    " Bury the. seeds deeply.",
  ]);
  assert.equal(b.gold, 1);
  assert.equal(c.context, "Baking: A woman pours flour into a bowl. She");
  assert.equal(c.choices.length, 3);
});

test("ARC, PIQA and generic layouts: contexts, gold indices and delimiters", () => {
  const arc = mcqFile("arc");
  assert.equal(arc[0].layout, "arc");
  assert.ok(arc[0].context.startsWith("Question: An astronomer observes"));
  assert.ok(arc[0].context.endsWith("?\nAnswer:"));
  assert.equal(arc[0].gold, 2);
  assert.equal(arc[1].gold, 3); // numeric answer keys index the labels too
  assert.equal(arc[1].continuations[3], " an iron nail");

  const piqa = mcqFile("piqa");
  assert.equal(piqa[1].context, "Question: To make a hard boiled egg easier to peel,\nAnswer:");
  assert.deepEqual(piqa[1].continuations, [
    " cool it in ice water right after boiling.",
    " warm it in the microwave right after boiling.",
  ]);

  const gen = mcqFile("generic");
  assert.deepEqual(
    gen.map((g) => g.line),
    [1, 2, 4],
  ); // blank lines are skipped, line numbers kept
  assert.deepEqual(gen[0].continuations, [" Paris", " Rome", " Berlin"]);
  assert.deepEqual(gen[1].continuations, ["vier", "fünf"]); // the context already ends in a space
  assert.equal(gen[1].gold, 0);
  assert.deepEqual(gen[2].continuations, [" tea", " eat", " ate"]); // the choices bring their own space
});

test("CUTE TSV layouts, task names and the few-shot prompt", () => {
  const spell = parseCuteTsv(read("cute/spell.tsv"), "spell.tsv");
  assert.equal(spell.layout, "cute");
  assert.equal(spell.rows.length, 8);
  assert.deepEqual(spell.rows[0], { line: 2, inputs: ["the"], label: "t h e" });
  assert.equal(cuteTaskFromPath("data/spell_rand.tsv"), "spell");
  assert.equal(cuteTaskFromPath("x/reverse.tsv"), null);

  const ins = parseCuteTsv(read("cute/ins_char.tsv"), "ins_char.tsv");
  assert.deepEqual(ins.rows[0].inputs, ["m", "h", "the"]);

  const rev = parseCuteTsv(read("cute/reverse.tsv"), "reverse.tsv");
  assert.equal(rev.layout, "prompt");
  assert.deepEqual(rev.rows[1], { line: 3, inputs: ['Reverse the word "dog".'], label: "god" });

  const t = CUTE_TASKS.spell;
  const prompt = cutePrompt(spell.rows.slice(0, 2), spell.rows[4], {
    template: t.question,
    instruction: t.instruction,
  });
  assert.equal(
    prompt,
    "Spell out the word, putting spaces between each letter, based on the following examples:\n\n" +
      '1. Spell out the word "the". Answer: "t h e"\n' +
      '2. Spell out the word "and". Answer: "a n d"\n\n' +
      'Question: Spell out the word "this". Answer: "',
  );
  const ti = CUTE_TASKS.ins_char;
  assert.equal(
    cutePrompt([], ins.rows[2], { template: ti.question, instruction: null }),
    'Question: Add an "b" after every "f" in "for". Answer: "',
  );
  assert.equal(
    cutePrompt(rev.rows.slice(0, 1), rev.rows[2], { template: null, instruction: null }),
    '1. Reverse the word "cat". Answer: "tac"\n\nQuestion: Reverse the word "emit". Answer: "',
  );
});

test("translation prompt: k examples, then the source with the target left open", () => {
  const ex = [{ line: 1, src: "Der Hund bellt.", ref: "The dog barks." }];
  const p = translationPrompt(ex, "Ich trinke {tgt}.", {
    template: DEFAULT_TRANSLATION_TEMPLATE,
    srcLang: "German",
    tgtLang: "English",
  });
  assert.equal(p, "German: Der Hund bellt.\nEnglish: The dog barks.\n\nGerman: Ich trinke {tgt}.\nEnglish:");
  assert.equal(translationPrompt([], "a", { template: "{src} = {tgt}", srcLang: "", tgtLang: "" }), "a =");
});

// ---------------------------------------------------------------------------------------------------------
// sacreBLEU-compatible metrics

test("13a tokenisation splits punctuation and symbols but keeps numbers whole", () => {
  // The apostrophe (0x27) lies outside mteval's symbol ranges, so contractions stay whole.
  assert.equal(tokenize13a("It wasn't surprising."), "It wasn't surprising .");
  assert.equal(tokenize13a("3.14, 1,000 and 5-4 (a/b) &amp; x"), "3.14 , 1,000 and 5 - 4 ( a / b ) & x");
});

test("BLEU matches sacreBLEU's published test values and a hand-derived score", () => {
  const close = (a: number, b: number, eps = 1e-6) => assert.ok(Math.abs(a - b) < eps, `${a} vs ${b}`);
  // sacreBLEU test/test_bleu.py, test_corpus_bleu_cases: two reference streams, default BLEU().
  const refs = [
    ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
    ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
  ];
  const hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."];
  close(corpusBleu(hyps, refs).score, 48.530827);
  close(corpusBleu(["", "", ""], refs).score, 0);
  close(corpusBleu(hyps, refs, { tokenize: "none" }).score, 49.1919566);
  close(corpusBleu(hyps, refs, { smooth: "none" }).score, 48.530827);
  // test_scoring: compute_bleu from statistics, no smoothing.
  close(computeBleu([9, 7, 5, 3], [10, 8, 6, 4], 11, 11, { smooth: "none" }).score / 100, 0.8375922397, 1e-8);
  // raw_corpus_bleu = floor smoothing 0.01, no tokenisation, effective order.
  const raw = (h: string, r: string) =>
    corpusBleu([h], [[r]], { smooth: "floor", smoothValue: 0.01, tokenize: "none", effectiveOrder: true })
      .score / 100;
  close(raw("this is a fest", "this is a test"), 0.223606797749979, 1e-8);
  close(raw("test", "a test"), 0.3678794411714425, 1e-8);
  close(raw("a little test", "a test"), 0.03218297948685433, 1e-8);
  assert.deepEqual(
    corpusBleu(["am I am a character sequence"], [["I am a symbol string sequence a a"]], {
      tokenize: "none",
    }).counts,
    [4, 2, 1, 0],
  );
  // By hand, default settings: "this is a fest" vs "this is a test" matches 3/4 unigrams, 2/3 bigrams,
  // 1/2 trigrams and 0/1 4-grams; exp smoothing turns the first zero into 1/(2*1). Equal lengths: BP = 1.
  // BLEU = (75 * 66.67 * 50 * 50)^(1/4) = 12.5e6^(1/4) = 59.4604.
  const b = corpusBleu(["this is a fest"], [["this is a test"]]);
  close(b.score, Math.pow(75 * (200 / 3) * 50 * 50, 1 / 4), 1e-9);
  assert.deepEqual(
    b.precisions.map((p) => p.toFixed(2)),
    ["75.00", "66.67", "50.00", "50.00"],
  );
  // A short hypothesis pays the brevity penalty exp(1 - 4/3).
  close(corpusBleu(["this is a"], [["this is a test"]]).bp, Math.exp(1 - 4 / 3), 1e-12);
});

test("chrF matches sacreBLEU's published test values and a hand-derived chrF2", () => {
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-4, `${a} vs ${b}`);
  // sacreBLEU test/test_chrf.py, test_sentence_level_chrf: chrF2 (char order 6), epsilon smoothing.
  const czech: [string, string, number][] = [
    [
      "Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.",
      "Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře.",
      39.14078509,
    ],
    [
      "Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři.",
      "A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři.",
      31.22557079,
    ],
    [
      "Lapali po dechu, jejich životy skončily dřív, než skutečně začaly.",
      "Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, připomněli.",
      57.15704367,
    ],
  ];
  for (const [h, r, v] of czech) close(corpusChrf([h], [[r]], { epsSmoothing: true }).score, v);
  // test_cases (beta 3, epsilon smoothing) and test_cases_effective_order (beta 3, sacreBLEU's default mode).
  close(corpusChrf(["a b c"], [["abc"]], { beta: 3, epsSmoothing: true }).score, 50.0);
  close(
    corpusChrf(
      [" Die    Beziehung zwischen  Obama und Netanjahu ist nicht gerade  freundlich. "],
      [["Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."]],
      { beta: 3, epsSmoothing: true },
    ).score,
    64.1302698,
  );
  close(corpusChrf(["a", "b"], [["a", "c"]], { beta: 3 }).score, 50.0);
  close(corpusChrf([""], [["reference"]], { beta: 3 }).score, 0);
  // test_cases_keep_whitespace.
  close(
    corpusChrf(
      ["Die Beziehung zwischen Obama und Netanjahu ist nicht gerade freundlich."],
      [["Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."]],
      { beta: 3, whitespace: true },
    ).score,
    67.3481606,
  );
  // By hand, default chrF2: "aa" vs "ab". Unigrams: hyp {a:2}, ref {a:1, b:1}, 1 match: P = R = 1/2.
  // Bigrams: {aa} vs {ab}, no match: P = R = 0. Orders 3..6 have no n-grams and do not count. Averages over
  // the 2 effective orders: P = R = 1/4, F2 = 5PR / (4P + R) = 1/4 -> 25.
  close(corpusChrf(["aa"], [["ab"]]).score, 25);
  // "ab c" vs "abc": whitespace is removed, so every n-gram matches: 100.
  close(corpusChrf(["ab c"], [["abc"]]).score, 100);
});

test("bootstrap intervals are seeded percentiles of resampled means", () => {
  assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
  const col = Float64Array.from({ length: 40 }, (_, i) => (i % 4 === 0 ? 1 : 0));
  const [a] = bootstrapMeans([col], { samples: 500, seed: 3 });
  const [b] = bootstrapMeans([col], { samples: 500, seed: 3 });
  assert.deepEqual(a, b);
  assert.equal(a.value, 0.25);
  assert.ok(a.low < 0.25 && a.high > 0.25 && a.low >= 0 && a.high <= 1);
  const [none] = bootstrapMeans([col], { samples: 0 });
  assert.ok(Number.isNaN(none.low));
});

// ---------------------------------------------------------------------------------------------------------
// Scoring with the tiny fixture models

/** The levels generation gives [BOS] + context + continuation, built here without generate/levels.ts. */
function generationLevels(
  tokens: Int32Array,
  promptLen: number,
  m: AUNet,
  strategy: SplitStrategy,
): Int32Array {
  const nL = m.nLevels;
  const levels = new Int32Array(tokens.length);
  const pre = prefillLevels(tokens.subarray(0, promptLen), strategy);
  const inc = new IncrementalSplitter(strategy);
  for (let i = 0; i < promptLen; i++) {
    inc.push(tokens[i]);
    levels[i] = i === 0 ? nL : Math.min(pre[i], nL);
  }
  for (let i = promptLen; i < tokens.length; i++) levels[i] = Math.min(inc.push(tokens[i]), nL);
  return levels;
}

/** log p(continuation | context) from one unbatched, unpadded forward, log-softmax in float64. */
function forwardLogLikelihood(dir: string, context: string, continuation: string): number {
  const { model: m, config } = model(dir);
  const ctx = encodeText(context);
  const cont = encodeText(continuation);
  const all = new Int32Array([BOS, ...ctx, ...cont]);
  const input = all.subarray(0, all.length - 1);
  const levels = generationLevels(input, 1 + ctx.length, m, config.strategy);
  const logits = noGrad(() => m.forward(input, levels, 1, input.length, { caps: false }).logits.toFloat32());
  const V = 258;
  let ll = 0;
  for (let j = 0; j < cont.length; j++) {
    const row = logits.subarray((ctx.length + j) * V, (ctx.length + j + 1) * V);
    let mx = -Infinity;
    for (const x of row) mx = Math.max(mx, x);
    let s = 0;
    for (const x of row) s += Math.exp(x - mx);
    ll += row[cont[j]] - mx - Math.log(s);
  }
  return ll;
}

const allMcq = (): McqItem[] => ["hellaswag", "arc", "piqa", "generic"].flatMap(mcqFile);

test(
  "multiple choice: scores equal an independent forward and the incremental path; accuracies follow",
  { skip },
  () => {
    for (const dir of [CKPT, CKPT3]) {
      const { model: m, config } = model(dir);
      const items = allMcq();
      // batch 5 mixes choices of different items and lengths in one forward (sorted, padded).
      const r = evaluateMcq(m, config.strategy, items, { batch: 5, bootstrap: { samples: 200, seed: 1 } });
      assert.equal(r.items, items.length);
      const gen = new Generator(m, config.strategy);
      items.forEach((item, i) => {
        const s = r.scores[i];
        assert.equal(s.logLikelihoods.length, item.choices.length);
        item.continuations.forEach((c, j) => {
          const inc = scoreText(gen, c, item.context).logLikelihood;
          assert.ok(
            Math.abs(s.logLikelihoods[j] - inc) < 1e-3,
            `${dir} item ${i} choice ${j}: ${s.logLikelihoods[j]} vs ${inc}`,
          );
        });
      });
      // One item checked in full against a plain forward of its own.
      const arc = items.find((it) => it.layout === "arc")!;
      const k = items.indexOf(arc);
      arc.continuations.forEach((c, j) => {
        const ref = forwardLogLikelihood(dir, arc.context, c);
        assert.ok(
          Math.abs(r.scores[k].logLikelihoods[j] - ref) < 1e-3,
          `${r.scores[k].logLikelihoods[j]} vs ${ref}`,
        );
      });
      // The accuracies are the fractions of items whose (normalised) argmax is gold.
      const argmax = (xs: number[]) => xs.indexOf(Math.max(...xs));
      let acc = 0,
        accChar = 0,
        accByte = 0;
      items.forEach((item, i) => {
        const ll = r.scores[i].logLikelihoods;
        acc += argmax(ll) === item.gold ? 1 : 0;
        accChar += argmax(ll.map((x, j) => x / Array.from(item.choices[j]).length)) === item.gold ? 1 : 0;
        accByte += argmax(ll.map((x, j) => x / encodeText(item.choices[j]).length)) === item.gold ? 1 : 0;
      });
      assert.equal(r.acc.value, acc / items.length);
      assert.equal(r.accNormChar.value, accChar / items.length);
      assert.equal(r.accNormByte.value, accByte / items.length);
      assert.ok(r.acc.low <= r.acc.value && r.acc.value <= r.acc.high);
      // Batching does not change the numbers.
      const one = evaluateMcq(m, config.strategy, items.slice(0, 3), { batch: 1, bootstrap: { samples: 0 } });
      one.scores.forEach((s, i) =>
        s.logLikelihoods.forEach((x, j) => assert.ok(Math.abs(x - r.scores[i].logLikelihoods[j]) < 1e-4)),
      );
    }
  },
);

test("aunet eval --task mcq --json reports every item's scores", { skip }, async () => {
  const out = await runCli([
    "--task",
    "mcq",
    "--ckpt",
    CKPT,
    "--file",
    join(DATA, "mcq/arc.jsonl"),
    "--json",
  ]);
  const r = JSON.parse(out) as {
    items: number;
    acc: { value: number };
    scores: { logLikelihoods: number[] }[];
  };
  assert.equal(r.items, 2);
  assert.equal(r.scores[0].logLikelihoods.length, 4);
  const text = await runCli([
    "--task",
    "mcq",
    "--ckpt",
    CKPT,
    "--file",
    join(DATA, "mcq/piqa.jsonl"),
    "--limit",
    "1",
  ]);
  assert.match(text, /1 items \(piqa 1\)/);
  assert.match(text, /^acc_norm_char +\d\.\d{4}/m);
});

test("CUTE: greedy answers up to the closing quote, exact match", { skip }, () => {
  assert.ok(cuteMatches("  t h e ", "t h e", false));
  assert.ok(!cuteMatches("T h e", "t h e", false));
  assert.ok(cuteMatches("The Cat", "the cat", true));

  const { model: m, config } = model(CKPT);
  const gen = new Generator(m, config.strategy);
  const rows = parseCuteTsv(read("cute/spell.tsv"), "spell.tsv").rows;
  const q = { template: CUTE_TASKS.spell.question, instruction: CUTE_TASKS.spell.instruction };
  const maxBytes = 24;
  const first = evaluateCute(gen, rows, q, { shots: 3, maxBytes, batch: 2 });
  assert.equal(first.items, rows.length - 3);
  // The outputs are the model's greedy continuations of the prompts, cut at the quote or newline.
  const direct = gen.generate(
    rows.slice(3).map((r) => cutePrompt(rows.slice(0, 3), r, q)),
    { temperature: 0, maxBytes, stop: ['"', "\n"] },
  );
  assert.deepEqual(
    first.results.map((r) => r.output),
    direct.map((d) => d.text),
  );
  // A row's own label is not in its prompt: relabel two rows with what the model answers, and exactly
  // those two count as correct.
  const relabelled = rows.map((r, i) =>
    i === 3 || i === 5 ? { ...r, label: first.results[i - 3].output.trim() } : r,
  );
  const second = evaluateCute(gen, relabelled, q, { shots: 3, maxBytes, batch: 3 });
  assert.deepEqual(
    second.results.map((r) => r.correct),
    second.results.map((_, i) => i === 0 || i === 2 || first.results[i].output.trim() === rows[i + 3].label),
  );
  assert.equal(second.accuracy.value, second.results.filter((r) => r.correct).length / second.items);
});

test("aunet eval --task cute reads the task from the file name", { skip }, async () => {
  const out = await runCli([
    "--task",
    "cute",
    "--ckpt",
    CKPT,
    "--file",
    join(DATA, "cute/spell.tsv"),
    "--json",
  ]);
  const r = JSON.parse(out) as { cuteTask: string; shots: number; items: number; results: unknown[] };
  assert.equal(r.cuteTask, "spell");
  assert.equal(r.shots, 4);
  assert.equal(r.items, 4);
  const text = await runCli([
    "--task",
    "cute",
    "--ckpt",
    CKPT,
    "--file",
    join(DATA, "cute/reverse.tsv"),
    "--shots",
    "2",
    "--max-bytes",
    "8",
  ]);
  assert.match(text, /2 items, 2-shot/);
});

test("translation: greedy lines, corpus BLEU and chrF over the hypotheses", { skip }, async () => {
  const { model: m, config } = model(CKPT);
  const gen = new Generator(m, config.strategy);
  const src = read("translate/de.txt").trim().split("\n");
  const ref = read("translate/en.txt").trim().split("\n");
  const pairs = src.map((s, i) => ({ line: i + 1, src: s, ref: ref[i] }));
  const prompt = { template: DEFAULT_TRANSLATION_TEMPLATE, srcLang: "German", tgtLang: "English" };
  const r = evaluateTranslation(gen, pairs.slice(0, 2), pairs.slice(2), prompt, { maxBytes: 12, batch: 3 });
  assert.equal(r.items, 4);
  const hyps = r.results.map((x) => x.hypothesis);
  assert.deepEqual(r.bleu, corpusBleu(hyps, [ref.slice(2)]));
  assert.deepEqual(r.chrf, corpusChrf(hyps, [ref.slice(2)]));
  for (const h of hyps) assert.ok(!h.includes("\n"));

  const out = await runCli([
    "--task",
    "translate",
    "--ckpt",
    CKPT,
    "--src",
    join(DATA, "translate/de.txt"),
    "--ref",
    join(DATA, "translate/en.txt"),
    "--shots",
    "2",
    "--src-lang",
    "German",
    "--tgt-lang",
    "English",
    "--max-bytes",
    "12",
    "--json",
  ]);
  const j = JSON.parse(out) as { items: number; bleu: { score: number }; results: { hypothesis: string }[] };
  assert.equal(j.items, 4);
  assert.deepEqual(
    j.results.map((x) => x.hypothesis),
    hyps,
  );
});

test(
  "bits per byte per file equals a direct forward over each file's packed document",
  { skip },
  async () => {
    const { model: m, config } = model(CKPT);
    const stats = new DataStats();
    const files = discoverSources([join(DATA, "bpb")], stats);
    const r = await bitsPerByteByFile(m, config.strategy, files, { seqLen: config.seqLen, batch: 2 });
    assert.deepEqual(
      r.files.map((f) => f.file.split("/").pop()),
      ["en.txt", "fr.txt"],
    );
    let nats = 0,
      bytes = 0;
    for (const [i, name] of ["en.txt", "fr.txt"].entries()) {
      // Each file is one document shorter than seq_len: [BOS] + text + [EOS] in one row. Trailing newlines are
      // not part of a document.
      const text = readFileSync(join(DATA, "bpb", name), "utf8").replace(/\s+$/, "");
      const { tokens, mask } = documentLevelMask(text, config.strategy);
      const n = tokens.length - 1;
      const loss = noGrad(() => m.loss(tokens.subarray(0, n), mask.subarray(0, n), tokens.subarray(1), 1, n))
        .rowLoss.toFloat32()
        .reduce((a, b) => a + b, 0);
      const nBytes = encodeText(text).length;
      assert.equal(r.files[i].bytes, nBytes);
      assert.ok(Math.abs(r.files[i].bitsPerByte - loss / nBytes / Math.LN2) < 1e-4);
      nats += loss;
      bytes += nBytes;
    }
    assert.ok(Math.abs(r.total.bitsPerByte - nats / bytes / Math.LN2) < 1e-4);

    const out = await runCli(["--task", "bpb", "--ckpt", CKPT, "--data", join(DATA, "bpb")]);
    assert.match(out, /en\.txt +1 +\d+ +\d+\.\d{4}/);
    assert.match(out, /^total +\d+ +\d+\.\d{4}/m);
  },
);

// ---------------------------------------------------------------------------------------------------------
// Bad inputs

test("user mistakes are one-line UserErrors", async () => {
  const dir = mkdtempSync(join(tmpdir(), "aunet-eval-"));
  try {
    const file = (name: string, text: string) => {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    };
    const bad = async (args: string[], pattern: RegExp) => {
      await assert.rejects(evalTaskCommand(args, new Collect()), (e: unknown) => {
        assert.ok(e instanceof UserError, `expected a UserError for ${args.join(" ")}, got ${String(e)}`);
        assert.ok(!e.message.includes("\n"), `multi-line message: ${e.message}`);
        assert.match(e.message, pattern);
        return true;
      });
    };
    const mcq = (text: string) => ["--task", "mcq", "--ckpt", CKPT, "--file", file("t.jsonl", text)];
    await bad(["--ckpt", CKPT], /--task .* is required/);
    await bad(["--task", "poetry", "--ckpt", CKPT], /unknown --task poetry/);
    await bad(["--task", "mcq", "--ckpt", CKPT, "--src", "a.txt"], /--src does not apply to --task mcq/);
    await bad(["--task", "mcq", "--file", "x.jsonl"], /--ckpt/);
    await bad(["--task", "mcq", "--ckpt", CKPT], /needs --file/);
    await bad(["--task", "mcq", "--ckpt", CKPT, "--file", join(dir, "missing.jsonl")], /no such file/);
    await bad(["--task", "mcq", "--ckpt", CKPT, "--file", dir], /is a directory/);
    await bad(
      mcq('{"context": "a", "choices": ["b", "c"], "gold": 0}\n{oops\n'),
      /t\.jsonl:2: not valid JSON/,
    );
    await bad(mcq('{"prompt": "a", "answer": "b"}\n'), /t\.jsonl:1: unrecognised item/);
    await bad(
      mcq('{"context": "a", "choices": ["b", "c"], "gold": 2}\n'),
      /"gold" is 2 but there are 2 choices/,
    );
    await bad(mcq('{"context": "a", "choices": ["b"], "gold": 0}\n'), /at least two strings/);
    await bad(mcq('{"context": "a", "choices": ["b", ""], "gold": 0}\n'), /choice 1 is empty/);
    await bad(mcq('{"ctx": "a", "endings": ["b", "c"], "label": ""}\n'), /no "label"/);
    await bad(
      mcq('{"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"}\n'),
      /answerKey/,
    );
    await bad(mcq("\n\n"), /no items/);
    await bad(
      [...mcq('{"context": "a", "choices": ["b", "c"], "gold": 0}\n'), "--limit", "0"],
      /--limit must be/,
    );

    const cute = (text: string, ...more: string[]) => [
      "--task",
      "cute",
      "--ckpt",
      CKPT,
      "--file",
      file("spell.tsv", text),
      ...more,
    ];
    await bad(cute("word\tanswer\na\tb\n"), /neither CUTE's/);
    await bad(cute("input1\tlabel\na\tb\tc\n"), /spell\.tsv:2: 3 tab-separated fields, the header has 2/);
    await bad(cute("input1\tlabel\na\ta\nb\tb\n"), /none is left to score/);
    await bad(cute("input1\tlabel\na\ta\n", "--shots", "0", "--template", "{1} and {2}"), /uses \{2\}/);
    await bad(cute("input1\tlabel\na\ta\n", "--shots", "0", "--cute-task", "juggle"), /not a CUTE task/);
    await bad(
      [
        "--task",
        "cute",
        "--ckpt",
        CKPT,
        "--file",
        file("mystery.tsv", "input1\tlabel\na\ta\n"),
        "--shots",
        "0",
      ],
      /--cute-task NAME or --template/,
    );

    const src = file("src.txt", "a\nb\nc\n");
    await bad(
      ["--task", "translate", "--ckpt", CKPT, "--src", src, "--ref", file("ref.txt", "x\ny\n")],
      /line-aligned/,
    );
    await bad(
      ["--task", "translate", "--ckpt", CKPT, "--src", src, "--ref", src, "--template", "{tgt}: {src}"],
      /end with \{tgt\}/,
    );
    await bad(
      ["--task", "translate", "--ckpt", CKPT, "--src", src, "--ref", src, "--shot-src", src],
      /go together/,
    );
    await bad(["--task", "translate", "--ckpt", CKPT, "--src", src, "--ref", src], /none is left to score/);
    await bad(["--task", "translate", "--ckpt", CKPT, "--ref", src], /needs --src/);

    await bad(["--task", "bpb", "--ckpt", CKPT, "--data", join(dir, "nothing")], /no such file or directory/);
    await bad(["--task", "bpb", "--ckpt", join(dir, "no-model"), "--data", src], /no such checkpoint/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("--help prints the usage", async () => {
  const out = await runCli(["--help"]);
  assert.match(out, /--task mcq --file F\.jsonl/);
});
