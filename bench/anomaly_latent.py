#!/usr/bin/python3
"""anomaly_latent.py - a candidate anomaly score, measured and not shipped
(models/README.md): a Gaussian over the default model's 1,728-value latent,
as PaDiM does over a network's features.

The latents come from one local aecd (/encode of each photo at its own size,
as a user would post it). The Gaussian is fitted on one of two sets of cats
the model never trained on: the 800 thumbnails cats/ 10000-10799, or the 250
full-size photos cats-full 4500-4749 (the cat-face part's calibration set).
Scores: squared Mahalanobis distance in the top K principal components, the
residual outside them, and the full covariance with shrinkage. AUROC of the
held-out full-size cats 4750-4999 against the dogs (the first 300) and the
62 non-cat photos of bench/anomaly_catface.py.

    /usr/bin/python3 bench/anomaly_latent.py [--fit thumbnails|photos]
"""
import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
import urllib.request

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aecbench import ROOT, start_aecd  # noqa: E402
from anomaly_catface import DATA, auroc, non_cat_photos  # noqa: E402


def latent(port, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/encode?model=default",
                                 data=open(path, "rb").read(),
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return np.array(json.loads(r.read())["latent"], dtype=np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit", choices=("thumbnails", "photos"), default="photos")
    ap.add_argument("--cache", default="/var/cache/aec-bench")
    a = ap.parse_args()
    if a.fit == "thumbnails":
        fit = [os.path.join(DATA, "cats", f"cat.{i}.jpg") for i in range(10000, 10800)]
    else:
        fit = [os.path.join(DATA, "cats-full", f"cat.{i}.jpg") for i in range(4500, 4750)]
    cats = [os.path.join(DATA, "cats-full", f"cat.{i}.jpg") for i in range(4750, 5000)]
    dogs = sorted(glob.glob(os.path.join(DATA, "dogs", "*.jpg")))[:300]
    photos = [f for _, f in non_cat_photos(a.cache)]
    tmp = tempfile.mkdtemp()
    p, port = start_aecd(os.path.join(ROOT, "models"), tmp)
    try:
        L, C, G, P = (np.array([latent(port, f) for f in s]) for s in (fit, cats, dogs, photos))
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(tmp)
    mu = L.mean(0)
    _, S, Vt = np.linalg.svd(L - mu, full_matrices=False)
    print(f"Gaussian fitted on {len(L)} {a.fit}; {len(C)} held-out cats vs {len(G)} dogs / "
          f"{len(P)} non-cat photos (AUROC)")
    print("| score | vs dogs | vs non-cat photos |\n|---|---|---|")
    for k in (8, 16, 32, 64):
        V, var = Vt[:k], S[:k] ** 2 / (len(L) - 1)

        def md(Z):
            return (((Z - mu) @ V.T) ** 2 / var).sum(1)

        def resid(Z):
            Zc = Z - mu
            return ((Zc - (Zc @ V.T) @ V) ** 2).sum(1)
        print(f"| Mahalanobis, {k} components | {auroc(md(C), md(G)):.3f} | {auroc(md(C), md(P)):.3f} |")
        print(f"| residual outside {k} components | {auroc(resid(C), resid(G)):.3f} | "
              f"{auroc(resid(C), resid(P)):.3f} |")
    for lam in (0.1, 1.0):
        X = L - mu
        cov = X.T @ X / (len(L) - 1)
        cov += lam * np.mean(np.diag(cov)) * np.eye(cov.shape[0])
        Pi = np.linalg.inv(cov)

        def full(Z):
            return np.einsum("ij,jk,ik->i", Z - mu, Pi, Z - mu)
        print(f"| full covariance, shrinkage {lam} | {auroc(full(C), full(G)):.3f} | "
              f"{auroc(full(C), full(P)):.3f} |")


if __name__ == "__main__":
    main()
