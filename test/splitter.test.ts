// The byte vocabulary and the splitter against the official code: every case of
// fixtures/split_cases.jsonl (official RegexPool output), official outputs for the strategies the fixture does
// not cover (pretok, punct, the `word` key), and the incremental splitter against the whole-buffer one.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { UserError } from "../src/util/errors.js";
import { splitCommand } from "../src/cli/split.js";
import {
  BOS,
  EOS,
  VOCAB_SIZE,
  Utf8Reader,
  Utf8StreamDecoder,
  decodeBytes,
  encodeText,
  isByteId,
} from "../src/data/bytes.js";
import { IncrementalSplitter, incrementalLevels } from "../src/data/incremental.js";
import {
  SplitStrategy,
  decodedRange,
  documentLevelMask,
  isContinuation,
  levelMask,
  numLevels,
  parseStrategy,
  prefillLevels,
} from "../src/data/splitter.js";
import { fixturePath, needFixtures, tempDir } from "./helpers.js";

const CASES_SKIP = needFixtures("split_cases.jsonl");
const CASES_FILE = fixturePath("split_cases.jsonl");

type Official<T> = T | { error: string };
interface SplitCase {
  id: number;
  category: string;
  bytes: number[];
  text: string | null;
  masks: Record<string, Official<number[]>>;
  incremental?: Record<string, Official<number>[]>;
  prefill_force_first?: Record<string, number[]>;
  data?: Record<string, Official<{ tokens: number[]; mask: number[] }>>;
}

const cases: SplitCase[] = CASES_FILE
  ? fs
      .readFileSync(CASES_FILE, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as SplitCase)
  : [];
const strategySets = cases.length > 0 ? Object.keys(cases[0]!.masks) : [];

function isError(v: unknown): v is { error: string } {
  return v !== null && typeof v === "object" && !Array.isArray(v) && "error" in v;
}

/**
 * Our byte-aligned mask in the official layout, for buffers with ill-formed UTF-8: the official code decodes
 * each invalid subpart as U+FFFD and then counts it as 3 bytes, so its mask has 3 - k extra leading zeros
 * for every invalid subpart of k bytes. (Valid only for a single text segment, as in the fixture: when a
 * BOS/EOS follows such a segment, the official code also writes the later segments at shifted positions.)
 */
function officialLayout(bytes: ArrayLike<number>, mask: ArrayLike<number>): number[] {
  const { start, end } = decodedRange(bytes);
  const extra = new Array<number>(bytes.length).fill(0);
  const r = new Utf8Reader();
  const take = (i: number): void => {
    for (let k = 0; k < r.count; k++)
      if (r.badLen[k]! > 0) extra[r.endsBefore[k] ? i - 1 : i] = 3 - r.badLen[k]!;
  };
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    assert.ok(isByteId(b), "officialLayout handles one text segment only");
    r.push(b);
    take(i);
  }
  r.flush();
  take(end - 1);
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    for (let k = 0; k < extra[i]!; k++) out.push(0);
    out.push(mask[i]!);
  }
  return out;
}

function forceFirst(mask: number[]): number[] {
  const out = mask.slice();
  if (out.length > 0) out[0] = Math.max(...out);
  return out;
}

