#!/usr/bin/python3
"""Write safetensors fixtures by hand (struct + json) from torch tensors.

Debian has no safetensors Python package, so this follows the format
description and the reference implementation's serializer
(safetensors/src/tensor.rs): tensors sorted by decreasing dtype size, then
name; compact JSON with "__metadata__" first and keys dtype, shape,
data_offsets; header padded with spaces to a multiple of 8. Go's Write must
reproduce canonical.safetensors byte for byte.

noncanonical.safetensors holds the same tensors laid out differently
(reverse order, indented JSON, metadata last, no padding), which readers
must accept.

expected.json gives each tensor's dtype, shape and values (floats widened
to float64, exactly; infinities as the strings "inf" and "-inf") for the Go
test.

Run from this directory:  /usr/bin/python3 gen.py
"""
import json
import struct
import torch

SIZES = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I16": 2, "U8": 1, "I8": 1, "BOOL": 1}
FLOAT = {"F64", "F32", "F16", "BF16"}


def tensors():
    g = torch.Generator().manual_seed(7)
    return {
        "rnn.weight_ih_l0": ("F32", torch.randn(4, 3, generator=g, dtype=torch.float32)),
        "rnn.bias_ih_l0": ("F32", torch.randn(4, generator=g, dtype=torch.float32)),
        "embedding.weight": ("F16", (torch.randn(3, 2, generator=g) * 100).to(torch.float16)),
        # Subnormal, infinite and extreme half values.
        "half.specials": ("F16", torch.tensor([6e-8, -6.1e-5, 65504.0, float("inf"), float("-inf"), -0.0],
                                              dtype=torch.float16)),
        "head.weight": ("BF16", torch.randn(2, 2, generator=g).to(torch.bfloat16)),
        "double": ("F64", torch.tensor([1 / 3, -2.5e-300], dtype=torch.float64)),
        "step": ("I64", torch.tensor(123456789012, dtype=torch.int64)),  # a scalar: shape []
        "mask": ("BOOL", torch.tensor([True, False, True])),
        "tokens": ("U8", torch.tensor([0, 7, 255], dtype=torch.uint8)),
        "empty": ("F32", torch.zeros(0, 3, dtype=torch.float32)),
    }


def raw(dtype, t):
    flat = t.reshape(-1)
    if dtype in ("F16", "BF16"):
        return struct.pack("<%dh" % flat.numel(), *flat.view(torch.int16).tolist())
    fmt = {"F64": "d", "F32": "f", "I64": "q", "U8": "B", "BOOL": "?"}[dtype]
    return struct.pack("<%d%s" % (flat.numel(), fmt), *flat.tolist())


def encode(ts, metadata, order, indent=None, metadata_first=True, pad=True):
    header, data, off = {}, b"", 0
    if metadata_first:
        header["__metadata__"] = metadata
    for name in order:
        dtype, t = ts[name]
        b = raw(dtype, t)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        data += b
        off += len(b)
    if not metadata_first:
        header["__metadata__"] = metadata
    sep = (",", ":") if indent is None else (", ", ": ")
    h = json.dumps(header, indent=indent, separators=sep, ensure_ascii=False).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def main():
    ts = tensors()
    metadata = {"format": "pt", "source": "gen.py <recur & co>", "ünïcode": "✓"}
    canonical = sorted(ts, key=lambda n: (-SIZES[ts[n][0]], n))
    with open("canonical.safetensors", "wb") as f:
        f.write(encode(ts, metadata, canonical))
    with open("noncanonical.safetensors", "wb") as f:
        f.write(encode(ts, metadata, list(reversed(canonical)), indent=2, metadata_first=False, pad=False))
    expected = {"metadata": metadata, "tensors": {}}
    for name, (dtype, t) in ts.items():
        vals = t.reshape(-1)
        if dtype in FLOAT:  # JSON has no infinities: write those as strings
            vals = [x if abs(x) != float("inf") else str(x) for x in vals.to(torch.float64).tolist()]
        else:
            vals = [int(x) for x in vals.tolist()]
        expected["tensors"][name] = {"dtype": dtype, "shape": list(t.shape), "values": vals}
    with open("expected.json", "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
