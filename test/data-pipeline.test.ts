// The training data path: document sources (plain text, JSONL, gzip, directories, bad data), packing into
// rows (spec section 8), the shuffled loader's determinism and exact restart, hash-held-out validation.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { BOS, EOS } from "../src/data/bytes.js";
import { parseStrategy } from "../src/data/splitter.js";
import { packAll, packDocument, RowPacker, type PackedDoc } from "../src/data/packing.js";
import { DataStats, discoverSources, readDocuments, type SourceFile } from "../src/data/sources.js";
import { collectDocs, isHeldOut, TrainLoader } from "../src/data/loader.js";
import { UserError } from "../src/util/errors.js";

const strategy = parseStrategy({ word1: "1@1" });
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "aunet-data-"));
}

async function allDocs(file: SourceFile, docBytes: number, stats = new DataStats(), start = 0) {
  const out: { offset: number; text: string }[] = [];
  for await (const d of readDocuments(file, start, { docBytes, stats }))
    out.push({ offset: d.offset, text: dec(d.bytes) });
  return out;
}

function doc(ids: number[]): PackedDoc {
  return { tokens: Int32Array.from(ids), mask: Int32Array.from(ids.map((_, i) => i % 3)) };
}

test("packing: rows of S+1 ids, the last id of a row starts the next, masks travel with ids", async () => {
  const docs = [doc([BOS, 1, 2, 3, EOS]), doc([BOS, 4, 5, EOS]), doc([BOS, 6, EOS])];
  const flat = docs.flatMap((d) => Array.from(d.tokens));
  const flatMask = docs.flatMap((d) => Array.from(d.mask));
  const S = 4;
  const rows = await packAll(docs, S);
  // 12 ids -> rows start at 0, 4, 8; the third is partial (ids 8..11).
  assert.deepEqual(
    rows.map((r) => Array.from(r.ids)),
    [flat.slice(0, 5), flat.slice(4, 9), flat.slice(8, 12)],
  );
  assert.deepEqual(Array.from(rows[1].mask), flatMask.slice(4, 9));
  // Every id after the first is a target exactly once.
  const targets = rows.flatMap((r) => Array.from(r.ids.subarray(1)));
  assert.deepEqual(targets, flat.slice(1));
});

test("packing: a row ending exactly on a document's EOS hands that EOS to the next row", async () => {
  const docs = [doc([BOS, 1, 2, EOS]), doc([BOS, 3, EOS])];
  const rows = await packAll(docs, 3);
  assert.deepEqual(Array.from(rows[0].ids), [BOS, 1, 2, EOS]);
  assert.deepEqual(Array.from(rows[1].ids), [EOS, BOS, 3, EOS]);
  assert.equal(rows.length, 2);
});

test("packing: the packer state restarts the stream exactly", async () => {
  const docs = Array.from({ length: 7 }, (_, k) =>
    doc([BOS, ...Array.from({ length: 3 + k }, (_, j) => 10 * k + j), EOS]),
  );
  const S = 5;
  const mk = () => {
    let i = 0;
    return new RowPacker<number>(S, async () => (i < docs.length ? { doc: docs[i], pos: i++ } : null));
  };
  const straight = mk();
  const rows: number[][] = [];
  const ids = new Int32Array(S + 1),
    m = new Int32Array(S + 1);
  for (let r = 0; r < 8; r++) {
    await straight.fill(ids, m);
    rows.push(Array.from(ids));
  }
  const a = mk();
  for (let r = 0; r < 3; r++) await a.fill(ids, m);
  const st = a.state()!;
  let j = st.pos + 1;
  const b = new RowPacker<number>(S, async () => (j < docs.length ? { doc: docs[j], pos: j++ } : null));
  b.restore({ doc: docs[st.pos], pos: st.pos }, st.offset);
  for (let r = 3; r < 8; r++) {
    await b.fill(ids, m);
    assert.deepEqual(Array.from(ids), rows[r], `row ${r}`);
  }
});

