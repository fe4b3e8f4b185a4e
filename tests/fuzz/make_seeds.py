#!/usr/bin/env python3
"""make_seeds.py - writes the seed corpus for fuzz_model_load / fuzz_safetensors.

Small valid aec model files (safetensors: 8-byte LE header length, JSON header
padded with spaces to a multiple of 8, little-endian data), made with the
standard library only. Run from anywhere:

    python3 tests/fuzz/make_seeds.py            # writes tests/fuzz/corpus/model_load/
"""
import json
import os
import random
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "model_load")


def tensor_bytes(dtype, values):
    fmt = {"F32": "f", "F16": "e", "I64": "q"}[dtype]
    return struct.pack("<%d%s" % (len(values), fmt), *values)


def safetensors(tensors, metadata):
    """tensors: {name: (dtype, shape, values)} -> bytes, tensors in name order."""
    header = {"__metadata__": metadata} if metadata else {}
    data = b""
    for name in sorted(tensors):
        dtype, shape, values = tensors[name]
        raw = tensor_bytes(dtype, values)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def params(layers, rng):
    """The nn.Sequential state_dict tensors of a layer list."""
    out = {}
    for i, layer in enumerate(layers):
        t = layer["type"]
        if t == "linear":
            shapes = {"weight": [layer["out"], layer["in"]], "bias": [layer["out"]]}
        elif t == "conv2d":
            k = layer["kernel"]
            shapes = {"weight": [layer["out"], layer["in"], k, k], "bias": [layer["out"]]}
        elif t == "conv_transpose2d":
            k = layer["kernel"]
            shapes = {"weight": [layer["in"], layer["out"], k, k], "bias": [layer["out"]]}
        elif t == "batchnorm":
            f = layer["features"]
            shapes = {s: [f] for s in ("weight", "bias", "running_mean", "running_var")}
            out["%d.num_batches_tracked" % i] = ("I64", [], [3])
        else:
            continue
        for suffix, shape in shapes.items():
            n = 1
            for d in shape:
                n *= d
            vals = [round(rng.uniform(-1, 1), 3) for _ in range(n)]
            if suffix == "running_var":
                vals = [abs(v) + 0.5 for v in vals]
            out["%d.%s" % (i, suffix)] = ("F32", shape, vals)
    return out


def model(layers, c, h, w, latent, rng, dtype="F32", extra_meta=None, extras=None):
    tensors = params(layers, rng)
    if dtype != "F32":
        tensors = {k: (dtype if d == "F32" else d, s, v) for k, (d, s, v) in tensors.items()}
    tensors.update(extras or {})
    meta = {
        "aec.format": "1",
        "aec.layers": json.dumps(layers),
        "aec.latent": str(latent),
        "aec.input": json.dumps({"channels": c, "height": h, "width": w}),
    }
    meta.update(extra_meta or {})
    return safetensors(tensors, meta)


MLP = [{"type": "flatten"}, {"type": "linear", "in": 12, "out": 4}, {"type": "relu"},
       {"type": "batchnorm", "features": 4, "eps": 0.001},
       {"type": "linear", "in": 4, "out": 12}, {"type": "sigmoid"},
       {"type": "unflatten", "shape": [3, 2, 2]}]

CONV = [{"type": "conv2d", "in": 3, "out": 4, "kernel": 3, "stride": 2, "padding": 1},
        {"type": "batchnorm", "features": 4, "eps": 1e-05}, {"type": "relu"},
        {"type": "conv_transpose2d", "in": 4, "out": 3, "kernel": 3, "stride": 2,
         "padding": 1, "output_padding": 1},
        {"type": "sigmoid"}]

GRAY = [{"type": "conv2d", "in": 1, "out": 2, "kernel": 1}, {"type": "relu"},
        {"type": "conv2d", "in": 2, "out": 1, "kernel": 1}, {"type": "sigmoid"}]


def main():
    rng = random.Random(1234)
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "mlp.safetensors": model(MLP, 3, 2, 2, 2, rng),
        "conv.safetensors": model(CONV, 3, 4, 4, 2, rng),
        "conv_f16.safetensors": model(
            CONV, 3, 4, 4, 2, rng, dtype="F16",
            extra_meta={"aec.anomaly": json.dumps({"factor": 4, "threshold": 1.5}),
                        "aec.train": json.dumps({"epochs": 1}),
                        "aec.codec": json.dumps({"bits": 8})},
            extras={"aec.stats": ("F16", [2, 2], [0.5, -1.0, 2.0, 0.25])}),
        "gray.safetensors": model(GRAY, 1, 3, 3, 1, rng),
    }
    for name, data in seeds.items():
        assert len(data) < 20000, name
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print("%s: %d bytes" % (name, len(data)))


if __name__ == "__main__":
    main()
