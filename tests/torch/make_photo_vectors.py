#!/usr/bin/python3
"""make_photo_vectors.py - PyTorch's answers for the photo codec's layers, the
reference tests/unit/test_photo_torch.c compares the engine with.

    /usr/bin/python3 tests/torch/make_photo_vectors.py   (Debian's python3-torch, python3-numpy)

Reads tests/golden/photo-tiny.safetensors (parameter names and layouts are
PyTorch's: Conv2d weights [out, in, k, k], ConvTranspose2d [in, out, k, k], GDN
beta and gamma stored reparametrized as CompressAI does) and writes
tests/golden/photo-torch.safetensors with:

  x [3, 64, 64]           a fixed smooth image in [0.1, 0.9]
  y [M, 4, 4]             g_a(x), the analysis transform (no gain)
  xhat [3, 64, 64]        g_s(y), the synthesis transform of that y
  gdn.x, gdn.dout [C, 20] random input and output gradient (seed 7)
  gdn.beta [C], gdn.gamma [C, C]   the effective parameters of g_a.1
  gdn.y, gdn.dx, gdn.dbeta, gdn.dgamma      GDN forward and backward
  igdn.y, igdn.dx, igdn.dbeta, igdn.dgamma  inverse GDN, same inputs

(float32 throughout, computed by torch's own kernels). The vectors are
committed, so the test runs without PyTorch; rerun this after changing the
tiny model.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "golden")
PEDESTAL = 2.0 ** -36


def read_st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(b[8 + n + s:8 + n + e], dtype=np.float32)
                                  .reshape(v["shape"]).copy())
    return out, h.get("__metadata__", {})


def write_st(path, tensors, meta):
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k].detach().numpy().astype(np.float32))
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(path + ".tmp", path)


def beta_eff(stored):
    return torch.clamp(stored, min=(1e-6 + PEDESTAL) ** 0.5) ** 2 - PEDESTAL


def gamma_eff(stored):
    return torch.clamp(stored, min=PEDESTAL ** 0.5) ** 2 - PEDESTAL


def gdn(x, beta, gamma, inverse):
    """x [N, C, H, W]: y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2) (inverse: times)."""
    c = x.shape[1]
    norm = torch.sqrt(F.conv2d(x * x, gamma.view(c, c, 1, 1), beta))
    return x * norm if inverse else x / norm


def analysis(P, x):
    h = x
    for i in (0, 2, 4, 6):
        h = F.conv2d(h, P[f"g_a.{i}.weight"], P[f"g_a.{i}.bias"], stride=2, padding=2)
        if i < 6:
            h = gdn(h, beta_eff(P[f"g_a.{i + 1}.beta"]), gamma_eff(P[f"g_a.{i + 1}.gamma"]), False)
    return h


def synthesis(P, y):
    h = y
    for i in (0, 2, 4, 6):
        h = F.conv_transpose2d(h, P[f"g_s.{i}.weight"], P[f"g_s.{i}.bias"], stride=2, padding=2,
                               output_padding=1)
        if i < 6:
            h = gdn(h, beta_eff(P[f"g_s.{i + 1}.beta"]), gamma_eff(P[f"g_s.{i + 1}.gamma"]), True)
    return h


def main():
    torch.set_num_threads(1)
    P, meta = read_st(os.path.join(GOLDEN, "photo-tiny.safetensors"))
    ii, jj = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    x = np.stack([0.5 + 0.4 * np.sin(0.3 * ii + 0.7 * jj + 1.3 * c) for c in range(3)])
    x = torch.from_numpy(x.astype(np.float32))
    with torch.no_grad():
        y = analysis(P, x[None])[0]
        xhat = synthesis(P, y[None])[0]
    out = {"x": x, "y": y, "xhat": xhat}

    rng = np.random.default_rng(7)
    c = P["g_a.1.beta"].shape[0]
    gx = torch.from_numpy(rng.uniform(-2, 2, (c, 20)).astype(np.float32))
    dout = torch.from_numpy(rng.uniform(-1, 1, (c, 20)).astype(np.float32))
    beta = beta_eff(P["g_a.1.beta"]).detach()
    gamma = gamma_eff(P["g_a.1.gamma"]).detach()
    out.update({"gdn.x": gx, "gdn.dout": dout, "gdn.beta": beta, "gdn.gamma": gamma})
    for name, inverse in (("gdn", False), ("igdn", True)):
        xx = gx.clone().requires_grad_(True)
        b = beta.clone().requires_grad_(True)
        g = gamma.clone().requires_grad_(True)
        yy = gdn(xx.view(1, c, 4, 5), b, g, inverse).view(c, 20)
        (yy * dout).sum().backward()
        out.update({f"{name}.y": yy.detach(), f"{name}.dx": xx.grad, f"{name}.dbeta": b.grad,
                    f"{name}.dgamma": g.grad})
    write_st(os.path.join(GOLDEN, "photo-torch.safetensors"), out,
             {"torch": torch.__version__, "source": "tests/torch/make_photo_vectors.py"})
    print("wrote tests/golden/photo-torch.safetensors (torch " + torch.__version__ + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