test("packDocument: [BOS] + bytes + [EOS], BOS at the document's top level, EOS at 0", () => {
  const d = packDocument(enc("the cat sat"), parseStrategy({ word1: "1@1", word2: "2@1" }));
  assert.equal(d.tokens[0], BOS);
  assert.equal(d.tokens[d.tokens.length - 1], EOS);
  assert.equal(d.tokens.length, 13);
  assert.equal(d.mask[d.mask.length - 1], 0);
  assert.equal(d.mask[0], Math.max(...Array.from(d.mask.subarray(1))));
});

test("plain text: paragraphs gathered to about docBytes, cut at blank lines, offsets reopen the same documents", async () => {
  const dir = tmpdir();
  const paras = Array.from({ length: 40 }, (_, i) =>
    (`Paragraph ${i} ` + "word ".repeat(5 + (i % 7))).trim(),
  );
  const text = "\n\n" + paras.join("\n\n") + "\n\n\n";
  const f = path.join(dir, "a.txt");
  fs.writeFileSync(f, text);
  const [file] = discoverSources([f], new DataStats());
  const docs = await allDocs(file, 100);
  assert.ok(docs.length > 5);
  // Nothing lost but the blank runs between documents; no document starts or ends blank.
  assert.equal(docs.map((d) => d.text).join("\n\n"), paras.join("\n\n"));
  for (const d of docs) {
    assert.equal(d.text, d.text.trim());
    assert.equal(dec(enc(text).subarray(d.offset, d.offset + 9)), d.text.slice(0, 9));
  }
  // Reading from any document's offset yields exactly the documents after it.
  const k = 3;
  const tail = await allDocs(file, 100, new DataStats(), docs[k].offset);
  assert.deepEqual(tail, docs.slice(k));
});

test("plain text: a huge paragraph is cut at line breaks or character boundaries, never inside a character", async () => {
  const dir = tmpdir();
  const f = path.join(dir, "long.txt");
  const body = "ééé🐳 ".repeat(400); // no blank line at all, multi-byte characters
  fs.writeFileSync(f, body);
  const [file] = discoverSources([f], new DataStats());
  const docs = await allDocs(file, 64);
  assert.ok(docs.length > 5);
  for (const d of docs) assert.ok(!d.text.includes("\ufffd"), "a document was cut inside a character");
  assert.equal(
    docs
      .map((d) => d.text)
      .join("")
      .replace(/\s/g, ""),
    body.replace(/\s/g, ""),
  );
});

test("plain text: chunked reading gives the same documents as one read (1 MiB chunk boundaries)", async () => {
  const dir = tmpdir();
  const f = path.join(dir, "big.txt");
  const parts: string[] = [];
  let n = 0;
  while (n < 2.3 * (1 << 20)) {
    const p =
      `p${parts.length} ` + "x".repeat(parts.length % 97) + (parts.length % 5 === 0 ? "\n  \n" : "\n");
    parts.push(p);
    n += p.length;
  }
  fs.writeFileSync(f, parts.join(""));
  const [file] = discoverSources([f], new DataStats());
  const docs = await allDocs(file, 4096);
  const text = fs.readFileSync(f);
  for (const d of docs.slice(0, 50).concat(docs.slice(-50)))
    assert.equal(dec(text.subarray(d.offset, d.offset + enc(d.text).length)), d.text);
  const again = await allDocs(file, 4096, new DataStats(), docs[300].offset);
  assert.deepEqual(again, docs.slice(300));
});

