#!/usr/bin/python3
"""Anomaly detection quality: AUROC of held-out cats against non-cat pictures.

    bench/anomaly_auroc.py MODEL [--cats DIR] [--skip N] [--count N]

Normal: cat photos never used in training (by default the files after the
first 10000 in sorted order, which the shipped model never saw). Anomalies,
by group: ../shared/data/other (photos), Debian's mate-backgrounds and
gnome-backgrounds (landscapes, flowers, smooth abstract wallpapers) and 500
Fashion-MNIST images (Debian's dataset-fashion-mnist). Scores come from
build/aec-anomaly-eval, i.e. the engine's own code. AUROC is the probability
that a random anomaly scores higher than a random normal image (0.5 = chance).
"""
import argparse, gzip, os, tempfile, zlib, struct

from aecbench import CATS, ROOT, eval_rows, training_order


def auroc(neg, pos):
    # Mann-Whitney U with ties counted half
    allv = sorted([(v, 0) for v in neg] + [(v, 1) for v in pos])
    rank_sum, i = 0.0, 0
    while i < len(allv):
        j = i
        while j < len(allv) and allv[j][0] == allv[i][0]:
            j += 1
        r = (i + j + 1) / 2.0
        rank_sum += r * sum(1 for k in range(i, j) if allv[k][1] == 1)
        i = j
    n1, n0 = len(pos), len(neg)
    return (rank_sum - n1 * (n1 + 1) / 2.0) / (n0 * n1)


def png_gray(path, w, h, data):
    raw = b"".join(b"\x00" + data[y * w:(y + 1) * w] for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def fashion(tmp, n):
    src = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
    if not os.path.exists(src):
        return []
    d = gzip.open(src).read()
    out = []
    for i in range(n):
        p = os.path.join(tmp, f"fashion_{i:04d}.png")
        png_gray(p, 28, 28, d[16 + i * 784:16 + (i + 1) * 784])
        out.append(p)
    return out


def files_under(d, exts=(".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tga")):
    out = []
    for dp, _, fs in os.walk(d):
        out += [os.path.join(dp, f) for f in fs if f.lower().endswith(exts)]
    return sorted(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--cats", default=CATS)
    ap.add_argument("--skip", type=int, default=10000)
    ap.add_argument("--count", type=int, default=1000)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    cats = training_order(a.cats)[a.skip:a.skip + a.count]
    groups = {
        "photos (shared/data/other)": files_under(os.path.join(ROOT, "..", "shared", "data", "other")),
        "landscapes & flowers (mate-backgrounds nature)": files_under("/usr/share/backgrounds/mate/nature"),
        "smooth abstract wallpapers (mate, gnome)": files_under("/usr/share/backgrounds/mate/abstract")
        + files_under("/usr/share/backgrounds/mate/desktop") + files_under("/usr/share/backgrounds/gnome"),
        "Fashion-MNIST (500)": fashion(tmp, 500),
    }
    everything = cats + [p for g in groups.values() for p in g]
    rows = {}
    for p, mse, base, score, b2, b8 in eval_rows(a.model, everything):
        mse, base, b2, b8 = float(mse), float(base), float(b2), float(b8)
        rows[p] = {"raw MSE": mse, "ratio MSE / blur-x4 MSE": (mse + 1e-4) / (base + 1e-4),
                   "aec score (Mahalanobis, shipped)": float(score)}
    metrics = list(next(iter(rows.values())).keys())
    neg = [rows[p] for p in cats if p in rows]
    print(f"model: {a.model}; normal: {len(neg)} held-out cats (sorted files {a.skip}..{a.skip + a.count - 1})")
    print("| anomalies | n | " + " | ".join(metrics) + " |")
    print("|---|---|" + "---|" * len(metrics))
    allpos = []
    for g, paths in groups.items():
        pos = [rows[p] for p in paths if p in rows]
        if not pos:
            continue
        allpos += pos
        print(f"| {g} | {len(pos)} | " + " | ".join(
            f"{auroc([r[m] for r in neg], [r[m] for r in pos]):.3f}" for m in metrics) + " |")
    print(f"| all | {len(allpos)} | " + " | ".join(
        f"{auroc([r[m] for r in neg], [r[m] for r in allpos]):.3f}" for m in metrics) + " |")
    print(f"command: bench/anomaly_auroc.py {a.model}")


if __name__ == "__main__":
    main()
