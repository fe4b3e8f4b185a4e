#!/usr/bin/python3
"""Reconstruction quality on cat photos a model never saw.

    bench/heldout_psnr.py MODEL [--cats DIR] [--skip 10000] [--count 2000]

The shipped models train on the first 10000 files (sorted by path) of
../shared/data/cats; the files after them are never used in training. Prints
mean MSE, PSNR of the mean MSE, and mean per-image PSNR (images at the model's
input size, through the engine: build/bench/aec-anomaly-eval).
"""
import argparse, math

from aecbench import CATS, eval_rows, training_order


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--cats", default=CATS)
    ap.add_argument("--skip", type=int, default=10000)
    ap.add_argument("--count", type=int, default=2000)
    a = ap.parse_args()
    files = training_order(a.cats)[a.skip:a.skip + a.count]
    mses = [float(row[1]) for row in eval_rows(a.model, files)]
    mean = sum(mses) / len(mses)
    per = sum(10 * math.log10(1 / m) for m in mses) / len(mses)
    print(f"{a.model}: {len(mses)} held-out cats (sorted files {a.skip}..{a.skip + len(mses) - 1}): "
          f"MSE {mean:.5f}, PSNR of mean MSE {10 * math.log10(1 / mean):.2f} dB, "
          f"mean per-image PSNR {per:.2f} dB")


if __name__ == "__main__":
    main()