test("JSONL (plain and gzip): text or content fields; bad lines skipped and counted", async () => {
  const dir = tmpdir();
  const lines = [
    JSON.stringify({ text: "first doc" }),
    "",
    "not json at all",
    JSON.stringify({ content: "second doc" }),
    JSON.stringify({ title: "no text here" }),
    JSON.stringify({ text: 42 }),
    JSON.stringify([1, 2]),
    JSON.stringify({ text: "" }),
    JSON.stringify({ text: "third\ndoc with ünïcode" }),
  ].join("\n");
  fs.writeFileSync(path.join(dir, "a.jsonl"), lines);
  fs.writeFileSync(path.join(dir, "b.jsonl.gz"), gzipSync(Buffer.from(lines)));
  const stats = new DataStats();
  const files = discoverSources([dir], stats);
  assert.equal(files.length, 2);
  for (const f of files) {
    const docs = await allDocs(f, 100, stats);
    assert.deepEqual(
      docs.map((d) => d.text),
      ["first doc", "second doc", "third\ndoc with ünïcode"],
    );
    // Offsets point at line starts (decompressed), so a restart can seek there.
    const tail = await allDocs(f, 100, new DataStats(), docs[1].offset);
    assert.deepEqual(tail, docs.slice(1));
  }
  assert.equal(stats.badJsonLines, 4);
  assert.equal(stats.linesWithoutText, 4);
  assert.equal(stats.emptyDocuments, 2);
  assert.ok(stats.describe().some((l) => l.includes("without a string")));
});

test("bad data: missing paths are a UserError; empty, binary and unknown files are skipped and counted", () => {
  const dir = tmpdir();
  fs.writeFileSync(path.join(dir, "empty.txt"), "");
  fs.writeFileSync(path.join(dir, "blob.txt"), Buffer.from([1, 2, 0, 3, 0, 255]));
  fs.writeFileSync(path.join(dir, "image.png"), Buffer.from([0x89, 0x50, 0x4e, 0x47]));
  fs.writeFileSync(path.join(dir, "ok.md"), "some text");
  fs.mkdirSync(path.join(dir, "sub"));
  fs.writeFileSync(path.join(dir, "sub", "more.txt"), "more text");
  fs.writeFileSync(path.join(dir, ".hidden.txt"), "hidden");
  const stats = new DataStats();
  const files = discoverSources([dir], stats);
  assert.deepEqual(
    files.map((f) => path.relative(dir, f.path)),
    ["ok.md", path.join("sub", "more.txt")],
  );
  assert.equal(stats.emptyFiles.length, 1);
  assert.equal(stats.binaryFiles.length, 1);
  assert.equal(stats.unsupportedFiles, 1);
  assert.throws(
    () => discoverSources([path.join(dir, "nope.txt")], new DataStats()),
    (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /nope\.txt: no such file or directory/);
      return true;
    },
  );
  assert.throws(() => discoverSources([path.join(dir, "empty.txt")], new DataStats()), /no usable text/);
  assert.throws(() => discoverSources([], new DataStats()), UserError);
});

test("bad data: invalid UTF-8 is kept as bytes (counted), and a corrupt gzip ends its file with a note", async () => {
  const dir = tmpdir();
  const f = path.join(dir, "latin1.txt");
  fs.writeFileSync(f, Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xff, 0xfe, 0x21]));
  const g = path.join(dir, "broken.jsonl.gz");
  const gz = gzipSync(
    Buffer.from(Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: `doc ${i}` })).join("\n")),
  );
  fs.writeFileSync(g, gz.subarray(0, gz.length - 30));
  const stats = new DataStats();
  const files = discoverSources([f, g], stats);
  const loader = new TrainLoader(files, 16, {
    seed: 1,
    docBytes: 64,
    shuffleWindow: 8,
    valFraction: 0,
    strategy,
    stats,
  });
  for (let i = 0; i < 60; i++) await loader.batch(2); // several epochs over both files, no exception
  await loader.close();
  assert.ok(stats.invalidUtf8Documents > 0);
  assert.equal(stats.unreadableFiles.length > 0, true);
  assert.match(stats.unreadableFiles[0], /broken\.jsonl\.gz/);
});

async function corpus(dir: string): Promise<SourceFile[]> {
  for (let f = 0; f < 3; f++) {
    const paras = Array.from(
      { length: 30 },
      (_, i) => `file ${f} paragraph ${i}: ` + "lorem ipsum ".repeat(1 + ((i * 7) % 5)),
    );
    fs.writeFileSync(path.join(dir, `c${f}.txt`), paras.join("\n\n"));
  }
  return discoverSources([dir], new DataStats());
}

