#!/usr/bin/env python3
"""AUROC of /anomaly's scores: held-out cats vs dogs and vs non-cat photos.

Posts every photo, at its own size, to one aecd (loopback, a free port)
serving MODEL, once per score the model lists in /v1/model:
?score=reconstruction, catface, rotation (a model with the rotation
recognizer), combined (the default for uploads whose shorter side is at
least 96 px when the model has the rotation recognizer; every photo here
but a few cats is that large). catface is ranked by its evidence and
rotation by its raw score (their surprises saturate at 1/(n+1) of the
calibration photos, which would make ties). Reports, per group and score kind, AUROC (probability that
an anomaly scores above a normal cat; 0.5 is chance) and the share flagged
anomalous at the model's p99 thresholds.

  normal : cats-full cat.4750-4999 (never trained on by the shipped models,
           never calibrated on: the cat-face part is calibrated on 4500-4749)
  dogs   : ../shared/data/dogs (500)
  photos : 62 non-cat photos from Debian packages (the list below, chosen by
           what they show before any was scored): landscapes, buildings,
           people, objects, animals that are not cats or dogs.

The packages that are not installed by scripts/deps.sh --bench (opencv-doc,
python3-skimage: large, with many dependencies) are fetched with
`apt-get download` and unpacked into --cache, not installed.

  /usr/bin/python3 bench/anomaly_catface.py [--model models/default.safetensors]
  /usr/bin/python3 bench/anomaly_catface.py --latency 40     (request times, quiet machine)
"""
import argparse
import concurrent.futures
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aecbench import start_aecd  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data")

# name of the Debian package -> files in it that are photographs of non-cats
OPENCV = ("aero1.jpg aero3.jpg aloeL.jpg apple.jpg baboon.jpg basketball1.png board.jpg "
          "building.jpg butterfly.jpg ela_original.jpg fruits.jpg graf1.png home.jpg "
          "leuvenA.jpg licenseplate_motion.jpg messi5.jpg orange.jpg rubberwhale1.png "
          "smarties.png squirrel_cls.jpg stuff.jpg text_defocus.jpg box_in_scene.png").split()
SKIMAGE = "brick.png camera.png coins.png grass.png gravel.png moon.png page.png clock_motion.png".split()
PLASMA = ("BytheWater ColdRipple ColorfulCups EveningGlow FallenLeaf Grey Kite OneStandsOut Path "
          "Volna summer_1am").split()


