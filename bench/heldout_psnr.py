#!/usr/bin/python3
"""Reconstruction quality on cat photos a model never saw.

    bench/heldout_psnr.py MODEL [--cats DIR] [--skip 10000] [--count 2000]

The shipped models train on the first 10000 files (sorted by path) of
../shared/data/cats; the files after them are never used in training. Prints
mean MSE, PSNR of the mean MSE, and mean per-image PSNR (images at the model's
input size, through the engine: build/bench/aec-anomaly-eval).
"""
import argparse, math, os, subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--cats", default=os.path.join(ROOT, "..", "shared", "data", "cats"))
    ap.add_argument("--skip", type=int, default=10000)
    ap.add_argument("--count", type=int, default=2000)
    a = ap.parse_args()
    files = []
    for dp, _, fs in os.walk(a.cats):
        files += [os.path.join(dp, f) for f in fs if not f.startswith(".")]
    files = sorted(files)[a.skip:a.skip + a.count]
    out = subprocess.run([os.path.join(ROOT, os.environ.get("AEC_BUILD", "build"), "bench", "aec-anomaly-eval"), a.model, "-"],
                         input="\n".join(files), capture_output=True, text=True, check=True).stdout
    mses = [float(l.split("\t")[1]) for l in out.splitlines()[1:]]
    mean = sum(mses) / len(mses)
    per = sum(10 * math.log10(1 / m) for m in mses) / len(mses)
    print(f"{a.model}: {len(mses)} held-out cats (sorted files {a.skip}..{a.skip + len(mses) - 1}): "
          f"MSE {mean:.5f}, PSNR of mean MSE {10 * math.log10(1 / mean):.2f} dB, "
          f"mean per-image PSNR {per:.2f} dB")


if __name__ == "__main__":
    main()
