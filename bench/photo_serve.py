#!/usr/bin/env python3
"""photo_serve.py - photo compression served by aecd against the same work in
process (issue 13's "photo compression served at 1, 4 and 16 connections on
Kodak-size images vs the same in-process").

    bench/photo_serve.py [--images ../shared/data/kodak] [--quality 75]
                         [--connections 1,4,16] [--rounds 2]

In process: build/bench/aec-photo-speed (the library, model loaded once, the
photos already decoded, 2 threads) gives photos per second for compressing and
for decompressing. Served: one aecd on models/ (loopback, a free port, its
defaults: --blas-threads = cores); for each connection count C, C clients
post the Kodak PNGs to /encode?model=photo&quality=Q (each photo ROUNDS
times), then the streams to /decode, each request on a fresh connection.
Reports photos per second and the ratio served / in process (the served
figures include HTTP, PNG decoding of the upload and PNG encoding of the
reply, which the in-process ones do not). Every served stream must equal the
in-process stream byte for byte (they are deterministic): a mismatch fails.
Run it alone on the machine: it measures time.
"""
import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aecbench import start_aecd  # noqa: E402
from soak_mixed import exchange, http  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


async def run_clients(port, jobs, connections):
    """jobs: list of raw requests; C workers take them in order. Returns
    (seconds, replies in job order)."""
    out = [None] * len(jobs)
    nxt = 0

    async def worker():
        nonlocal nxt
        while nxt < len(jobs):
            i = nxt
            nxt += 1
            status, _, body, _ = await exchange(port, jobs[i], "fresh")
            out[i] = (status, body)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - t0, out


def in_process(files, quality):
    exe = os.path.join(ROOT, "build", "bench", "aec-photo-speed")
    r = subprocess.run([exe, os.path.join(ROOT, "models", "photo.safetensors"), str(quality), "2",
                        "2"], input="\n".join(files) + "\n", capture_output=True, text=True,
                       check=True)
    lines = [l for l in r.stdout.splitlines() if l.startswith(("/", ".")) and "\t" in l]
    enc = sum(float(l.split("\t")[3]) for l in lines)
    dec = sum(float(l.split("\t")[4]) for l in lines)
    return len(lines) / enc, len(lines) / dec, r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", default=os.path.join(ROOT, "..", "shared", "data", "kodak"))
    ap.add_argument("--quality", type=int, default=75)
    ap.add_argument("--connections", default="1,4,16")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if not os.path.isdir(args.images):
        print(f"skip: {args.images} is missing")
        return 0
    files = sorted(os.path.join(args.images, f) for f in os.listdir(args.images)
                   if f.endswith(".png"))
    enc_ps, dec_ps, _ = in_process(files, args.quality)
    print(f"in process (aec-photo-speed, 2 threads): {enc_ps:.2f} photos/s compressing, "
          f"{dec_ps:.2f} decompressing")
    tmp = tempfile.mkdtemp()
    p, port = start_aecd(os.path.join(ROOT, "models"), tmp)
    bad = 0
    try:
        pngs = [open(f, "rb").read() for f in files]
        path = f"/encode?model=photo&quality={args.quality}"
        # reference streams: one request each
        _, ref = asyncio.run(run_clients(port, [http("POST", path, "image/png", b) for b in pngs], 1))
        streams = [b for _, b in ref]
        print("| connections | /encode photos/s | served / in process | /decode photos/s | "
              "served / in process |\n|---|---|---|---|---|")
        for c in [int(x) for x in args.connections.split(",")]:
            enc_jobs = [http("POST", path, "image/png", b) for b in pngs] * args.rounds
            dec_jobs = [http("POST", "/decode", "application/x-aec-latent", s)
                        for s in streams] * args.rounds
            te, re_ = asyncio.run(run_clients(port, enc_jobs, c))
            td, rd = asyncio.run(run_clients(port, dec_jobs, c))
            for i, (st, body) in enumerate(re_):
                if st != 200 or body != streams[i % len(streams)]:
                    bad += 1
            bad += sum(1 for st, _ in rd if st != 200)
            e, d = len(enc_jobs) / te, len(dec_jobs) / td
            print(f"| {c} | {e:.2f} | {e / enc_ps:.2f} | {d:.2f} | {d / dec_ps:.2f} |", flush=True)
    finally:
        p.terminate()
        p.wait(30)
    print(f"\n{bad} replies failed or differed from the first stream of their photo")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