def unpacked(pkg, cache):
    """The root of pkg's files, unpacked from its .deb into cache."""
    root = os.path.join(cache, pkg)
    if os.path.isdir(root):
        return root
    os.makedirs(cache, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=cache)
    subprocess.run(["apt-get", "download", pkg], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
    deb = glob.glob(os.path.join(tmp, "*.deb"))[0]
    subprocess.run(["dpkg-deb", "-x", deb, os.path.join(tmp, "x")], check=True)
    os.rename(os.path.join(tmp, "x"), root)
    shutil.rmtree(tmp)
    return root


def non_cat_photos(cache):
    files = []
    ocv = os.path.join(unpacked("opencv-doc", cache), "usr/share/doc/opencv-doc/examples/data")
    files += [("opencv-doc", os.path.join(ocv, f)) for f in OPENCV]
    ski = os.path.join(unpacked("python3-skimage", cache),
                       "usr/lib/python3/dist-packages/skimage/data")
    files += [("python3-skimage", os.path.join(ski, f)) for f in SKIMAGE]
    for name in PLASMA:  # the largest image of each wallpaper
        imgs = glob.glob(f"/usr/share/wallpapers/{name}/contents/images/*")
        if not imgs:
            sys.exit(f"missing /usr/share/wallpapers/{name}: scripts/deps.sh --bench")
        files.append(("plasma-workspace-wallpapers", max(imgs, key=os.path.getsize)))
    nature = sorted(glob.glob("/usr/share/backgrounds/mate/nature/*"))
    files += [("mate-backgrounds", f) for f in nature]
    files += [("shared/data/other", f) for f in sorted(glob.glob(os.path.join(DATA, "other", "*")))]
    return files


def start_with(model, tmp):
    os.makedirs(os.path.join(tmp, "m"))
    shutil.copy(model, os.path.join(tmp, "m", "default.safetensors"))
    return start_aecd(os.path.join(tmp, "m"), tmp)


def post(port, path, query):
    body = open(path, "rb").read()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/anomaly{query}", data=body,
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def model_scores(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/model", timeout=60) as r:
        return json.loads(r.read())["scores"]


def score_all(port, files, kinds):
    def one(path):
        return {k: post(port, path, "?score=" + k) for k in kinds}
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        return list(ex.map(one, files))


def latency(a):
    """Median seconds per /anomaly request of each score, one at a time."""
    cats = [os.path.join(DATA, "cats-full", f"cat.{i}.jpg") for i in range(4750, 4750 + a.latency)]
    tmp = tempfile.mkdtemp()
    p, port = start_with(a.model, tmp)
    try:
        for f in cats[:3]:
            post(port, f, "")  # warm up
        for kind in model_scores(port):
            t = []
            for f in cats:
                t0 = time.perf_counter()
                post(port, f, "?score=" + kind)
                t.append(time.perf_counter() - t0)
            t.sort()
            print(f"{kind}: median {1000 * t[len(t) // 2]:.1f} ms per request "
                  f"({len(t)} cats-full photos, one at a time)")
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(tmp)


def auroc(neg, pos):
    n = 0.0
    for p in pos:
        for q in neg:
            n += 1.0 if p > q else 0.5 if p == q else 0.0
    return n / (len(pos) * len(neg))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "default.safetensors"))
    ap.add_argument("--cache", default="/var/cache/aec-bench")
    ap.add_argument("--limit", type=int, default=0, help="at most N cats and N dogs")
    ap.add_argument("--latency", type=int, default=0,
                    help="only time N cats one request at a time per score (a quiet machine)")
    a = ap.parse_args()
    if a.latency:
        return latency(a)
    if not os.path.isdir(os.path.join(DATA, "dogs")):
        sys.exit("skipping: ../shared/data/dogs is missing")
    cats = [os.path.join(DATA, "cats-full", f"cat.{i}.jpg") for i in range(4750, 5000)]
    dogs = sorted(glob.glob(os.path.join(DATA, "dogs", "*.jpg")))
    if a.limit:
        cats, dogs = cats[:a.limit], dogs[:a.limit]
    photos = non_cat_photos(a.cache)
    tmp = tempfile.mkdtemp()
    p, port = start_with(a.model, tmp)
    try:
        t0 = time.time()
        kinds = model_scores(port)
        res = {g: score_all(port, [f if isinstance(f, str) else f[1] for f in fs], kinds)
               for g, fs in (("cats", cats), ("dogs", dogs), ("photos", photos))}
        secs = time.time() - t0
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(tmp)

    def scores(group, kind):
        out = []
        for r in res[group]:
            j = r[kind]
            if kind == "catface":  # ranked by the evidence itself (see above)
                out.append((-j["catface"]["evidence"], j["anomalous"]))
            elif kind == "rotation":  # and by the raw score
                out.append((j["rotation"]["raw"], j["anomalous"]))
            else:
                out.append((j["score"], j["anomalous"]))
        return out

    print(f"model {os.path.relpath(a.model, ROOT)}; {len(cats)} held-out cats, {len(dogs)} dogs, "
          f"{len(photos)} non-cat photos ({', '.join(sorted(set(s for s, _ in photos)))}); "
          f"{secs:.0f} s")
    print("| score | AUROC cats vs dogs | AUROC cats vs non-cat photos | cats flagged | dogs flagged | photos flagged |")
    print("|---|---|---|---|---|---|")
    for kind in kinds:
        c, d, ph = scores("cats", kind), scores("dogs", kind), scores("photos", kind)
        cs, ds, ps = [s for s, _ in c], [s for s, _ in d], [s for s, _ in ph]

        def flagged(v):
            f = [x for _, x in v]
            return f"{100.0 * sum(f) / len(f):.1f}%"
        print(f"| {kind} | {auroc(cs, ds):.3f} | {auroc(cs, ps):.3f} | {flagged(c)} | "
              f"{flagged(d)} | {flagged(ph)} |")
    if "--verbose" in sys.argv:
        for (src, f), r in zip(photos, res["photos"]):
            print(src, os.path.basename(f), {k: j["score"] for k, j in r.items()},
                  r[kinds[-1]].get("catface"), r[kinds[-1]].get("rotation"))


if __name__ == "__main__":
    main()
