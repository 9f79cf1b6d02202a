// Checkpoint interop with the official PyTorch stack: the restricted unpickler against files torch itself wrote
// (test/data, made by make_torch_fixtures.py) and against the official consolidation of a fixture, refusal of
// pickles that reach for code and of damaged archives, our torch.save writer, and lossless round trips through
// `aunet convert`.
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../src/util/errors.js";
import { convertCommand } from "../src/cli/convert.js";
import { defaultBackend } from "../src/backends/index.js";
import { noGrad } from "../src/engine/tensor.js";
import { AUNet } from "../src/model/aunet.js";
import { parseConfig } from "../src/model/config.js";
import { loadConfigFromDir, loadModelDir, readJsonFile } from "../src/io/model-dir.js";
import { readSafetensors } from "../src/io/safetensors.js";
import { PickleWriter, unpickle, type UnpickleHooks } from "../src/io/pickle.js";
import {
  OrderedDict,
  TorchTensor,
  openTorchCheckpoint,
  parseTorchCheckpoint,
  serializeTorchSave,
  type SaveValue,
} from "../src/io/torch-pickle.js";
import { ZipReader, bufferSource, crc32, zipChunks } from "../src/io/zip.js";
import { linguaParams, linguaYaml, readLinguaDir, writeLinguaDir } from "../src/io/lingua.js";
import { FIXTURES, needFixtures } from "./helpers.js";

const DATA = fileURLToPath(new URL("../../test/data/", import.meta.url));
const FIXTURE = path.join(FIXTURES, "2stage_word_english");
const FIXTURE_SKIP = needFixtures("2stage_word_english/consolidated.pth", "2stage_word_english/params.json");

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "aunet-interop-"));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let tmpCount = 0;
const tmp = (name: string) => path.join(tmpRoot, `${tmpCount++}-${name}`);

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks));
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}

/** A torch-style zip whose data.pkl is `pkl`. */
function torchZip(pkl: Uint8Array, extra: { name: string; data: Uint8Array }[] = []): Uint8Array {
  return concat(
    zipChunks([
      { name: "archive/data.pkl", chunks: [pkl] },
      ...extra.map((e) => ({ name: e.name, chunks: [e.data] })),
      { name: "archive/version", chunks: [new TextEncoder().encode("3\n")] },
    ]),
  );
}

const bytes = (...parts: (string | number[])[]): Uint8Array =>
  concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "latin1") : Uint8Array.from(p))));

function quiet(): { write(s: string): boolean; text: string } {
  const sink = { text: "", write: (s: string) => ((sink.text += s), true) };
  return sink;
}

describe("reading what torch.save wrote", () => {
  interface Expected {
    dtype: string;
    shape: number[];
    values?: number[];
  }
  const expected = (
    readJsonFile(path.join(DATA, "torch_views.json")) as { tensors: Record<string, Expected> }
  ).tensors;

  for (const file of ["torch_views.pt", "torch_views_p4.pt"]) {
    test(`${file}: every view, dtype and plain value`, () => {
      const ckpt = openTorchCheckpoint(path.join(DATA, file));
      try {
        assert.ok(ckpt.root instanceof Map);
        const root = ckpt.root as Map<string, unknown>;
        const model = root.get("model");
        assert.ok(model instanceof OrderedDict, "an OrderedDict comes back as OrderedDict");
        for (const [key, want] of Object.entries(expected)) {
          const [group, name] = key.split(".");
          const t = (root.get(group) as Map<string, unknown>).get(name);
          assert.ok(t instanceof TorchTensor, key);
          assert.deepEqual([...t.shape], want.shape, key);
          if (want.values === undefined) {
            assert.equal(t.dtype, "I64");
            assert.throws(() => t.toFloat32(), UserError, "an integer tensor is not read as floats");
            continue;
          }
          // Every expected value is exactly representable in float32, so equality is exact.
          assert.deepEqual([...t.toFloat32()], want.values, key);
        }
        const views = ["f32", "f32_t", "f32_slice"].map((n) => (model.get(n) as TorchTensor).storage);
        assert.ok(views[0] === views[1] && views[1] === views[2], "views share one storage object");
        assert.equal((model.get("f32_slice") as TorchTensor).offset, 6);
        assert.equal((model.get("bf16") as TorchTensor).dtype, "BF16");
        assert.equal((model.get("f16") as TorchTensor).dtype, "F16");

        const meta = root.get("meta") as Map<string, unknown>;
        assert.equal(meta.get("step"), 7);
        assert.equal(meta.get("name"), "x");
        assert.equal(meta.get("lr"), 0.5);
        assert.deepEqual(meta.get("flags"), [true, false, null]);
        assert.equal(meta.get("big"), 2n ** 70n);
        assert.equal(meta.get("neg"), -5);
        assert.deepEqual([...(meta.get("tuple") as unknown[])], [1, "a"]);
        assert.ok(Object.isFrozen(meta.get("tuple")), "tuples are frozen arrays");
        assert.deepEqual([...(meta.get("bytes") as Uint8Array)], [0, 255]);
      } finally {
        ckpt.close();
      }
    });
  }

  test("the legacy (pre-1.6) format is refused with a clear message", () => {
    assert.throws(
      () => openTorchCheckpoint(path.join(DATA, "torch_legacy.pt")),
      (e: unknown) => {
        assert.ok(e instanceof UserError);
        assert.match(e.message, /legacy .*not supported/);
        return true;
      },
    );
  });
});

