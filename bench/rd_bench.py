#!/usr/bin/python3
"""Rate-distortion benchmark: aec's entropy-coded latent against JPEG and WebP.

    bench/rd_bench.py [--images N] [--out PREFIX] [MODEL...]

Every codec starts from the same 8-bit 48x48 pictures: held-out cat photos
(files never used in training: after the first 10,000 of ../shared/data/cats
in the trainer's order) decoded and resized by aec's own loader. For each:
mean bytes per image and mean per-image PSNR (also PSNR of the mean MSE):

  * aec models (default: models/codec-*.safetensors): binary latent v2 from
    build/bench/aec-codec-eval, decoded to 8-bit like /decode's PNG;
  * JPEG: cjpeg -optimize (libjpeg-turbo-progs) at several qualities;
  * WebP: cwebp -m 6 (Debian's webp) at several qualities.

Prints the tables, then the bar of issue 5: at each byte budget from 250 to
1000, our best PSNR against JPEG's (linear interpolation on JPEG's curve).
Writes PREFIX.png (the rate-distortion plot, gnuplot), PREFIX-grid.png (the
same photos from each codec at matched bytes) and PREFIX.md (the tables).
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aecbench import CATS, ROOT, training_order  # noqa: E402

TRAIN_FILES = 10000
JPEG_Q = [5, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95]  # q < 5 is not baseline JPEG
WEBP_Q = [0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95]


def tool():
    return os.path.join(ROOT, os.environ.get("AEC_BUILD", "build"), "bench", "aec-codec-eval")


def load(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0


def psnr(mse):
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-10))


def summarize(name, setting, sizes, mses):
    sizes, mses = np.array(sizes, float), np.array(mses, float)
    return {"codec": name, "setting": setting, "bytes": sizes.mean(),
            "psnr": psnr(mses).mean(), "psnr_of_mean": psnr(mses.mean()),
            "sizes": sizes, "mses": mses}


def run_aec(model, originals, work):
    out = os.path.join(work, "aec-" + os.path.basename(model))
    os.makedirs(out)
    names = sorted(os.listdir(originals))
    res = subprocess.run([tool(), model, out], input="\n".join(
        os.path.join(originals, n) for n in names), capture_output=True, text=True)
    if res.returncode:
        sys.exit("aec-codec-eval failed on %s: %s" % (model, res.stderr))
    sizes, mses = [], []
    for line in res.stdout.splitlines():
        name, size = line.split("\t")
        sizes.append(int(size))
        mses.append(np.mean((load(os.path.join(originals, name)) -
                             load(os.path.join(out, name))) ** 2))
    label = os.path.basename(model).replace(".safetensors", "")
    return summarize("aec", label, sizes, mses), out


def run_classic(kind, q, originals, work, ppms):
    out = os.path.join(work, "%s-q%d" % (kind, q))
    os.makedirs(out)
    sizes, mses = [], []
    for name in sorted(os.listdir(originals)):
        src = os.path.join(originals, name)
        if kind == "jpeg":
            dst = os.path.join(out, name.replace(".png", ".jpg"))
            subprocess.run(["cjpeg", "-optimize", "-quality", str(q), "-outfile", dst,
                            ppms[name]], check=True, stderr=subprocess.DEVNULL)
        else:
            dst = os.path.join(out, name.replace(".png", ".webp"))
            subprocess.run(["cwebp", "-quiet", "-m", "6", "-q", str(q), src, "-o", dst],
                           check=True)
        sizes.append(os.path.getsize(dst))
        mses.append(np.mean((load(src) - load(dst)) ** 2))
    return summarize(kind.upper() if kind == "jpeg" else "WebP", "q%d" % q, sizes, mses), out


def interp(curve, x):
    """PSNR of a codec's curve at x bytes (linear), or None outside its range."""
    pts = sorted((r["bytes"], r["psnr"]) for r in curve)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    if x < xs[0] or x > xs[-1]:
        return None
    return float(np.interp(x, xs, ys))


def frontier(curve):
    """The operating points no other point beats with as few bytes."""
    pts = sorted(curve, key=lambda r: (r["bytes"], -r["psnr"]))
    out = []
    for r in pts:
        if not out or r["psnr"] > out[-1]["psnr"]:
            out.append(r)
    return out


