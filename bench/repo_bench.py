#!/usr/bin/env python3
"""repo_bench.py - the model repository and the memory budget under load
(issue 13's measurements). Starts its own aecd (loopback, a free port) on a
scratch model folder and runs one of:

  reload  CONNECTIONS clients post /encode?format=binary without pause while
          the default model file is replaced RELOADS times (renamed into
          place), alternating two models, every 10th time with a corrupt
          file, each followed by POST /v1/models/reload. Counts replies that
          failed (not 200) and replies that are neither model's exact answer
          (a mix); checks that every corrupt file was reported failed and
          left the old version serving.
  storm   CONNECTIONS clients for SECONDS: most post a 48x48 PNG, LARGE of
          them a 12 MP (4000x3000) PNG, against --max-memory MEM; a probe
          GETs /healthz every 20 ms. Reports replies by status, /healthz
          latency (p50, p99, max), aecd's peak RSS (VmHWM) against
          --max-memory + --max-buffered, and the budget's own peak.

    bench/repo_bench.py reload [--reloads 100] [--connections 16]
    bench/repo_bench.py storm [--seconds 60] [--connections 64] [--large 4]
                              [--max-memory 1G] [--max-buffered 256M] [--photo]

  With --photo the 12 MP uploads go to the photo codec (models/photo.safetensors,
  /encode?model=photo&quality=50): compressed at their own size, in tiles, each
  reserving aec_photo_memory_bound from --max-memory, instead of being resized
  to 48x48.

Exit 1 when a bar fails (reload: any failed or mixed reply, a corrupt file
not reported; storm: any 5xx, /healthz p99 >= 50 ms, peak RSS above
--max-memory + --max-buffered + 64 MiB). AECD=path picks the binary.
"""
import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak_mixed import exchange, http, png_from_rows, synthetic_png  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def big_png(w, h):
    """A w x h PNG made fast: a smooth base row, shifted per row."""
    base = bytearray()
    for x in range(w + h):
        base += bytes((x * 255 // (w + h), (x * 7) % 256, 128 + (x % 64)))
    rows = b"".join(b"\0" + bytes(base[3 * (y % h):3 * (y % h + w)]) for y in range(h))
    return png_from_rows(w, h, rows)


def start_aecd(folder, extra):
    aecd = os.environ.get("AECD", os.path.join(ROOT, "build", "aecd"))
    pf = os.path.join(folder, "..", "port")
    log = open(os.path.join(folder, "..", "aecd.log"), "w")
    p = subprocess.Popen([aecd, "--models", folder, "--port", "0", "--port-file", pf,
                          "--log-level", "warn"] + extra, stdout=log, stderr=log)
    for _ in range(600):
        if os.path.exists(pf) and open(pf).read().strip():
            return p, int(open(pf).read())
        if p.poll() is not None:
            break
        time.sleep(0.05)
    sys.exit("aecd did not start: " + open(os.path.join(folder, "..", "aecd.log")).read())


def replace(src_bytes, dst):
    tmp = dst + ".tmp.bench"
    with open(tmp, "wb") as f:
        f.write(src_bytes)
    os.rename(tmp, dst)


async def request(port, raw):
    st, _, body, _ = await exchange(port, raw, "close")
    return st, body


# ---- reload ------------------------------------------------------------------------


async def bench_reload(args, folder):
    a = open(os.path.join(ROOT, "models", "default.safetensors"), "rb").read()
    b = open(os.path.join(ROOT, "models", "codec-280.safetensors"), "rb").read()
    live = os.path.join(folder, "default.safetensors")
    replace(a, live)
    proc, port = start_aecd(folder, [])
    img = synthetic_png(64, 64, 7)
    enc = http("POST", "/encode?format=binary", "image/png", img)
    ref = {}
    for name, data in (("a", a), ("b", b), ("a", a)):
        replace(data, live)
        st, _ = await request(port, http("POST", "/v1/models/reload"))
        assert st == 200, st
        st, body = await request(port, enc)
        assert st == 200, st
        ref[name] = body
    stop = False
    counts = {"a": 0, "b": 0, "failed": 0, "mixed": 0}

    async def client():
        while not stop:
            st, body = await request(port, enc)
            if st != 200:
                counts["failed"] += 1
            elif body == ref["a"]:
                counts["a"] += 1
            elif body == ref["b"]:
                counts["b"] += 1
            else:
                counts["mixed"] += 1

    tasks = [asyncio.create_task(client()) for _ in range(args.connections)]
    corrupt_reported = corrupt = 0
    t0 = time.time()
    loop = asyncio.get_running_loop()
    for i in range(args.reloads):
        bad = i % 10 == 9
        data = b"not a model" * 100 if bad else (b if i % 2 == 0 else a)
        await loop.run_in_executor(None, replace, data, live)
        st, body = await request(port, http("POST", "/v1/models/reload"))
        if bad:
            corrupt += 1
            corrupt_reported += st == 200 and b'"failed":1' in body
        await asyncio.sleep(0.02)
    stop = True
    await asyncio.gather(*tasks)
    dt = time.time() - t0
    proc.terminate()
    proc.wait(30)
    total = sum(counts.values())
    print(f"reload: {args.reloads} reloads ({corrupt} corrupt) in {dt:.1f} s under"
          f" {args.connections} connections: {total} requests, {counts['a']} from model A,"
          f" {counts['b']} from model B, {counts['failed']} failed, {counts['mixed']} mixed;"
          f" corrupt files reported failed: {corrupt_reported}/{corrupt}")
    return counts["failed"] == 0 and counts["mixed"] == 0 and corrupt_reported == corrupt


# ---- storm ---------------------------------------------------------------------------


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1]] if s[-1] in mult else int(s)