describe("the official consolidated checkpoint", { skip: FIXTURE_SKIP }, () => {
  test("every tensor equals model.safetensors bit for bit", () => {
    const st = readSafetensors(path.join(FIXTURE, "model.safetensors"));
    const ckpt = openTorchCheckpoint(path.join(FIXTURE, "consolidated.pth"));
    try {
      const model = (ckpt.root as Map<string, unknown>).get("model") as Map<string, TorchTensor>;
      assert.deepEqual([...model.keys()].sort(), st.names().sort());
      for (const [name, t] of model) {
        assert.deepEqual([...t.shape], [...st.entry(name).shape], name);
        assert.ok(sameBits(t.toFloat32(), st.getFloat32(name)), name);
      }
      // The optimizer half parses into plain values too.
      const optim = (ckpt.root as Map<string, unknown>).get("optim") as Map<string, unknown>;
      const groups = optim.get("param_groups") as Map<string, unknown>[];
      assert.equal(groups[0].get("fused"), true);
      assert.equal((groups[0].get("params") as string[]).length, model.size);
    } finally {
      ckpt.close();
    }
  });

  test("the converted model reproduces the fixture's logits", () => {
    const { config, weights, ignored } = readLinguaDir(FIXTURE);
    assert.deepEqual(ignored, []);
    const fixtureConfig = loadConfigFromDir(FIXTURE);
    assert.deepEqual(config, fixtureConfig);
    const inputs = readJsonFile(path.join(FIXTURE, "inputs.json")) as {
      tokens: number[][];
      level_mask: number[][];
    };
    const B = inputs.tokens.length;
    const S = inputs.tokens[0].length;
    const tokens = Int32Array.from(inputs.tokens.flat());
    const levels = Int32Array.from(inputs.level_mask.flat());
    const model = new AUNet(config.model, defaultBackend(), weights);
    const logits = noGrad(() => model.forward(tokens, levels, B, S, { padToCap: true }).logits.toFloat32());
    const want = readSafetensors(path.join(FIXTURE, "expected.safetensors")).getFloat32("logits");
    assert.equal(logits.length, want.length);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(logits[i] - want[i]));
    assert.ok(worst <= 1e-4, `max |logits - expected| = ${worst}`);
  });
});