def ours_at(curve, x):
    """Our PSNR at a budget of x bytes: on our frontier (linear between
    operating points) where x lies inside it, else the best point within
    the budget."""
    front = frontier(curve)
    v = interp(front, x)
    if v is not None:
        return v
    fit = [r["psnr"] for r in front if r["bytes"] <= x]
    return max(fit) if fit else None


def table(rows):
    lines = ["| codec | setting | mean bytes | mean PSNR (dB) | PSNR of mean MSE (dB) |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %s | %.1f | %.2f | %.2f |" % (r["codec"], r["setting"], r["bytes"],
                                                          r["psnr"], r["psnr_of_mean"]))
    return "\n".join(lines)


def plot(prefix, curves, work):
    cmds = ["set terminal pngcairo size 900,600 font 'sans,11'",
            "set output '%s.png'" % prefix,
            "set xlabel 'mean bytes per 48x48 image'", "set ylabel 'mean PSNR (dB)'",
            "set grid", "set key bottom right", "set xrange [0:1400]",
            "set title 'Held-out cat photos, 48x48: aec vs JPEG (cjpeg -optimize) vs WebP (cwebp -m 6)'"]
    plots = []
    for name, rows in curves.items():
        f = os.path.join(work, name + ".dat")
        with open(f, "w") as fh:
            for r in sorted(rows, key=lambda r: r["bytes"]):
                fh.write("%f %f\n" % (r["bytes"], r["psnr"]))
        plots.append("'%s' using 1:2 with linespoints lw 2 pt 7 title '%s'" % (f, name))
    cmds.append("plot " + ", ".join(plots))
    subprocess.run(["gnuplot"], input="\n".join(cmds), text=True, check=True)


