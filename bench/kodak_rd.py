#!/usr/bin/python3
"""kodak_rd.py - rate-distortion of aec's photo codec against JPEG, WebP, AVIF,
JPEG XL and HEIC on a folder of photos (default ../shared/data/kodak), one run,
side by side.

For every image and setting: file bytes -> bits per pixel, decoded PNG -> PSNR
over RGB (8-bit, peak 255), encode and decode seconds (each tool's own threads
set to 2 where it has the option). Prints a table of mean PSNR interpolated at
0.1 .. 1.0 bpp, BD-rates (Bjontegaard, cubic in log-rate, over the common PSNR
range) against WebP and AVIF, mean times, and writes results.json and an RD
plot (gnuplot, PNG) into --out.

    /usr/bin/python3 bench/kodak_rd.py [--images DIR] [--out DIR] [--aec BIN] [--model FILE]
                                       [--list FILE] [--limit N] [--only a,b] [--grid IMAGE]

Also a grid of crops of one image (--grid, default kodim23.png) with every
codec at about the bytes aec takes at quality 50 (crops.png).

Needs Debian's python3-numpy and python3-pil (scripts/deps.sh --bench installs
them and the codecs). Codecs that are not installed are left out, and said so.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def psnr(a, b):
    d = a.astype(np.float64) - b.astype(np.float64)
    mse = np.mean(d * d)
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def run(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def codecs(args, tmp):
    """name -> (settings, encode(src, setting, out) -> cmd, decode(out, png) -> cmd, ext)"""
    c = {}
    c["aec"] = ([1, 12, 25, 38, 50, 62, 75, 88, 100],
                lambda s, q, o: [args.aec, "compress", s, "-q", str(q), "-o", o, "--model", args.model],
                lambda o, p: [args.aec, "decompress", o, "-o", p, "--model", args.model], "aec")
    if shutil.which("cjpeg"):
        c["jpeg"] = ([10, 20, 30, 45, 60, 75, 85, 92],
                     lambda s, q, o: ["sh", "-c", f"cjpeg -optimize -quality {q} -outfile {o} {s}.ppm"],
                     lambda o, p: ["djpeg", "-outfile", p + ".ppm", o], "jpg")
    if shutil.which("cwebp"):
        c["webp"] = ([5, 15, 30, 45, 60, 75, 85, 95],
                     lambda s, q, o: ["cwebp", "-quiet", "-m", "6", "-q", str(q), s, "-o", o],
                     lambda o, p: ["dwebp", "-quiet", o, "-o", p], "webp")
    if shutil.which("avifenc"):
        c["avif"] = ([60, 50, 42, 36, 30, 24, 18, 12],
                     lambda s, q, o: ["avifenc", "-s", "4", "-j", "2", "--min", str(q), "--max", str(q), s, o],
                     lambda o, p: ["avifdec", "-j", "2", o, p], "avif")
    if shutil.which("cjxl"):
        c["jxl"] = ([0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0],
                    lambda s, q, o: ["cjxl", "-e", "7", "-d", str(9.0 / q), s, o],
                    lambda o, p: ["djxl", o, p], "jxl")
    if shutil.which("heif-enc"):
        c["heic"] = ([5, 15, 25, 35, 50, 65, 80, 90],
                     lambda s, q, o: ["heif-enc", "-q", str(q), s, "-o", o],
                     lambda o, p: ["heif-convert", o, p], "heic")
    return c


def interp_psnr(bpp, ps, at):
    order = np.argsort(bpp)
    b, p = np.array(bpp)[order], np.array(ps)[order]
    if at < b[0] or at > b[-1]:
        return None
    return float(np.interp(at, b, p))


def bd_rate(r1, p1, r2, p2):
    """Bjontegaard delta rate of curve 2 against curve 1, in percent."""
    l1, l2 = np.log(r1), np.log(r2)
    f1, f2 = np.polyfit(p1, l1, 3), np.polyfit(p2, l2, 3)
    lo, hi = max(min(p1), min(p2)), min(max(p1), max(p2))
    if hi <= lo:
        return None
    i1 = np.polyval(np.polyint(f1), hi) - np.polyval(np.polyint(f1), lo)
    i2 = np.polyval(np.polyint(f2), hi) - np.polyval(np.polyint(f2), lo)
    return float((np.exp((i2 - i1) / (hi - lo)) - 1) * 100)


# Fine settings for the equal-bytes search of the crop grid.
FINE = {"aec": list(range(1, 101, 3)), "jpeg": list(range(2, 101, 2)),
        "webp": list(range(0, 101, 2)), "avif": list(range(63, 0, -2)),
        "jxl": [x / 4 for x in range(2, 81)], "heic": list(range(1, 101, 3))}


def crop_grid(src, cs, tmp, out_dir, side=256):
    """Every codec on one image at (about) the bytes aec takes at quality 50:
    for each codec the setting whose file is the largest not above that, a
    side x side crop of each decoded image next to the original, labelled
    with bytes and the whole image's PSNR. Writes crops.png."""
    from PIL import ImageDraw
    img = np.array(Image.open(src).convert("RGB"))
    srcpng = os.path.join(tmp, "g.png")
    Image.fromarray(img).save(srcpng)
    Image.fromarray(img).save(srcpng + ".ppm")

    def trial(name, q):
        settings, enc, dec, ext = cs[name]
        out, png = os.path.join(tmp, "g." + ext), os.path.join(tmp, "gd.png")
        run(enc(srcpng, q, out))
        run(dec(out, png))
        back = np.array(Image.open(png + ".ppm" if name == "jpeg" else png).convert("RGB"))
        return os.path.getsize(out), back

    target, _ = trial("aec", 50)
    tiles = [("original", None, None, img)]
    for name in cs:
        best = None
        for q in FINE.get(name, cs[name][0]):
            try:
                n, back = trial(name, q)
            except subprocess.CalledProcessError:
                continue  # a setting the tool refuses
            if n <= target and (best is None or n > best[0]):
                best = (n, back, q)
        if best:
            tiles.append((name, best[0], psnr(img, best[1]), best[1]))
    h, w = img.shape[:2]
    y0, x0 = (h - side) // 2, (w - side) // 2
    grid = Image.new("RGB", (len(tiles) * (side + 8), side + 40), "white")
    d = ImageDraw.Draw(grid)
    for i, (name, n, p, im) in enumerate(tiles):
        grid.paste(Image.fromarray(im[y0:y0 + side, x0:x0 + side]), (i * (side + 8), 40))
        label = name if n is None else f"{name} {n} B {p:.2f} dB"
        d.text((i * (side + 8) + 4, 12), label, fill="black")
    grid.save(os.path.join(out_dir, "crops.png"))
    print(f"\ncrop grid at <= {target} bytes ({os.path.basename(src)}): " +
          ", ".join(f"{t[0]} {t[1]} B {t[2]:.2f} dB" for t in tiles[1:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", default=os.path.join(ROOT, "..", "shared", "data", "kodak"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "kodak"))
    ap.add_argument("--aec", default=os.path.join(ROOT, "build", "aec"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "photo.safetensors"))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--list", default="", help="only these file names (one per line), e.g. "
                    "bench/heldout-full.txt with --images ../shared/data/cats-full")
    ap.add_argument("--grid-only", action="store_true", help="only the crop grid")
    ap.add_argument("--grid", default="kodim23.png",
                    help="the image of the crop grid at equal bytes ('' for none)")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    if not os.path.isdir(args.images):
        print(f"skip: {args.images} is missing")
        return 0
    files = sorted(f for f in os.listdir(args.images) if f.lower().endswith((".png", ".jpg")))
    if args.list:
        wanted = {l.strip() for l in open(args.list) if l.strip()}
        files = [f for f in files if f in wanted]
    if args.limit:
        files = files[: args.limit]
    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.mkdtemp()
    cs = codecs(args, tmp)
    if args.only:
        cs = {k: v for k, v in cs.items() if k in args.only.split(",")}
    if args.grid_only:
        crop_grid(os.path.join(args.images, args.grid), cs, tmp, args.out)
        shutil.rmtree(tmp)
        return 0
    for missing in {"jpeg", "webp", "avif", "jxl", "heic"} - set(cs):
        if not args.only:
            print(f"note: {missing} tools not installed, left out")
    res = {name: [] for name in cs}  # per setting: mean bpp, psnr, times
    for name, (settings, enc, dec, ext) in cs.items():
        for q in settings:
            bpps, ps, te, td = [], [], [], []
            for f in files:
                src = os.path.join(args.images, f)
                img = np.array(Image.open(src).convert("RGB"))
                srcpng = os.path.join(tmp, "src.png")
                Image.fromarray(img).save(srcpng)
                Image.fromarray(img).save(srcpng + ".ppm")
                out = os.path.join(tmp, "o." + ext)
                png = os.path.join(tmp, "d.png")
                te.append(run(enc(srcpng, q, out)))
                td.append(run(dec(out, png)))
                back = np.array(Image.open(png + ".ppm" if name == "jpeg" else png).convert("RGB"))
                bpps.append(os.path.getsize(out) * 8.0 / (img.shape[0] * img.shape[1]))
                ps.append(psnr(img, back))
            res[name].append({"setting": q, "bpp": float(np.mean(bpps)), "psnr": float(np.mean(ps)),
                              "encode_s": float(np.mean(te)), "decode_s": float(np.mean(td))})
            print(f"{name:5s} {q!s:>5}: {np.mean(bpps):.4f} bpp  {np.mean(ps):.2f} dB  "
                  f"enc {np.mean(te):.3f}s dec {np.mean(td):.3f}s", flush=True)
    at = [0.1, 0.2, 0.3, 0.5, 0.75, 1.0]
    print("\n| codec | " + " | ".join(f"{a} bpp" for a in at) + " | BD-rate vs WebP | vs AVIF | encode s | decode s |")
    print("|---|" + "---|" * (len(at) + 4))
    def curve(n):
        return [r["bpp"] for r in res[n]], [r["psnr"] for r in res[n]]
    summary = {}
    for name in res:
        b, p = curve(name)
        cells = [interp_psnr(b, p, a) for a in at]
        bw = bd_rate(*curve("webp"), b, p) if "webp" in res else None
        ba = bd_rate(*curve("avif"), b, p) if "avif" in res else None
        fmt = lambda v, s="{:.2f}": "–" if v is None else s.format(v)
        print(f"| {name} | " + " | ".join(fmt(c) for c in cells) +
              f" | {fmt(bw, '{:+.1f}%')} | {fmt(ba, '{:+.1f}%')} | "
              f"{np.mean([r['encode_s'] for r in res[name]]):.3f} | {np.mean([r['decode_s'] for r in res[name]]):.3f} |")
        summary[name] = {"points": res[name], "psnr_at": dict(zip(map(str, at), cells)),
                         "bd_rate_vs_webp": bw, "bd_rate_vs_avif": ba}
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump({"images": len(files), "codecs": summary}, fh, indent=1)
    if shutil.which("gnuplot"):
        dat = os.path.join(tmp, "rd")
        plots = []
        for name in res:
            with open(f"{dat}.{name}", "w") as fh:
                for r in sorted(res[name], key=lambda r: r["bpp"]):
                    fh.write(f"{r['bpp']} {r['psnr']}\n")
            plots.append(f"'{dat}.{name}' with linespoints title '{name}'")
        script = (f"set terminal png size 900,600; set output '{os.path.join(args.out, 'rd.png')}';"
                  "set xlabel 'bits per pixel'; set ylabel 'PSNR RGB (dB)'; set grid; set key bottom right;"
                  "set xrange [0:1.2]; set title 'Kodak, mean of %d images';" % len(files) +
                  "plot " + ", ".join(plots))
        subprocess.run(["gnuplot", "-e", script], check=False)
    if args.grid and os.path.exists(os.path.join(args.images, args.grid)):
        crop_grid(os.path.join(args.images, args.grid), cs, tmp, args.out)
    shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