test("loader: the same seed gives the same rows; another seed another order; restore() continues exactly", async () => {
  const files = await corpus(tmpdir());
  const opts = (seed: number) => ({
    seed,
    docBytes: 80,
    shuffleWindow: 5,
    valFraction: 0.2,
    strategy,
    stats: new DataStats(),
  });
  const S = 32;
  const take = async (l: TrainLoader, n: number) => {
    const out: number[][] = [];
    for (let i = 0; i < n; i++) {
      const b = await l.batch(2);
      out.push([...b.tokens, ...b.mask, ...b.targets]);
    }
    return out;
  };
  const a = new TrainLoader(files, S, opts(5));
  const rowsA = await take(a, 60); // > 1 epoch
  const b = new TrainLoader(files, S, opts(5));
  assert.deepEqual(await take(b, 60), rowsA);
  const c = new TrainLoader(files, S, opts(6));
  assert.notDeepEqual(await take(c, 60), rowsA);
  for (const cut of [1, 17, 41]) {
    const d = new TrainLoader(files, S, opts(5));
    await take(d, cut);
    const st = JSON.parse(JSON.stringify(d.state()));
    await d.close();
    const e = new TrainLoader(files, S, opts(5));
    await e.restore(st);
    assert.deepEqual(await take(e, 60 - cut), rowsA.slice(cut), `restart after ${cut} batches`);
    await e.close();
  }
  await Promise.all([a.close(), b.close(), c.close()]);
});

test("loader: inputs, targets and masks line up; hash-held-out documents never reach training", async () => {
  const files = await corpus(tmpdir());
  const stats = new DataStats();
  const S = 24;
  const l = new TrainLoader(files, S, {
    seed: 3,
    docBytes: 80,
    shuffleWindow: 4,
    valFraction: 0.3,
    strategy,
    stats,
  });
  const val = await collectDocs(files, strategy, { docBytes: 80, stats, heldOut: 0.3, maxBytes: 0 });
  assert.ok(val.docs.length > 0);
  for (const d of val.docs)
    assert.ok(isHeldOut(Uint8Array.from(d.tokens.subarray(1, d.tokens.length - 1)), 0.3));
  const valTexts = new Set(val.docs.map((d) => Array.from(d.tokens).join(",")));
  let prevLast = -1;
  const seenTrain = new Set<string>();
  let cur: number[] = [];
  for (let i = 0; i < 40; i++) {
    const b = await l.batch(1);
    // The target row is the input row shifted by one, and rows chain (spec section 8).
    assert.deepEqual(Array.from(b.tokens.subarray(1)), Array.from(b.targets.subarray(0, S - 1)));
    if (prevLast >= 0) assert.equal(b.tokens[0], prevLast);
    prevLast = b.targets[S - 1];
    for (let k = i === 0 ? 0 : 1; k < S; k++) {
      cur.push(b.tokens[k]);
      if (b.tokens[k] === EOS) {
        seenTrain.add(cur.join(","));
        cur = [];
      }
    }
  }
  await l.close();
  assert.ok(seenTrain.size > 3);
  for (const t of seenTrain) assert.ok(!valTexts.has(t), "a validation document was trained on");
});

test("loader: a held-out fraction that leaves nothing to train on is a clear error", async () => {
  const dir = tmpdir();
  fs.writeFileSync(path.join(dir, "one.txt"), "just one short document");
  const files = discoverSources([dir], new DataStats());
  const l = new TrainLoader(files, 8, {
    seed: 1,
    docBytes: 64,
    shuffleWindow: 4,
    valFraction: 0.999999,
    strategy,
    stats: new DataStats(),
  });
  await assert.rejects(() => l.batch(1), /no documents left after holding out validation/);
  await l.close();
});