def grid(prefix, originals, aec_rows, aec_dirs, jpeg_rows, jpeg_dirs, webp_rows, webp_dirs,
         picks=6, scale=3):
    """Rows: photos. Columns: original, then for the smallest, middle and largest aec model:
    aec, then JPEG and WebP at the quality whose bytes for that photo are closest to aec's."""
    if len(aec_rows) > 3:  # three operating points keep the picture readable
        keep = [0, len(aec_rows) // 2, len(aec_rows) - 1]
        aec_rows, aec_dirs = [aec_rows[i] for i in keep], [aec_dirs[i] for i in keep]
    names = sorted(os.listdir(originals))
    chosen = [names[i * len(names) // picks] for i in range(picks)]
    cell, pad, label_h = 48 * scale, 4, 14
    cols = 1 + 3 * len(aec_rows)
    img = Image.new("RGB", (cols * (cell + pad), len(chosen) * (cell + pad + label_h) + 18),
                    "white")
    draw = ImageDraw.Draw(img)
    heads = ["original"] + sum([[r["setting"].replace("codec-", "aec "), "JPEG", "WebP"]
                                for r in aec_rows], [])
    for c, h in enumerate(heads):
        draw.text((c * (cell + pad) + 2, 2), h, fill="black")

    def closest(rows, dirs, k, target):
        best = min(range(len(rows)), key=lambda i: abs(rows[i]["sizes"][k] - target))
        ext = ".jpg" if rows is jpeg_rows else ".webp"
        return (os.path.join(dirs[best], names[k].replace(".png", ext)),
                int(rows[best]["sizes"][k]))

    for row, name in enumerate(chosen):
        k = names.index(name)
        y = 18 + row * (cell + pad + label_h)
        tiles = [(os.path.join(originals, name), "")]
        for r, d in zip(aec_rows, aec_dirs):
            target = int(r["sizes"][k])
            tiles.append((os.path.join(d, name), "%d B" % target))
            for rows, dirs in ((jpeg_rows, jpeg_dirs), (webp_rows, webp_dirs)):
                path, size = closest(rows, dirs, k, target)
                tiles.append((path, "%d B" % size))
        for c, (path, text) in enumerate(tiles):
            tile = Image.open(path).convert("RGB").resize((cell, cell), Image.NEAREST)
            img.paste(tile, (c * (cell + pad), y))
            draw.text((c * (cell + pad) + 2, y + cell), text, fill="black")
    img.save(prefix + "-grid.png")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results-rd"))
    ap.add_argument("models", nargs="*")
    a = ap.parse_args()
    models = a.models or sorted(glob.glob(os.path.join(ROOT, "models", "codec-*.safetensors")))
    if not os.path.isdir(CATS):
        sys.exit("rd_bench: %s is missing (the held-out photos come from there)" % CATS)
    for t in ("cjpeg", "cwebp", "gnuplot"):
        if not shutil.which(t):
            sys.exit("rd_bench: %s not found (scripts/deps.sh --bench installs it)" % t)
    files = training_order(CATS)[TRAIN_FILES:TRAIN_FILES + a.images]
    work = tempfile.mkdtemp(prefix="aec-rd-")
    try:
        originals = os.path.join(work, "originals")
        os.makedirs(originals)
        subprocess.run([tool(), "--originals", "48", originals], input="\n".join(files),
                       text=True, check=True)
        ppms = {}
        for n in sorted(os.listdir(originals)):
            ppms[n] = os.path.join(work, n.replace(".png", ".ppm"))
            Image.open(os.path.join(originals, n)).convert("RGB").save(ppms[n])
        n_img = len(ppms)
        aec = [run_aec(m, originals, work) for m in models]
        jpeg = [run_classic("jpeg", q, originals, work, ppms) for q in JPEG_Q]
        webp = [run_classic("webp", q, originals, work, ppms) for q in WEBP_Q]
        aec_rows = sorted((r for r, _ in aec), key=lambda r: r["bytes"])
        aec_dirs = [d for r, d in sorted(aec, key=lambda t: t[0]["bytes"])]
        rows = aec_rows + [r for r, _ in jpeg] + [r for r, _ in webp]
        cmd = "bench/rd_bench.py --images %d %s" % (a.images, " ".join(
            os.path.relpath(m, ROOT) for m in models))
        out = ["Held-out cat photos: %d (files %d.. of ../shared/data/cats in training order), "
               "48x48 RGB." % (n_img, TRAIN_FILES), "", table(rows), ""]
        out += ["Bar: at each budget, our best PSNR (linear between our best operating points, "
                "or the best model within the budget) vs JPEG's and WebP's (interpolated on "
                "their curves; n/a where a codec cannot reach the budget: baseline JPEG, q >= 5, "
                "needs about 500 bytes at 48x48).", "",
                "| budget (bytes) | aec (dB) | JPEG (dB) | WebP (dB) | aec - JPEG | aec - WebP |",
                "|---|---|---|---|---|---|"]
        worst = None
        for budget in range(250, 1001, 50):
            o, j, w = ours_at(aec_rows, budget), interp([r for r, _ in jpeg], budget), \
                interp([r for r, _ in webp], budget)
            fmt = lambda v: "%.2f" % v if v is not None else "n/a"
            dj = o - j if o is not None and j is not None else None
            dw = o - w if o is not None and w is not None else None
            if dj is not None:
                worst = dj if worst is None else min(worst, dj)
            out.append("| %d | %s | %s | %s | %s | %s |" % (budget, fmt(o), fmt(j), fmt(w),
                       "%+.2f" % dj if dj is not None else "n/a",
                       "%+.2f" % dw if dw is not None else "n/a"))
        out += ["", "Worst margin over JPEG from 250 to 1000 bytes (where JPEG reaches): %s dB"
                % ("%+.2f" % worst if worst is not None else "n/a"), "",
                "Command: `%s`" % cmd]
        text = "\n".join(out)
        print(text)
        with open(a.out + ".md", "w") as fh:
            fh.write(text + "\n")
        plot(a.out, {"aec": frontier(aec_rows), "JPEG": [r for r, _ in jpeg],
                     "WebP": [r for r, _ in webp]}, work)
        grid(a.out, originals, aec_rows, aec_dirs, [r for r, _ in jpeg],
             [d for _, d in jpeg], [r for r, _ in webp], [d for _, d in webp])
        print("wrote %s.md, %s.png, %s-grid.png" % (a.out, a.out, a.out))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
