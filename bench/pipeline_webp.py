#!/usr/bin/python3
"""pipeline_webp.py - the 48x48 codec models against WebP and JPEG at equal
bytes, per thumbnail pipeline (issue 14: "the codec models' bytes and PSNR per
pipeline against WebP and JPEG at equal bytes").

    /usr/bin/python3 bench/pipeline_webp.py [--photos 100] [MODEL...]

Runs build/bench/aec-pipeline-eval on the first --photos held-out full-size
photos of bench/heldout-full.txt (../shared/data/cats-full; never trained on)
with AEC_PIPELINE_DUMP, so that every 48x48 thumbnail of the five pipelines
and every codec model's coded bytes and PSNR on it are known. Then, for each
thumbnail and model, `cwebp -m 6` at the highest quality whose file is not
larger than the model's stream (binary search over -q 0..100; q 0 when none
fits), decoded with dwebp, PSNR against the thumbnail. Prints per pipeline
and model: mean bytes and PSNR of aec, of WebP at <= those bytes, and stb's
JPEG at <= those bytes (from aec-pipeline-eval). Default models:
models/codec-*.safetensors.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULL = os.path.join(ROOT, "..", "shared", "data", "cats-full")


def psnr(a, b):
    d = a.astype(np.float64) - b.astype(np.float64)
    m = np.mean(d * d)
    return 99.0 if m == 0 else 10 * np.log10(255.0 ** 2 / m)


def webp_at(png, budget, tmp):
    """(bytes, psnr) of cwebp -m 6 at the highest quality with bytes <= budget."""
    src = np.array(Image.open(png).convert("RGB"))
    out, back = os.path.join(tmp, "w.webp"), os.path.join(tmp, "w.png")

    def enc(q):
        subprocess.run(["cwebp", "-quiet", "-m", "6", "-q", str(q), png, "-o", out], check=True)
        return os.path.getsize(out)

    lo, hi, best = 0, 100, 0
    while lo <= hi:
        mid = (lo + hi) // 2
        if enc(mid) <= budget:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    n = enc(best)
    subprocess.run(["dwebp", "-quiet", out, "-o", back], check=True)
    return n, psnr(src, np.array(Image.open(back).convert("RGB")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=100)
    ap.add_argument("models", nargs="*")
    args = ap.parse_args()
    if not os.path.isdir(FULL):
        print(f"skip: {FULL} is missing")
        return 0
    models = args.models or sorted(glob.glob(os.path.join(ROOT, "models", "codec-*.safetensors")),
                                   key=lambda p: int(p.split("-")[-1].split(".")[0]))
    tmp = tempfile.mkdtemp()
    names = os.path.join(tmp, "names.txt")
    with open(os.path.join(ROOT, "bench", "heldout-full.txt")) as f, open(names, "w") as g:
        g.write("".join(f.readlines()[: args.photos]))
    env = dict(os.environ, AEC_PIPELINE_DUMP=tmp)
    r = subprocess.run([os.path.join(ROOT, "build", "bench", "aec-pipeline-eval"), FULL, names] +
                       models, env=env, capture_output=True, text=True, check=True)
    jpeg = {}  # (pipe, model) -> "psnr @ bytes" from the C table
    for line in r.stdout.splitlines():
        if line.startswith("| ") and "JPEG" in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            for pipe, cell in zip(["bilinear-128jpeg", "bilinear-full", "box-full",
                                   "lanczos-128jpeg", "lanczos-full"], cells[1:]):
                jpeg[(pipe, cells[0])] = cell.split("(JPEG ")[1].rstrip(")")
    rows = {}
    for line in open(os.path.join(tmp, "codec.tsv")):
        pipe, photo, model, nbytes, p = line.rstrip("\n").split("\t")
        wb, wp = webp_at(os.path.join(tmp, pipe, photo + ".png"), int(nbytes), tmp)
        acc = rows.setdefault((pipe, os.path.basename(model)), [0, 0.0, 0, 0.0, 0])
        for k, v in enumerate((int(nbytes), float(p), wb, wp, 1)):
            acc[k] += v
    print(f"{args.photos} held-out photos (bench/heldout-full.txt), 48x48 thumbnails; mean bytes"
          " and mean per-image PSNR\n")
    print("| pipeline | model | aec | WebP at <= bytes | JPEG (stb) at <= bytes | aec - WebP |")
    print("|---|---|---|---|---|---|")
    for (pipe, model), a in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[1][0])):
        n = a[4]
        print(f"| {pipe} | {model} | {a[1] / n:.2f} dB @ {a[0] / n:.0f} B | {a[3] / n:.2f} dB @ "
              f"{a[2] / n:.0f} B | {jpeg.get((pipe, model), '-')} | {(a[1] - a[3]) / n:+.2f} dB |")
    print(f"\ncommand: bench/pipeline_webp.py --photos {args.photos}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
