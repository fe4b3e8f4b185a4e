#!/usr/bin/python3
"""photo_bias.py - how much of the photo codec's error a per-image colour
correction would remove (a measurement for the next codec tool, not a tool).

For each photo: `aec compress -q Q` then `aec decompress`, and the error of
the decoded image against the source split into what a per-channel offset
(c) and a per-channel gain and offset (k x + c, least squares, 6 numbers per
image, about 12 bytes in a stream) would take away. Reports the mean share
of the MSE and the mean PSNR gain each would give.

  /usr/bin/python3 bench/photo_bias.py [--images ../shared/data/cats-full]
      [--list bench/heldout-full.txt] [--limit 24] [--quality 50]

Never run it on Kodak to choose anything: the held-out cats are for that.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", default=os.path.join(ROOT, "..", "shared", "data", "cats-full"))
    ap.add_argument("--list", default=os.path.join(ROOT, "bench", "heldout-full.txt"))
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--quality", type=int, default=50)
    ap.add_argument("--aec", default=os.path.join(ROOT, "build", "aec"))
    a = ap.parse_args()
    if not os.path.isdir(a.images):
        sys.exit(f"skipping: {a.images} is missing")
    names = [l.strip() for l in open(a.list) if l.strip() and not l.startswith("#")][: a.limit]
    tmp = tempfile.mkdtemp()
    src, stream, out = (os.path.join(tmp, n) for n in ("in.png", "s.aec", "out.png"))
    share_off, gain_off, gain_lin, bpp = [], [], [], []
    for n in names:
        Image.open(os.path.join(a.images, n)).convert("RGB").save(src)
        subprocess.run([a.aec, "compress", src, "-q", str(a.quality), "-o", stream],
                       check=True, capture_output=True)
        subprocess.run([a.aec, "decompress", stream, "-o", out], check=True, capture_output=True)
        x = np.asarray(Image.open(src), dtype=np.float64)
        y = np.asarray(Image.open(out).convert("RGB"), dtype=np.float64)
        err = y - x
        mse = (err ** 2).mean()
        bias = err.mean((0, 1))
        lin = 0.0
        for ch in range(3):
            A = np.stack([y[..., ch].ravel(), np.ones(y[..., ch].size)], 1)
            coef = np.linalg.lstsq(A, x[..., ch].ravel(), rcond=None)[0]
            lin += ((A @ coef - x[..., ch].ravel()) ** 2).mean() / 3
        share_off.append((bias ** 2).mean() / mse)
        gain_off.append(10 * np.log10(mse / (mse - (bias ** 2).mean())))
        gain_lin.append(10 * np.log10(mse / lin))
        bpp.append(os.path.getsize(stream) * 8 / (x.shape[0] * x.shape[1]))
    print(f"{len(names)} photos of {a.images} at quality {a.quality} ({np.mean(bpp):.3f} bpp): "
          f"offset share of MSE mean {np.mean(share_off):.3f} (max {np.max(share_off):.3f}); "
          f"PSNR gain: per-channel offset {np.mean(gain_off):.2f} dB, per-channel gain and "
          f"offset {np.mean(gain_lin):.2f} dB")


if __name__ == "__main__":
    main()