describe("refusing pickles that reach for code", () => {
  const disallowed = (e: unknown, name: string) => {
    assert.ok(e instanceof UserError, `a UserError, got ${String(e)}`);
    assert.match(e.message, new RegExp(`'${name.replace(".", "\\.")}', which is not allowed`));
    return true;
  };
  // What Python's pickle.dumps(obj, protocol=2) emits for an object whose __reduce__ returns (os.system, (cmd,)).
  const osSystem = bytes(
    [0x80, 2],
    "cposix\nsystem\nq\x00X\x0c\x00\x00\x00touch /pwned",
    [0x85],
    "q\x01Rq\x02.",
  );
  const evalCall = bytes([0x80, 2], "cbuiltins\neval\nX\x0a\x00\x00\x00__import__", [0x85], "R.");
  const stackGlobal = bytes(
    [0x80, 4, 0x8c, 2],
    "os",
    [0x8c, 6],
    "system",
    [0x93, 0x8c, 2],
    "id",
    [0x85],
    "R.",
  );
  const hidden = bytes([0x80, 2], "}(X\x05\x00\x00\x00modelcsubprocess\nrun\n)Ru.");

  test("GLOBAL os/posix system + REDUCE, at the top level of the pickle and in a checkpoint", () => {
    assert.throws(
      () => parseTorchCheckpoint(torchZip(osSystem)),
      (e) => disallowed(e, "posix.system"),
    );
    const osGlobal = bytes([0x80, 2], "cos\nsystem\nX\x02\x00\x00\x00id", [0x85], "R.");
    assert.throws(
      () => parseTorchCheckpoint(torchZip(osGlobal)),
      (e) => disallowed(e, "os.system"),
    );
    assert.ok(!fs.existsSync("/pwned"));
  });
  test("builtins.eval", () => {
    assert.throws(
      () => parseTorchCheckpoint(torchZip(evalCall)),
      (e) => disallowed(e, "builtins.eval"),
    );
  });
  test("STACK_GLOBAL (protocol 4) and a global nested in a dict", () => {
    assert.throws(
      () => parseTorchCheckpoint(torchZip(stackGlobal)),
      (e) => disallowed(e, "os.system"),
    );
    assert.throws(
      () => parseTorchCheckpoint(torchZip(hidden)),
      (e) => disallowed(e, "subprocess.run"),
    );
  });
  test("opcodes that instantiate classes (INST, OBJ) and calling an allowed non-function", () => {
    const inst = bytes([0x80, 2], "(X\x02\x00\x00\x00idios\nsystem\n.");
    assert.throws(() => parseTorchCheckpoint(torchZip(inst)), /opcode INST is not supported/);
    const callStorage = bytes([0x80, 2], "ctorch\nFloatStorage\n)R.");
    assert.throws(
      () => parseTorchCheckpoint(torchZip(callStorage)),
      /'torch\.FloatStorage' cannot be called/,
    );
  });
  test("the hooks see every GLOBAL before anything is built", () => {
    const seen: string[] = [];
    const hooks: UnpickleHooks = {
      findGlobal: (m, n) => {
        seen.push(`${m}.${n}`);
        throw new UserError("no");
      },
      persistentLoad: () => null,
      call: () => null,
      build: (o) => o,
    };
    assert.throws(() => unpickle(osSystem, hooks, "x"), UserError);
    assert.deepEqual(seen, ["posix.system"]);
  });
  test("malformed pickles are UserErrors, not crashes", () => {
    for (const bad of [
      bytes([0x80, 2, 0x7d]), // no STOP
      bytes([0x80, 2, 0x68, 5, 0x2e]), // BINGET of an empty memo slot
      bytes([0x80, 2, 0x58, 0xff, 0xff, 0, 0]), // string longer than the data
      bytes([0x80, 2, 0x61, 0x2e]), // APPEND on an empty stack
      bytes([0x80, 2, 0xff]), // unknown opcode
      bytes([0x80, 2, 0x29, 0x28, 0x4b, 1, 0x75, 0x2e]), // SETITEMS on a tuple
    ])
      assert.throws(() => parseTorchCheckpoint(torchZip(bad)), UserError);
  });
});

