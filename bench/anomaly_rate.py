#!/usr/bin/env python3
"""The input-complexity test (Serra et al., ICLR 2020) with the photo codec as
the model that knows cats: AUROC of held-out cats vs dogs and vs non-cat
photos for scores built from what models/photo.safetensors (trained on cat
photos only) spends on an image, next to what generic coders (PNG, JPEG)
spend on it. A measurement of an idea, not a shipped score: it measured
far below the cat-face score (models/README.md, "Tried and not shipped").

Every image is resized to 400 px on its longer side (Lanczos), then
compressed by `aec compress` at qualities 30 and 75 (bits per pixel and
PSNR after `aec decompress`), by PIL's JPEG at qualities 50 and 90 and by
PNG (optimize). Same images as bench/anomaly_catface.py (cats-full
cat.4750-4999, ../shared/data/dogs, its 62 non-cat photos). About 30 min on
one core.

  /usr/bin/python3 bench/anomaly_rate.py [--cache /var/cache/aec-bench]
"""
import argparse
import concurrent.futures
import glob
import io
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anomaly_catface import DATA, ROOT, auroc, non_cat_photos  # noqa: E402

AEC = os.path.join(ROOT, "build", "aec")


def psnr(a, b):
    return 10 * math.log10(255.0 ** 2 / max(np.mean((a - b) ** 2), 1e-12))


def features(path):
    im = Image.open(path).convert("RGB")
    s = 400 / max(im.size)
    im = im.resize((max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))), Image.LANCZOS)
    px = im.size[0] * im.size[1]
    a = np.asarray(im).astype(np.float64)
    r = {}
    with tempfile.TemporaryDirectory() as tmp:
        src, aec, back = (os.path.join(tmp, n) for n in ("in.png", "x.aec", "out.png"))
        im.save(src)
        for q in (30, 75):
            subprocess.run([AEC, "compress", src, "-q", str(q), "-o", aec, "--threads", "1"],
                           check=True, stderr=subprocess.DEVNULL)
            subprocess.run([AEC, "decompress", aec, "-o", back, "--threads", "1"], check=True,
                           stderr=subprocess.DEVNULL)
            b = np.asarray(Image.open(back).convert("RGB")).astype(np.float64)
            r[f"aec{q}"] = (os.path.getsize(aec) * 8 / px, psnr(a, b))
    for q in (50, 90):
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q)
        b = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(np.float64)
        r[f"jpg{q}"] = (len(buf.getvalue()) * 8 / px, psnr(a, b))
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=True)
    r["png"] = (len(buf.getvalue()) * 8 / px, 0.0)
    return r


SCORES = {  # higher = more anomalous
    "aec bits (q75)": lambda r: r["aec75"][0],
    "aec bits - PNG bits (Serra's S)": lambda r: r["aec75"][0] - r["png"][0],
    "log(aec q75 / PNG)": lambda r: math.log(r["aec75"][0] / r["png"][0]),
    "log(aec q75 / JPEG q90)": lambda r: math.log(r["aec75"][0] / r["jpg90"][0]),
    "log(aec q30 / JPEG q50)": lambda r: math.log(r["aec30"][0] / r["jpg50"][0]),
    "JPEG q90 PSNR - aec q75 PSNR": lambda r: r["jpg90"][1] - r["aec75"][1],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default="/var/cache/aec-bench")
    a = ap.parse_args()
    if not os.path.isdir(os.path.join(DATA, "dogs")):
        sys.exit("skipping: ../shared/data/dogs is missing")
    if not os.path.exists(AEC):
        sys.exit(f"missing {AEC}: build first")
    groups = {
        "cats": [os.path.join(DATA, "cats-full", f"cat.{i}.jpg") for i in range(4750, 5000)],
        "dogs": sorted(glob.glob(os.path.join(DATA, "dogs", "*.jpg"))),
        "photos": [f for _, f in non_cat_photos(a.cache)],
    }
    res = {}
    with concurrent.futures.ProcessPoolExecutor(1) as ex:
        for g, files in groups.items():
            res[g] = list(ex.map(features, files))
    print("| score | AUROC cats vs dogs | AUROC cats vs non-cat photos |")
    print("|---|---|---|")
    for name, f in SCORES.items():
        c = [f(r) for r in res["cats"]]
        print(f"| {name} | {auroc(c, [f(r) for r in res['dogs']]):.3f} | "
              f"{auroc(c, [f(r) for r in res['photos']]):.3f} |")


if __name__ == "__main__":
    main()
