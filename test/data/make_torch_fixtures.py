"""Writes the small torch.save files that test/interop.test.ts reads, with real PyTorch, so the TypeScript
reader is tested against torch's own writer (strided views, shared storages, F16/BF16/F64, Parameters, the
_metadata a module's state_dict carries, pickle protocols 2 and 4, the legacy format it must refuse).

Run from the repository root with Debian's python3-torch (CI never runs this; the outputs are committed):
    /usr/bin/python3 test/data/make_torch_fixtures.py
"""

import json
import os
from collections import OrderedDict

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def contents():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) * 0.37 - 2.0
    half = base.to(torch.float16)
    sd = OrderedDict()
    sd["f32"] = base
    sd["f32_t"] = base.t()  # strides (1, 6): not contiguous
    sd["f32_slice"] = base[1:3, ::2]  # storage offset 6, strides (6, 2); shares base's storage
    sd["bf16"] = base.to(torch.bfloat16)
    sd["f16"] = half
    sd["f16_t"] = half.t()  # shares f16's storage
    sd["f64"] = base.double()
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = torch.nn.Parameter(torch.full((2, 2), -1.25))
    sd["expanded"] = torch.tensor([1.0, 2.0, 3.0]).expand(2, 3)  # stride 0
    sd["i64"] = torch.arange(5)
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 2, bias=False).state_dict()  # an OrderedDict with _metadata (BUILD)
    meta = {
        "step": 7,
        "name": "x",
        "lr": 0.5,
        "flags": [True, False, None],
        "big": 2**70,
        "neg": -5,
        "tuple": (1, "a"),
        "bytes": b"\x00\xff",
    }
    return {"model": sd, "module": module, "meta": meta}


def expected(obj):
    out = {}
    for group in ("model", "module"):
        for name, t in obj[group].items():
            if t.dtype == torch.int64:
                out[f"{group}.{name}"] = {"dtype": "I64", "shape": list(t.shape)}
                continue
            out[f"{group}.{name}"] = {
                "dtype": str(t.dtype).replace("torch.", ""),
                "shape": list(t.shape),
                "values": t.detach().double().flatten().tolist(),
            }
    return out


def main():
    obj = contents()
    torch.save(obj, os.path.join(HERE, "torch_views.pt"))
    torch.save(obj, os.path.join(HERE, "torch_views_p4.pt"), pickle_protocol=4)
    torch.save(
        {"model": OrderedDict(w=torch.ones(2))},
        os.path.join(HERE, "torch_legacy.pt"),
        _use_new_zipfile_serialization=False,
    )
    with open(os.path.join(HERE, "torch_views.json"), "w") as f:
        json.dump({"torch": torch.__version__, "tensors": expected(obj)}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