describe("damaged archives", { skip: FIXTURE_SKIP }, () => {
  const good = new Uint8Array(fs.readFileSync(path.join(FIXTURE, "consolidated.pth")));
  const expectUserError = (buf: Uint8Array, pattern: RegExp) =>
    assert.throws(
      () => {
        const c = parseTorchCheckpoint(buf, "x.pth");
        const model = (c.root as Map<string, unknown>).get("model") as Map<string, TorchTensor>;
        for (const t of model.values()) t.toFloat32();
      },
      (e: unknown) => e instanceof UserError && pattern.test(e.message),
    );

  test("truncated, garbage, a flipped data byte, a missing pickle", () => {
    expectUserError(good.subarray(0, good.length >> 1), /no end-of-central-directory/);
    expectUserError(good.subarray(0, 10), /not a valid zip|only 10 bytes/);
    expectUserError(new Uint8Array(4096).fill(7), /not a PyTorch checkpoint/);
    const flipped = good.slice();
    const zip = new ZipReader(bufferSource(good), "x");
    const entry = zip.get("consolidated/data/0")!;
    const head = new DataView(good.buffer, good.byteOffset + entry.localHeaderOffset);
    flipped[entry.localHeaderOffset + 30 + head.getUint16(26, true) + head.getUint16(28, true) + 100] ^= 1;
    expectUserError(flipped, /fails its CRC check/);
    const noPkl = concat(zipChunks([{ name: "archive/version", chunks: [bytes("3\n")] }]));
    expectUserError(noPkl, /expected one <name>\/data\.pkl/);
  });

  test("a storage the pickle names but the zip lacks, and a view past its storage", () => {
    const w = new PickleWriter();
    w.global("torch._utils", "_rebuild_tensor_v2").mark();
    w.mark()
      .str("storage")
      .global("torch", "FloatStorage")
      .str("0")
      .str("cpu")
      .int(4)
      .op("TUPLE")
      .op("BINPERSID");
    w.int(2).tuple([3]).tuple([1]).bool(false);
    w.global("collections", "OrderedDict").op("EMPTY_TUPLE").op("REDUCE").op("TUPLE").op("REDUCE");
    const pkl = concat(w.finish());
    assert.throws(() => parseTorchCheckpoint(torchZip(pkl)), /runs past storage "0"/);
    const w2 = new PickleWriter();
    w2.global("torch._utils", "_rebuild_tensor_v2").mark();
    w2.mark()
      .str("storage")
      .global("torch", "FloatStorage")
      .str("9")
      .str("cpu")
      .int(4)
      .op("TUPLE")
      .op("BINPERSID");
    w2.int(0).tuple([4]).tuple([1]).bool(false);
    w2.global("collections", "OrderedDict").op("EMPTY_TUPLE").op("REDUCE").op("TUPLE").op("REDUCE");
    const t = parseTorchCheckpoint(torchZip(concat(w2.finish()))).root as TorchTensor;
    assert.throws(() => t.toFloat32(), /storage "9" is missing/);
  });
});

describe("writing torch.save files", () => {
  const values: SaveValue = new Map<string, SaveValue>([
    [
      "model",
      new OrderedDict<SaveValue>([
        ["a", { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, NaN, -0, 1e-40]) }],
        ["scalar", { shape: [], data: Float32Array.from([7]) }],
        ["empty", { shape: [0, 4], data: new Float32Array(0) }],
      ]),
    ],
    [
      "ints",
      [
        0,
        255,
        256,
        65535,
        65536,
        -1,
        -2147483648,
        2147483647,
        2147483648,
        -(2 ** 40),
        2n ** 80n,
        -(2n ** 70n),
      ],
    ],
    [
      "misc",
      new Map<string, SaveValue>([
        ["f", 0.25],
        ["t", true],
        ["n", null],
        ["s", "ünïcødé"],
      ]),
    ],
  ]);

  for (const zip64 of ["auto", "always"] as const) {
    test(`reads back what it writes (zip64 ${zip64}), 64-byte aligned like torch`, () => {
      const buf = concat(serializeTorchSave(values, { zip64 }));
      const zip = new ZipReader(bufferSource(buf), "w");
      assert.deepEqual(
        zip.entries.map((e) => e.name),
        [
          "archive/data.pkl",
          "archive/byteorder",
          "archive/data/0",
          "archive/data/1",
          "archive/data/2",
          "archive/version",
        ],
      );
      for (const e of zip.entries) {
        const dv = new DataView(buf.buffer, buf.byteOffset + e.localHeaderOffset);
        const dataAt = e.localHeaderOffset + 30 + dv.getUint16(26, true) + dv.getUint16(28, true);
        assert.equal(dataAt % 64, 0, `${e.name} data offset ${dataAt}`);
      }
      const c = parseTorchCheckpoint(buf);
      const root = c.root as Map<string, unknown>;
      const model = root.get("model") as OrderedDict<TorchTensor>;
      assert.ok(model instanceof OrderedDict);
      const a = model.get("a")!;
      assert.deepEqual([...a.shape], [2, 3]);
      assert.ok(sameBits(a.toFloat32(), Float32Array.from([1, -2, 3.5, NaN, -0, 1e-40])));
      assert.deepEqual([...model.get("scalar")!.toFloat32()], [7]);
      assert.equal(model.get("empty")!.toFloat32().length, 0);
      assert.deepEqual(root.get("ints"), values.get("ints"));
      assert.deepEqual(root.get("misc"), values.get("misc"));
    });
  }

  test("crc32 agrees with the standard check value", () => {
    assert.equal(crc32(bytes("123456789")), 0xcbf43926);
  });
});