describe("split_cases.jsonl (official RegexPool)", { skip: CASES_SKIP }, () => {
  test("fixture shape", (t) => {
    assert.equal(cases.length, 210);
    assert.deepEqual(strategySets, ["word1=1@1", "word1=1@1,word2=2@1", "word1=1@1,word2=2@1,word4=4@1"]);
    let maskErrors = 0;
    let incErrors = 0;
    let dataErrors = 0;
    let resized = 0;
    for (const c of cases) {
      for (const s of strategySets) {
        const m = c.masks[s];
        if (isError(m)) maskErrors++;
        else if (m!.length !== c.bytes.length) resized++;
        incErrors += (c.incremental?.[s] ?? []).filter(isError).length;
        if (isError(c.data?.[s])) dataErrors++;
      }
    }
    t.diagnostic(
      `${cases.length} cases x ${strategySets.length} strategies; official errors: masks ${maskErrors}, ` +
        `incremental positions ${incErrors}, data ${dataErrors}; masks longer than their input ${resized}`,
    );
  });

  for (const s of strategySets) {
    const strategy = parseStrategy(s);

    test(`masks ${s}`, () => {
      const failures: string[] = [];
      for (const c of cases) {
        const ours = Array.from(levelMask(c.bytes, strategy));
        assert.equal(ours.length, c.bytes.length);
        const official = c.masks[s]!;
        if (isError(official)) {
          // The official code crashes; we give the offending bytes 0 and split the rest as usual.
          let tail = 0;
          while (tail < c.bytes.length && isContinuation(c.bytes[tail]!)) tail++;
          if (tail < c.bytes.length) {
            tail = 0;
            while (isContinuation(c.bytes[c.bytes.length - 1 - tail]!)) tail++;
          }
          const kept = c.bytes.length - tail;
          if (ours.slice(kept).some((v) => v !== 0)) failures.push(`#${c.id}: offending bytes not 0`);
          const rest = Array.from(levelMask(c.bytes.slice(0, kept), strategy));
          if (JSON.stringify(ours.slice(0, kept)) !== JSON.stringify(rest))
            failures.push(`#${c.id}: rest differs`);
          continue;
        }
        const got = official.length === c.bytes.length ? ours : officialLayout(c.bytes, ours);
        if (JSON.stringify(got) !== JSON.stringify(official)) {
          failures.push(
            `#${c.id} ${c.category}: got ${JSON.stringify(got)} want ${JSON.stringify(official)}`,
          );
        }
      }
      assert.deepEqual(failures, []);
    });

    test(`incremental ${s}`, () => {
      const failures: string[] = [];
      for (const c of cases) {
        const official = c.incremental?.[s] ?? c.masks[s]!;
        const ours = Array.from(new IncrementalSplitter(strategy).pushAll(c.bytes));
        if (isError(official)) {
          // Only the empty buffer has no per-position answer.
          assert.equal(c.bytes.length, 0);
          assert.deepEqual(ours, []);
          continue;
        }
        const want = official.map((v) => (isError(v) ? 0 : v));
        if (JSON.stringify(ours) !== JSON.stringify(want)) {
          failures.push(`#${c.id} ${c.category}: got ${JSON.stringify(ours)} want ${JSON.stringify(want)}`);
        }
      }
      assert.deepEqual(failures, []);
    });

    test(`prefill_force_first ${s}`, () => {
      const failures: string[] = [];
      for (const c of cases) {
        const official = c.prefill_force_first?.[s] ?? c.masks[s]!;
        const ours = Array.from(prefillLevels(c.bytes, strategy));
        assert.deepEqual(ours, forceFirst(Array.from(levelMask(c.bytes, strategy))));
        if (isError(official)) continue;
        const got =
          official.length === c.bytes.length
            ? ours
            : forceFirst(officialLayout(c.bytes, levelMask(c.bytes, strategy)));
        if (JSON.stringify(got) !== JSON.stringify(official)) {
          failures.push(
            `#${c.id} ${c.category}: got ${JSON.stringify(got)} want ${JSON.stringify(official)}`,
          );
        }
      }
      assert.deepEqual(failures, []);
    });

    test(`data (training path) ${s}`, () => {
      const failures: string[] = [];
      let checked = 0;
      for (const c of cases) {
        const official = c.data?.[s];
        if (official === undefined) {
          assert.equal(c.text, null);
          continue;
        }
        checked++;
        const ours = documentLevelMask(c.text!, strategy);
        const tokens = Array.from(ours.tokens);
        const mask = Array.from(ours.mask);
        assert.deepEqual(Array.from(documentLevelMask(encodeText(c.text!), strategy).mask), mask);
        assert.deepEqual(tokens, [BOS, ...c.bytes, EOS]);
        if (isError(official)) {
          // Empty or boundary-free documents crash the official pipeline; here only their BOS is a boundary.
          if (JSON.stringify(mask) !== JSON.stringify([1, ...c.bytes.map(() => 0), 0])) {
            failures.push(`#${c.id}: ${JSON.stringify(mask)}`);
          }
          continue;
        }
        assert.deepEqual(tokens, official.tokens);
        if (JSON.stringify(mask) !== JSON.stringify(official.mask)) {
          failures.push(
            `#${c.id} ${c.category}: got ${JSON.stringify(mask)} want ${JSON.stringify(official.mask)}`,
          );
        }
      }
      assert.ok(checked > 150);
      assert.deepEqual(failures, []);
    });
  }

  test("the newline quirk: whole-text and incremental levels differ", () => {
    const c = cases.find((x) => x.text === "word \n next")!;
    const s = "word1=1@1,word2=2@1";
    assert.deepEqual(Array.from(levelMask(c.bytes, s)), [0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(Array.from(incrementalLevels(c.bytes, s)), [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
  });

  test("CLI --jsonl reproduces the fixture fields", async () => {
    const s = "word1=1@1,word2=2@1";
    const input = cases
      .map((c) => JSON.stringify(c.text !== null ? { text: c.text } : { bytes: c.bytes }))
      .join("\n");
    const out = await runSplit(["--strategy", s, "--jsonl"], input);
    const lines = out.trim().split("\n");
    assert.equal(lines.length, cases.length);
    lines.forEach((line, i) => {
      const c = cases[i]!;
      const got = JSON.parse(line) as { masks: number[]; incremental: number[]; data: unknown };
      const m = c.masks[s]!;
      if (!isError(m) && m.length === c.bytes.length) assert.deepEqual(got.masks, m, `#${c.id}`);
      const inc = c.incremental?.[s] ?? m;
      if (!isError(inc))
        assert.deepEqual(
          got.incremental,
          inc.map((v) => (isError(v) ? 0 : v)),
          `#${c.id}`,
        );
      const d = c.data?.[s];
      if (d === undefined) assert.equal(got.data, null, `#${c.id}`);
      else if (!isError(d)) assert.deepEqual(got.data, d, `#${c.id}`);
    });
  });
});

// Produced by the official regex_cutting.py (lingua 437d680, Python `regex` module) on these texts: the
// strategies the fixture does not cover.
const OFFICIAL_EXTRA: {
  text: string;
  strategy: Record<string, string>;
  masks: number[];
  incremental: number[];
}[] = [
  {
    text: "Hello  world, it's 1234567 dollars!!!\n\n  Next line\tend ",
    strategy: { pretok: "x" },
    masks: [
      1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1,
      0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1,
    ],
    incremental: [
      1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1,
      0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1,
    ],
  },
  {
    text: "Hello  world, it's 1234567 dollars!!!\n\n  Next line\tend ",
    strategy: { punct: "x" },
    masks: [
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ],
    incremental: [
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ],
  },
  {
    text: "Hello  world, it's 1234567 dollars!!!\n\n  Next line\tend ",
    strategy: { word1: "1@1", pretok: "x", punct: "y" },
    masks: [
      2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 0, 3, 2, 0, 0, 3, 2, 2, 3, 3, 0, 2, 3, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0, 3,
      0, 0, 1, 0, 2, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 2, 0, 0, 2,
    ],
    incremental: [
      2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 3, 2, 0, 0, 3, 2, 2, 3, 0, 0, 2, 0, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0, 3,
      0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 2, 0, 0, 2,
    ],
  },
  {
    text: "a b c d e f g h i j k l ",
    strategy: { word: "1@2-3" },
    masks: [0, 1, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0],
    incremental: [0, 1, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0],
  },
  {
    text: "a b c d e f g h i j k l ",
    strategy: { word: "2@2" },
    masks: [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
    incremental: [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
  },
  {
    text: "x = f(a,b)  # ١٢٣٤ ½ ²\r\nreturn",
    strategy: { pretok: "x", punct: "y" },
    masks: [
      1, 1, 2, 1, 0, 2, 1, 2, 1, 2, 1, 1, 2, 1, 0, 2, 0, 2, 0, 0, 0, 1, 1, 0, 1, 1, 0, 1, 2, 0, 1, 0, 0, 0, 0,
      0,
    ],
    incremental: [
      1, 1, 2, 1, 0, 2, 1, 2, 1, 2, 1, 0, 2, 1, 0, 2, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0, 1, 2, 0, 1, 0, 0, 0, 0,
      0,
    ],
  },
];

describe("pretok, punct and the `word` key (official outputs)", () => {
  for (const c of OFFICIAL_EXTRA) {
    test(`${JSON.stringify(c.strategy)} on ${JSON.stringify(c.text.slice(0, 24))}`, () => {
      const bytes = encodeText(c.text);
      assert.deepEqual(Array.from(levelMask(bytes, c.strategy)), c.masks);
      assert.deepEqual(Array.from(incrementalLevels(bytes, c.strategy)), c.incremental);
    });
  }
});

// A tiny deterministic generator; the test needs reproducible inputs, not good randomness.
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

const PIECES: number[][] = [
  ..."abcXYZ0123456789".split("").map((ch) => Array.from(encodeText(ch))),
  ...[" ", " ", " ", " ", "\t", "\n", "\r", "\r\n", "\v", ".", ",", "!", "(", "'", "#", "_", "~"].map((ch) =>
    Array.from(encodeText(ch)),
  ),
  ...["é", "中", "😀", "٣", "²", "Ⅻ", "\u00a0", "\u0085", "\u2028", "\u3000", "\ufeff", "\u0301", "\x1c"].map(
    (ch) => Array.from(encodeText(ch)),
  ),
  ...["abcdefghijklmnopqrstu", "1234567", "!!!!!", "   \n  ", ".\n\n"].map((ch) =>
    Array.from(encodeText(ch)),
  ),
  [0x80],
  [0xff],
  [0xc0],
  [0xc3],
  [0xe2, 0x82],
  [0xf0, 0x9f, 0x98],
  [0xed, 0xa0, 0x80],
  [BOS],
  [EOS],
];

function randomBuffer(rand: () => number, pieces: number): number[] {
  let out: number[] = [];
  for (let i = 0; i < pieces; i++) out.push(...PIECES[Math.floor(rand() * PIECES.length)]!);
  if (rand() < 0.15)
    out = Array<number>(1 + Math.floor(rand() * 6))
      .fill(0x80)
      .concat(out);
  if (rand() < 0.15) out = out.concat(Array<number>(1 + Math.floor(rand() * 5)).fill(0x80));
  return out;
}

const ALL_KIND_STRATEGIES = [
  "word1=1@1",
  "word1=1@1,word2=2@1,word4=4@1",
  "pretok=x",
  "punct=y",
  "word=2@2-3",
  "word1=3@1,pretok=x,punct=y",
  "punct=1,word1=1@1",
];

describe("IncrementalSplitter", () => {
  test("equals the whole-buffer level of the last byte of every prefix", () => {
    const rand = lcg(12345);
    for (let n = 0; n < 400; n++) {
      const s = ALL_KIND_STRATEGIES[n % ALL_KIND_STRATEGIES.length]!;
      const bytes = randomBuffer(rand, Math.floor(rand() * 30));
      const inc = incrementalLevels(bytes, s);
      for (let i = 0; i < bytes.length; i++) {
        const whole = levelMask(bytes.slice(0, i + 1), s);
        assert.equal(inc[i], whole[i], `${s} ${JSON.stringify(bytes.slice(0, i + 1))}`);
      }
    }
  });

  test("clone continues independently; reset starts over", () => {
    const s = "word1=1@1,word2=2@1,word4=4@1";
    const rand = lcg(7);
    for (let n = 0; n < 50; n++) {
      const prompt = randomBuffer(rand, 12);
      const a = randomBuffer(rand, 10);
      const b = randomBuffer(rand, 10);
      const sp = new IncrementalSplitter(s);
      sp.pushAll(prompt);
      const fork = sp.clone();
      const la = Array.from(sp.pushAll(a));
      const lb = Array.from(fork.pushAll(b));
      assert.deepEqual(la, Array.from(incrementalLevels([...prompt, ...a], s)).slice(prompt.length));
      assert.deepEqual(lb, Array.from(incrementalLevels([...prompt, ...b], s)).slice(prompt.length));
      sp.reset();
      assert.deepEqual(Array.from(sp.pushAll(b)), Array.from(incrementalLevels(b, s)));
    }
  });

  test("never throws on bad ids", () => {
    const sp = new IncrementalSplitter("word1=1@1,pretok=x");
    for (const id of [-1, 1.5, NaN, 300, 256, 257, 0xff, 0x80, 0xc0, 0, 10])
      assert.equal(typeof sp.push(id), "number");
    assert.deepEqual(Array.from(levelMask([-1, 1.5, 300, 97, 32], "word1=1@1")), [0, 0, 0, 0, 1]);
  });

  test("work per byte stays constant over 200 KB", () => {
    const s = "word1=1@1,word2=2@1,word4=4@1";
    const unit = encodeText("The quick brown fox, 12345 times!\n  Ünïcödé 中文 😀 and\tmore words here.\r\n");
    const total = 200 * 1024;
    const bytes = new Uint8Array(total);
    for (let i = 0; i < total; i++) bytes[i] = unit[i % unit.length]!;
    const sp = new IncrementalSplitter(s);
    const levels = new Int32Array(total);
    const stepsAt: number[] = [];
    for (let i = 0; i < total; i++) {
      levels[i] = sp.push(bytes[i]!);
      if ((i + 1) % (total / 8) === 0) stepsAt.push(sp.stats.charSteps);
    }
    const st = sp.stats;
    assert.equal(st.bytes, total);
    assert.ok(st.maxCharStepsPerPush <= 2, `max ${st.maxCharStepsPerPush} characters in one push`);
    assert.ok(st.charSteps <= total, `${st.charSteps} steps for ${total} bytes`);
    // Equal-sized slices of the stream cost (nearly) the same: no growth with the prefix length.
    const slices = stepsAt.map((v, i) => v - (i === 0 ? 0 : stepsAt[i - 1]!));
    assert.ok(Math.max(...slices) - Math.min(...slices) <= unit.length, JSON.stringify(slices));
    // And the answers are still those of the whole-buffer splitter, checked on a few long prefixes.
    for (const end of [1000, 65_537, 150_001, total]) {
      assert.equal(levels[end - 1], levelMask(bytes.subarray(0, end), s)[end - 1], `prefix ${end}`);
    }
  });
});

describe("levelMask and the training path", () => {
  test("BOS/EOS restart the regex state and get 0", () => {
    const a = Array.from(encodeText("one two three "));
    const s = "word1=1@1,word2=2@1";
    const joined = Array.from(levelMask([...a, EOS, BOS, ...a], s));
    const single = Array.from(levelMask(a, s));
    assert.deepEqual(joined, [...single, 0, 0, ...single]);
  });

  test("documents without a boundary keep their BOS as the only boundary", () => {
    assert.deepEqual(Array.from(documentLevelMask("", "word1=1@1,word2=2@1").mask), [1, 0]);
    assert.deepEqual(Array.from(documentLevelMask("word", "word1=1@1,word2=2@1").mask), [1, 0, 0, 0, 0, 0]);
    assert.deepEqual(
      Array.from(documentLevelMask("a b c d ", "word1=1@1,word2=2@1").mask),
      [2, 0, 1, 0, 2, 0, 1, 0, 2, 0],
    );
    assert.deepEqual(Array.from(documentLevelMask("word", {}).mask), [0, 0, 0, 0, 0, 0]);
  });

  test("an empty strategy is the plain byte model", () => {
    assert.equal(numLevels(""), 0);
    assert.deepEqual(Array.from(levelMask(encodeText("a b\n"), "")), [0, 0, 0, 0]);
  });

  test("ill-formed UTF-8 keeps the mask aligned to the bytes", () => {
    const bytes = [97, 98, 99, 32, 0xff, 32, 100, 101, 102];
    assert.deepEqual(Array.from(levelMask(bytes, "word1=1@1")), [0, 0, 0, 1, 1, 1, 0, 0, 0]);
    assert.deepEqual(Array.from(levelMask([], "word1=1@1")), []);
    assert.deepEqual(Array.from(levelMask([0x9f, 0x8d], "word1=1@1")), [0, 0]);
  });
});

describe("strategy parsing", () => {
  test("the CLI string, the config object and its JSON text agree", () => {
    const a = parseStrategy("word1=1@1,word2=2@1");
    const b = parseStrategy({ word1: "1@1", word2: "2@1" });
    const c = parseStrategy('{"word1": "1@1", "word2": "2@1"}');
    for (const x of [a, b, c]) {
      assert.ok(x instanceof SplitStrategy);
      assert.equal(x.toString(), "word1=1@1,word2=2@1");
      assert.deepEqual(x.toJSON(), { word1: "1@1", word2: "2@1" });
      assert.equal(x.numLevels, 2);
      assert.deepEqual(
        x.entries.map((e) => [e.kind, e.groupSize]),
        [
          ["word", 1],
          ["word", 2],
        ],
      );
    }
    assert.equal(parseStrategy(a), a);
    assert.equal(numLevels("word1=1@1,pretok=x,punct=y"), 3);
    assert.deepEqual(parseStrategy({ word: "2@2-3" }).entries[0]!.keepEvery, [2, 3]);
    assert.equal(parseStrategy({ word1: "2@7" }).entries[0]!.keepEvery, null);
    assert.equal(parseStrategy({ word1: "3" }).entries[0]!.groupSize, 3);
  });

  const bad: [unknown, RegExp][] = [
    ["token1=1@1", /Unknown split strategy "token1"/],
    [{ word1: 1 }, /must be a string/],
    [{ word1: null }, /must be a string/],
    ["word1=x@1", /malformed value "x@1"/],
    ["word1=1@", /malformed/],
    ["word1=0@1", /group size/],
    ["word=2", /needs a value "G@M"/],
    ["word=2@0", /at least 1/],
    ["word1", /key=value/],
    ["word1=1@1,word1=2@1", /appears twice/],
    ["{not json", /not valid JSON/],
    ["[1,2]", /must be an object/],
    ['["word1"]', /must be an object/],
    [42, /must be an object/],
  ];
  for (const [input, message] of bad) {
    test(`rejects ${JSON.stringify(input)}`, () => {
      assert.throws(
        () => parseStrategy(input),
        (e: unknown) => e instanceof UserError && message.test(e.message) && !e.message.includes("\n"),
      );
    });
  }
});

describe("bytes", () => {
  test("vocabulary", () => {
    assert.equal(BOS, 256);
    assert.equal(EOS, 257);
    assert.equal(VOCAB_SIZE, 258);
    assert.deepEqual(Array.from(encodeText("aé😀")), [97, 0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80]);
  });

  test("decodeBytes drops special ids and escapes ill-formed UTF-8 like Python's backslashreplace", () => {
    assert.equal(decodeBytes([BOS, 104, 105, EOS]), "hi");
    assert.equal(decodeBytes([0xc3, BOS, 0xa9]), "é");
    assert.equal(decodeBytes([97, 0xff, 98]), "a\\xffb");
    // A truncated sequence is one maximal subpart, escaped byte by byte.
    assert.equal(decodeBytes([0xe2, 0x82, 0x41]), "\\xe2\\x82A");
    // Surrogates and overlong forms are invalid from their second byte.
    assert.equal(decodeBytes([0xed, 0xa0, 0x80]), "\\xed\\xa0\\x80");
    assert.equal(decodeBytes([0xc0, 0xaf]), "\\xc0\\xaf");
    assert.equal(decodeBytes([0xf0, 0x9f, 0x98]), "\\xf0\\x9f\\x98");
    assert.equal(decodeBytes([0xf0, 0x9f, 0x98, 0x80]), "😀");
    assert.equal(decodeBytes([]), "");
    assert.equal(decodeBytes([-3, 1.5, 65]), "A");
  });

  test("Utf8StreamDecoder never emits half a character and agrees with decodeBytes", () => {
    const d = new Utf8StreamDecoder();
    assert.deepEqual(
      [0xf0, 0x9f, 0x98, 0x80, 0x41].map((b) => d.push(b)),
      ["", "", "", "😀", "A"],
    );
    assert.equal(d.push(0xe2), "");
    assert.equal(d.flush(), "\\xe2");
    const rand = lcg(99);
    for (let n = 0; n < 300; n++) {
      const bytes = randomBuffer(rand, 20);
      const s = new Utf8StreamDecoder();
      let text = "";
      for (const b of bytes) {
        const piece = s.push(b);
        assert.ok(!/[\ud800-\udbff]$/.test(piece), "a lone high surrogate was emitted");
        text += piece;
      }
      text += s.flush();
      assert.equal(text, decodeBytes(bytes));
    }
  });
});

async function runSplit(argv: string[], stdin = ""): Promise<string> {
  let out = "";
  const code = await splitCommand(argv, {
    stdin: [Buffer.from(stdin, "utf8")],
    stdout: { write: (chunk: string) => (out += chunk) },
  });
  assert.equal(code, 0);
  return out;
}

describe("aunet split", () => {
  test("prints the whole-buffer mask of stdin", async () => {
    const out = await runSplit(["--strategy", "word1=1@1,word2=2@1"], "a b c ");
    assert.equal(out, '{"masks":[0,1,0,2,0,1]}\n');
  });

  test("reads --file and accepts the strategy as JSON", async () => {
    const f = path.join(tempDir("aunet-split-"), "in.bin");
    fs.writeFileSync(f, Buffer.from([97, 32, 0xff, 32]));
    const out = await runSplit(["--strategy", '{"word1":"1@1"}', "--file", f]);
    assert.deepEqual(JSON.parse(out), { masks: Array.from(levelMask([97, 32, 0xff, 32], "word1=1@1")) });
  });

  test("--jsonl gives masks, incremental and data per line", async () => {
    const input = ['{"text":"word \\n next"}', "", '{"bytes":[97,32,255,32]}', '{"bytes":[256,97,32]}'].join(
      "\n",
    );
    const out = await runSplit(["--strategy", "word1=1@1,word2=2@1", "--jsonl"], input);
    const lines = out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 3);
    assert.deepEqual(lines[0], {
      masks: [0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0],
      incremental: [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
      data: {
        tokens: [BOS, ...encodeText("word \n next"), EOS],
        mask: [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0],
      },
    });
    assert.equal(lines[1]!.data, null);
    assert.equal(lines[2]!.data, null);
    assert.deepEqual(lines[2]!.masks, [0, 0, 1]);
  });

  test("--help", async () => {
    assert.match(await runSplit(["--help"]), /usage: aunet split/);
  });

  const bad: [string[], string, RegExp][] = [
    [["--strategy", "word1=1@1", "--bogus"], "", /unknown option --bogus/],
    [["--strategy"], "", /--strategy needs a value/],
    [[], "", /--strategy is required/],
    [["--strategy", "nope=1"], "", /Unknown split strategy/],
    [
      ["--strategy", "word1=1@1", "--file", "/nonexistent/aunet/x"],
      "",
      /cannot read \/nonexistent\/aunet\/x \(ENOENT\)/,
    ],
    [["--strategy", "word1=1@1", "--jsonl"], "{oops", /input line 1 is not valid JSON/],
    [["--strategy", "word1=1@1", "--jsonl"], '{"text":"a"}\n{"bytes":[1,300]}', /input line 2: "bytes"/],
    [["--strategy", "word1=1@1", "--jsonl"], '{"other":1}', /neither "bytes" nor "text"/],
    [["--strategy", "word1=1@1", "extra"], "", /unexpected argument 'extra'/],
  ];
  for (const [argv, stdin, message] of bad) {
    test(`rejects ${JSON.stringify(argv)} ${JSON.stringify(stdin)}`, async () => {
      await assert.rejects(
        splitCommand(argv, { stdin: [stdin], stdout: { write: () => true } }),
        (e: unknown) => e instanceof UserError && message.test(e.message) && !e.message.includes("\n"),
      );
    });
  }
});
