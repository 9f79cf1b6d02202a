"""Checks, with real PyTorch, that what `aunet convert --to lingua` writes is what lingua loads.

lingua reads a consolidated directory with torch.load(consolidated.pth, weights_only=True)["model"] followed by a
strict load_state_dict, and takes model/data/distributed settings from params.json
(apps/aunet/generate.py: load_consolidated_model_and_tokenizer). This script converts the shared fixture
2stage_word_english with the built CLI (plain and with ZIP64 records forced), loads the results with
weights_only=True, and compares every tensor bit for bit with the fixture's model.safetensors (parsed here
by hand) and the key order with the official consolidated.pth. It also checks the archive with Python's zipfile
(CRCs, 64-byte alignment), lists the pickle's opcodes and globals, and loads the generated training YAML with
PyYAML against lingua's TrainArgs layout.

Run from the repository root after `npx tsc -p tsconfig.json`, with Debian's python3-torch (CI never runs it):
    /usr/bin/python3 test/data/verify_torch_load.py [SHARED_DIR]
The output is kept in test/data/torch-load-evidence.txt.
"""

import json
import os
import pickletools
import shlex
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections import OrderedDict

import torch
import yaml

SHARED = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AUNET_SHARED", "../shared")
FIXTURE = os.path.join(SHARED, "fixtures", "2stage_word_english")
CLI = ["node", "dist/src/cli/main.js"]


def run(cmd):
    print("$ " + shlex.join(cmd))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    for line in (out.stdout + out.stderr).strip().splitlines():
        print("  " + line)


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", name
        b, e = info["data_offsets"]
        data = bytearray(buf[8 + n + b : 8 + n + e])
        out[name] = torch.frombuffer(data, dtype=torch.float32).reshape(info["shape"])
    return out


def bits(t):
    return t.contiguous().view(torch.int32)


def check_pth(path, reference, official_order):
    print(f"torch.load({path!r}, weights_only=True)")
    obj = torch.load(path, weights_only=True)
    assert isinstance(obj, dict) and list(obj.keys()) == ["model"], obj.keys()
    sd = obj["model"]
    assert type(sd) is OrderedDict, type(sd)
    assert list(sd.keys()) == official_order, "key order differs from the official state dict"
    for name, t in sd.items():
        ref = reference[name]
        assert t.dtype == torch.float32 and not t.requires_grad, name
        assert tuple(t.shape) == tuple(ref.shape), (name, t.shape, ref.shape)
        assert t.is_contiguous() and t.storage_offset() == 0, name
        assert torch.equal(bits(t), bits(ref)), name
    print(f"  OK: {len(sd)} tensors, {sum(t.numel() for t in sd.values())} parameters, all bit-identical to model.safetensors, official key order")

    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None, "CRC mismatch"
        names = z.namelist()
        raw = open(path, "rb").read()
        for info in z.infolist():
            nlen, xlen = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
            assert (info.header_offset + 30 + nlen + xlen) % 64 == 0, info.filename
            assert info.compress_type == zipfile.ZIP_STORED
        print(f"  zipfile: {len(names)} records, CRCs OK, every record's data 64-byte aligned; first {names[:3]} last {names[-2:]}")
        print(f"  version={z.read('archive/version')!r} byteorder={z.read('archive/byteorder')!r}")
        ops, globs = set(), set()
        for op, arg, _ in pickletools.genops(z.read("archive/data.pkl")):
            ops.add(op.name)
            if op.name == "GLOBAL":
                globs.add(arg)
        print(f"  pickle opcodes: {sorted(ops)}")
        print(f"  pickle globals: {sorted(globs)}")


def check_params(path):
    params = json.load(open(path))
    official = json.load(open(os.path.join(FIXTURE, "params.json")))
    assert list(params.keys()) == list(official.keys()), "TrainArgs sections differ"
    assert params["model"] == official["model"], "model section differs"
    assert params["data"]["regex"] == official["data"]["regex"]
    assert params["data"]["tokenizer"]["name"] == "bytes"
    assert params["distributed"]["model_dtype"] in ("fp32", "fp16", "bf16")
    print(f"  params.json: TrainArgs sections {list(params.keys())}; model section equal to the official one; "
          f"tokenizer {params['data']['tokenizer']}, regex {params['data']['regex']}, model_dtype {params['distributed']['model_dtype']}")