describe("lingua directories and aunet convert", { skip: FIXTURE_SKIP }, () => {
  const fixtureWeights = () => loadModelDir(FIXTURE).weights;

  test("aunet -> lingua -> aunet is bit-exact and keeps the config", async () => {
    const lingua = tmp("lingua");
    const back = tmp("aunet");
    const out = quiet();
    // The fixture directory holds both layouts, so the source format is named.
    assert.equal(await convertCommand([FIXTURE, lingua, "--from", "aunet"], { stdout: out }), 0);
    assert.match(out.text, /\(aunet\) -> .* \(lingua\): 35 tensors/);
    assert.ok(fs.existsSync(path.join(lingua, "consolidated.pth")));
    const params = readJsonFile(path.join(lingua, "params.json")) as Record<string, Record<string, unknown>>;
    const official = readJsonFile(path.join(FIXTURE, "params.json")) as Record<
      string,
      Record<string, unknown>
    >;
    assert.deepEqual(
      Object.keys(params),
      Object.keys(official),
      "every TrainArgs section, in lingua's order",
    );
    assert.deepEqual(params.model, official.model);
    assert.deepEqual((params.data as Record<string, unknown>).regex, official.data.regex);
    assert.equal(await convertCommand([lingua, back], { stdout: quiet() }), 0);
    const a = fixtureWeights();
    const b = loadModelDir(back).weights;
    assert.deepEqual([...b.keys()], [...a.keys()]);
    for (const [name, w] of a) assert.ok(sameBits(w, b.get(name)!), name);
    assert.deepEqual(loadConfigFromDir(back), loadConfigFromDir(FIXTURE));
    assert.deepEqual(readLinguaDir(lingua).config, loadConfigFromDir(FIXTURE));
  });

  test("aunet -> safetensors (config in its metadata) -> aunet, and --config for a bare file", async () => {
    const file = tmp("model.safetensors");
    const back = tmp("aunet");
    assert.equal(await convertCommand([FIXTURE, file, "--from", "aunet"], { stdout: quiet() }), 0);
    assert.equal(await convertCommand([file, back], { stdout: quiet() }), 0);
    const a = fixtureWeights();
    const b = loadModelDir(back).weights;
    for (const [name, w] of a) assert.ok(sameBits(w, b.get(name)!), name);
    assert.deepEqual(loadConfigFromDir(back), loadConfigFromDir(FIXTURE));

    // The fixture's own model.safetensors has no embedded config but a config beside it; --config overrides.
    const back2 = tmp("aunet");
    const cfg = path.join(FIXTURE, "config.json");
    const st = path.join(FIXTURE, "model.safetensors");
    assert.equal(await convertCommand([st, back2, "--config", cfg], { stdout: quiet() }), 0);
    assert.deepEqual(loadConfigFromDir(back2), loadConfigFromDir(FIXTURE));
    const lonely = tmp("lonely.safetensors");
    fs.copyFileSync(st, lonely);
    await assert.rejects(
      convertCommand([lonely, tmp("x")], { stdout: quiet() }),
      /give its config with --config/,
    );
  });

  test("a bare consolidated.pth with --config, and the official file straight to aunet", async () => {
    const back = tmp("aunet");
    const pth = path.join(FIXTURE, "consolidated.pth");
    const out = quiet();
    assert.equal(
      await convertCommand([pth, back, "--config", path.join(FIXTURE, "params.json")], { stdout: out }),
      0,
    );
    assert.match(out.text, /\(torch\)/);
    const a = fixtureWeights();
    const b = loadModelDir(back).weights;
    for (const [name, w] of a) assert.ok(sameBits(w, b.get(name)!), name);
  });

  test("lingua-yaml carries the model and splitter and leaves the rest to lingua", async () => {
    const yaml = tmp("train.yaml");
    assert.equal(await convertCommand([path.join(FIXTURE, "config.json"), yaml], { stdout: quiet() }), 0);
    const text = fs.readFileSync(yaml, "utf8");
    assert.match(text, /^model:\n {2}dimensions: \[64, 128\]$/m);
    assert.match(text, /^ {2}max_seqlens: \[-1, 64\]$/m);
    assert.match(text, /^ {2}vocab_size: -1$/m);
    assert.match(text, /^ {4}strategy:\n {6}word1: "1@1"$/m);
    assert.match(text, /^ {2}epsilon: 1\.0e-8$/m, "floats keep a dot for YAML 1.1");
    assert.match(text, /Fill in before training: .*data\.root_dir/);
    assert.equal(linguaYaml(loadConfigFromDir(FIXTURE)), linguaYaml(loadConfigFromDir(FIXTURE)));
  });

  test("params.json keeps known training fields from the source and drops foreign ones", () => {
    const config = loadConfigFromDir(FIXTURE);
    const p = linguaParams(config, {
      steps: 123,
      optim: { lr: 0.01, our_own_knob: 1 },
      validation: { every: 5 },
      data: { batch_size: 8, sources: { web: 1.0 } },
      distributed: { model_dtype: "bf16" },
    });
    assert.equal(p.steps, 123);
    assert.equal((p.optim as Record<string, unknown>).lr, 0.01);
    assert.ok(!("our_own_knob" in (p.optim as Record<string, unknown>)));
    assert.ok(!("validation" in p));
    assert.deepEqual((p.data as Record<string, unknown>).sources, { web: 1.0 });
    assert.equal((p.data as Record<string, unknown>).seq_len, 256);
    assert.equal((p.distributed as Record<string, unknown>).model_dtype, "bf16");
    assert.equal((linguaParams(config).distributed as Record<string, unknown>).model_dtype, "fp32");
    assert.deepEqual(parseConfig(p), config);
  });

  test("errors: missing tensors, wrong shapes, bad flags", async () => {
    const dir = tmp("lingua");
    const config = loadConfigFromDir(FIXTURE);
    const w = fixtureWeights();
    writeLinguaDir(dir, config, w);
    const wrong = parseConfig({
      ...(readJsonFile(path.join(FIXTURE, "config.json")) as object),
      model: { ...config.model, dimensions: [64, 96], head_dims: [16, 32] },
    });
    fs.writeFileSync(path.join(dir, "params.json"), JSON.stringify(linguaParams(wrong)));
    assert.throws(() => readLinguaDir(dir), /has shape \[.*\] but the config needs/);
    await assert.rejects(
      convertCommand([FIXTURE, tmp("x"), "--to", "onnx"], { stdout: quiet() }),
      /--to must be one of/,
    );
    await assert.rejects(convertCommand([FIXTURE, tmp("x")], { stdout: quiet() }), /say which with --from/);
    await assert.rejects(
      convertCommand([tmp("nothing"), tmp("x")], { stdout: quiet() }),
      /no such file or directory/,
    );
  });
});