async def bench_storm(args, folder):
    shutil.copy(os.path.join(ROOT, "models", "default.safetensors"), folder)
    if args.photo:
        shutil.copy(os.path.join(ROOT, "models", "photo.safetensors"), folder)
    proc, port = start_aecd(folder, ["--max-memory", args.max_memory,
                                     "--max-buffered", args.max_buffered])
    small = http("POST", "/encode", "image/png", synthetic_png(48, 48, 3))
    t = time.time()
    large_img = big_png(4000, 3000)
    print(f"storm: 12 MP PNG of {len(large_img) / 1e6:.1f} MB made in {time.time() - t:.1f} s",
          file=sys.stderr)
    large = http("POST", "/encode?model=photo&quality=50" if args.photo else "/encode",
                 "image/png", large_img)
    status = {}
    health = []
    end = time.time() + args.seconds
    base_rss = vm_hwm_kib(proc.pid)

    async def client(raw, kind):
        while time.time() < end:
            st, _ = await request(port, raw)
            key = (kind, st)
            status[key] = status.get(key, 0) + 1

    async def probe():
        raw = http("GET", "/healthz")
        while time.time() < end:
            t0 = time.perf_counter()
            await request(port, raw)
            health.append(time.perf_counter() - t0)
            await asyncio.sleep(0.02)

    tasks = [asyncio.create_task(client(large if i < args.large else small,
                                        "12MP" if i < args.large else "48x48"))
             for i in range(args.connections)]
    tasks.append(asyncio.create_task(probe()))
    await asyncio.gather(*tasks)
    _, _, metrics, _ = await exchange(port, http("GET", "/metrics"), "close")
    peak_budget = 0
    for line in metrics.decode().splitlines():
        if line.startswith("aec_memory_reserved_peak_bytes "):
            peak_budget = float(line.split()[1])
    hwm = vm_hwm_kib(proc.pid) * 1024
    proc.terminate()
    proc.wait(30)
    health.sort()
    p = lambda q: health[min(len(health) - 1, int(q * len(health)))] * 1000  # noqa: E731
    mm, mb = parse_size(args.max_memory), parse_size(args.max_buffered)
    five = sum(n for (k, st), n in status.items() if st is None or st >= 500)
    print(f"storm: {args.seconds} s, {args.connections} connections ({args.large} sending"
          f" 12 MP{' to the photo codec' if args.photo else ''}): " + ", ".join(f"{k} {st}: {n}" for (k, st), n in sorted(
              status.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))))
    print(f"storm: /healthz {len(health)} probes: p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms,"
          f" max {health[-1] * 1000:.1f} ms")
    print(f"storm: peak RSS {hwm / 2**20:.0f} MiB (at start {base_rss / 1024:.0f} MiB);"
          f" --max-memory {mm >> 20} MiB, --max-buffered {mb >> 20} MiB; budget peak"
          f" {peak_budget / 2**20:.0f} MiB")
    ok = five == 0 and p(0.99) < 50 and hwm <= mm + mb + (64 << 20)
    print(f"storm: 5xx or no reply: {five}; bars {'met' if ok else 'NOT met'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["reload", "storm"])
    ap.add_argument("--reloads", type=int, default=100)
    ap.add_argument("--connections", type=int, default=None)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--large", type=int, default=4)
    ap.add_argument("--max-memory", default="1G")
    ap.add_argument("--max-buffered", default="256M")
    ap.add_argument("--photo", action="store_true",
                    help="storm: the 12 MP uploads go to the photo codec")
    args = ap.parse_args()
    if args.connections is None:
        args.connections = 16 if args.what == "reload" else 64
    tmp = tempfile.mkdtemp(prefix="aec-repo-bench-")
    folder = os.path.join(tmp, "models")
    os.mkdir(folder)
    try:
        fn = bench_reload if args.what == "reload" else bench_storm
        ok = asyncio.run(fn(args, folder))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"command: bench/repo_bench.py {' '.join(sys.argv[1:])}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