def check_yaml(path):
    cfg = yaml.safe_load(open(path))
    schema = json.load(open(os.path.join(FIXTURE, "params.json")))

    def walk(node, ref, where):
        for k, v in node.items():
            assert k in ref, f"{where}{k} is not a TrainArgs field"
            if isinstance(v, dict) and isinstance(ref[k], dict) and where + k not in ("data.sources", "data.regex.strategy"):
                walk(v, ref[k], f"{where}{k}.")
            if isinstance(ref[k], float) and v is not None:
                assert isinstance(v, (int, float)), f"{where}{k} parsed as {type(v).__name__}"

    walk(cfg, schema, "")
    assert cfg["model"]["max_seqlens"][0] == -1 and cfg["model"]["vocab_size"] == -1
    assert cfg["model"]["dimensions"] == schema["model"]["dimensions"]
    assert cfg["data"]["regex"] == schema["data"]["regex"]
    print(f"  yaml: every key is a TrainArgs field, numbers parse as numbers (optim.epsilon={cfg['optim']['epsilon']!r}), "
          f"max_seqlens={cfg['model']['max_seqlens']}, strategy={cfg['data']['regex']['strategy']}")


def main():
    print(f"torch {torch.__version__}, python {sys.version.split()[0]}, PyYAML {yaml.__version__}")
    reference = read_safetensors(os.path.join(FIXTURE, "model.safetensors"))
    # The trusted official file (its optimizer half has floats, which torch 1.13's weights-only loader refuses).
    official_order = list(torch.load(os.path.join(FIXTURE, "consolidated.pth"), weights_only=False)["model"].keys())
    with tempfile.TemporaryDirectory() as tmp:
        lingua = os.path.join(tmp, "lingua")
        run(CLI + ["convert", FIXTURE, lingua, "--from", "aunet", "--to", "lingua"])
        check_pth(os.path.join(lingua, "consolidated.pth"), reference, official_order)
        check_params(os.path.join(lingua, "params.json"))

        zip64 = os.path.join(tmp, "lingua-zip64")
        script = (
            "const [src, dst] = process.argv.slice(1);"
            "const { loadModelDir } = await import('./dist/src/io/model-dir.js');"
            "const { writeLinguaDir } = await import('./dist/src/io/lingua.js');"
            "const { config, weights } = loadModelDir(src);"
            "writeLinguaDir(dst, config, weights, undefined, { zip64: 'always' });"
        )
        run(["node", "--input-type=module", "-e", script, FIXTURE, zip64])
        check_pth(os.path.join(zip64, "consolidated.pth"), reference, official_order)

        back = os.path.join(tmp, "back")
        run(CLI + ["convert", lingua, back])
        roundtrip = read_safetensors(os.path.join(back, "model.safetensors"))
        assert all(torch.equal(bits(roundtrip[k]), bits(reference[k])) for k in reference)
        print("  aunet -> lingua -> aunet: every tensor bit-identical")

        values = os.path.join(tmp, "values.pth")
        script = (
            "const { serializeTorchSave, OrderedDict } = await import('./dist/src/io/torch-pickle.js');"
            "const { writeFileAtomic } = await import('./dist/src/io/atomic.js');"
            "const ints = [0, 255, 256, 65535, 65536, -1, -2147483648, 2147483647, 2147483648, -(2 ** 40), 2n ** 80n, -(2n ** 70n)];"
            "const t = { shape: [2, 0, 3], data: new Float32Array(0) };"
            "const root = new Map([['model', new OrderedDict([['empty', t], ['scalar', { shape: [], data: Float32Array.of(-0) }]])],"
            " ['ints', ints], ['text', 'caf\\u00e9 \\u{1F600}'], ['flags', [true, false, null]], ['nested', new Map([[1, 'one'], ['k', []]])]]);"
            "writeFileAtomic(process.argv[1], serializeTorchSave(root));"
        )
        run(["node", "--input-type=module", "-e", script, values])
        obj = torch.load(values, weights_only=True)
        want_ints = [0, 255, 256, 65535, 65536, -1, -(2**31), 2**31 - 1, 2**31, -(2**40), 2**80, -(2**70)]
        assert obj["ints"] == want_ints, obj["ints"]
        assert obj["text"] == "caf\u00e9 \U0001F600" and obj["flags"] == [True, False, None]
        assert obj["nested"] == {1: "one", "k": []}
        assert tuple(obj["model"]["empty"].shape) == (2, 0, 3)
        s = obj["model"]["scalar"]
        assert s.shape == () and s.item() == 0.0 and str(s.item()) == "-0.0"
        print(f"  plain values through weights_only=True: ints {obj['ints']}, text {obj['text']!r}, empty and 0-d tensors OK")

        y = os.path.join(tmp, "train.yaml")
        run(CLI + ["convert", os.path.join(FIXTURE, "config.json"), y])
        check_yaml(y)
    print("ALL CHECKS PASSED")


if __name__ == "__main__":
    main()
