#!/usr/bin/env python3
"""soak_mixed.py - the client side of bench/soak_mixed.sh (run that).

Sends REQUESTS requests over CONNECTIONS concurrent clients (asyncio, raw
HTTP/1.1) to an aecd that is already running, a fixed mix of good requests
(/encode JSON, binary and multipart, /decode JSON and binary, /anomaly,
/healthz, /readyz, /v1/model; kept-alive connections) and hostile ones (each
on a fresh connection): truncated and garbage images, bodies over
--max-body (sent, declared with Expect: 100-continue, chunked), bad and
deeply nested JSON, bad latents, bad query strings and a 3 KB one, a 70 KB
header, wrong content types and methods, unknown paths, malformed chunked
framing, a non-HTTP request line, too many multipart parts, a PNG header
declaring 10^10 pixels and a PNG zlib bomb (64x64 declared, 64 MiB
inflated). Every image is made here.

Every good answer must be 200 and byte-identical to the answer to the same
request sent alone before the run. aecd's RSS and open descriptors
(/proc/PID) are sampled throughout. Bars (exit 1 if any fails): no 5xx, no
hostile request answered 2xx, every good answer correct, RSS growth after
warm-up (the first 10% of requests) below 5%, descriptors after the run no
more than before it, and the good answers unchanged at the end.
"""
import argparse
import asyncio
import os
import random
import struct
import sys
import time
import zlib
from collections import Counter, defaultdict

# ---- images, made here ----------------------------------------------------------


def png_chunk(kind, data):
    c = struct.pack(">I", len(data)) + kind + data
    return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_from_rows(w, h, raw):
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(raw, 6)) + png_chunk(b"IEND", b""))


def synthetic_png(w, h, seed):
    """A smooth picture with a few discs: like a photo to the model, unlike noise."""
    rnd = random.Random(seed)
    discs = [(rnd.uniform(0, w), rnd.uniform(0, h), rnd.uniform(4, w / 3),
              [rnd.randrange(256) for _ in range(3)]) for _ in range(4)]
    rows = bytearray()
    for y in range(h):
        rows.append(0)
        for x in range(w):
            px = [int(255 * x / w), int(255 * y / h), int(128 + 100 * ((x + y) % 37) / 37)]
            for cx, cy, r, col in discs:
                if (x - cx) ** 2 + (y - cy) ** 2 < r * r:
                    px = col
            rows += bytes(px)
    return png_from_rows(w, h, bytes(rows))


def png_header_only(w, h):
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))


def png_zlib_bomb(w, h, inflated):
    """Declares w x h, but its zlib stream inflates to `inflated` bytes."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(b"\0" * (1 << 20)) for _ in range(inflated >> 20)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) +
            png_chunk(b"IEND", b""))


# ---- requests ----------------------------------------------------------------------


def http(method, path, ctype=None, body=b"", extra=(), length=True):
    h = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if ctype:
        h.append(f"Content-Type: {ctype}")
    if length and (body or method == "POST"):
        h.append(f"Content-Length: {len(body)}")
    h += list(extra)
    return ("\r\n".join(h) + "\r\n\r\n").encode() + body


def chunked(body, size=65536):
    out = b"".join(b"%x\r\n" % len(body[i:i + size]) + body[i:i + size] + b"\r\n"
                   for i in range(0, len(body), size))
    return out + b"0\r\n\r\n"


def multipart(parts, boundary="soakboundary"):
    out = b""
    for headers, data in parts:
        out += f"--{boundary}\r\n".encode() + headers + b"\r\n\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Kind:
    def __init__(self, name, weight, raw, good=False, mode="fresh"):
        self.name, self.weight, self.raw, self.good, self.mode = name, weight, raw, good, mode
        self.expect = None  # good: the body of the answer sent alone
        self.status = Counter()
        self.wrong = 0


def build_kinds(max_body):
    big = synthetic_png(320, 240, 1)
    small = synthetic_png(48, 48, 2)
    k = []

    def good(name, weight, raw):
        k.append(Kind(name, weight, raw, good=True, mode="keep"))

    def bad(name, weight, raw, mode="fresh"):
        k.append(Kind(name, weight, raw, mode=mode))

    good("GET /healthz", 10, http("GET", "/healthz"))
    good("GET /readyz", 2, http("GET", "/readyz"))
    good("GET /v1/model", 1, http("GET", "/v1/model"))
    good("POST /encode png 320x240 (json)", 10, http("POST", "/encode", "image/png", big))
    good("POST /encode png 48x48 (binary f16)", 6,
         http("POST", "/encode?format=binary&dtype=f16", "image/png", small))
    mp, mpt = multipart([(b'Content-Disposition: form-data; name="image"; filename="a.png"\r\n'
                          b"Content-Type: image/png", small)])
    good("POST /encode multipart", 4, http("POST", "/encode", mpt, mp))
    good("POST /anomaly png", 8, http("POST", "/anomaly", "image/png", big))
    # /decode bodies come from the server's own /encode answers (filled in later)
    good("POST /decode json", 8, None)
    good("POST /decode binary (?width=64)", 6, None)

    bad("truncated PNG", 2, http("POST", "/encode", "image/png", big[:len(big) // 2]))
    bad("truncated JPEG", 2, http("POST", "/anomaly", "image/jpeg",
                                  b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01"
                                  b"\x00\x00\xff\xdb\x00\x43\x00" + bytes(range(40))))
    bad("garbage image bytes", 2, http("POST", "/encode", "image/png",
                                       random.Random(3).randbytes(20000)))
    bad("GIF header, garbage", 1, http("POST", "/encode", "image/gif", b"GIF89a" + b"\xff" * 500))
    bad("body over --max-body", 2, http("POST", "/encode", "image/png", b"\0" * (max_body + 4096)))
    bad("over --max-body, Expect: 100-continue", 2,
        http("POST", "/encode", "image/png", b"", extra=(f"Content-Length: {max_body + 1}",
                                                         "Expect: 100-continue"), length=False),
        mode="expect")
    bad("chunked body over --max-body", 1,
        http("POST", "/encode", "image/png", chunked(b"\1" * (max_body + 4096)),
             extra=("Transfer-Encoding: chunked",), length=False))
    bad("empty body", 1, http("POST", "/encode", "image/png", b""))
    bad("bad JSON", 2, http("POST", "/decode", "application/json", b'{"latent":[1,2,'))
    bad("JSON nested 200 deep", 2, http("POST", "/decode", "application/json",
                                        b'{"latent":' + b"[" * 200 + b"]" * 200 + b"}"))
    bad("JSON latent of wrong length", 1,
        http("POST", "/decode", "application/json", b'{"latent":[0.5,0.25]}'))
    bad("JSON latent out of float range", 1,
        http("POST", "/decode", "application/json", b'{"latent":[1e999]}'))
    bad("binary latent garbage", 2, http("POST", "/decode", "application/x-aec-latent",
                                         b"AECL\x01\x09" + b"\0" * 200))
    bad("query format=xml", 1, http("POST", "/encode?format=xml", "image/png", small))
    bad("query bad escape", 1, http("POST", "/encode?dtype=%zz", "image/png", small))
    bad("query width=99999", 1, http("POST", "/decode?width=99999", "application/json", b"{}"))
    bad("query threshold=nan", 1, http("POST", "/anomaly?threshold=nan", "image/png", small))
    bad("query unknown parameter", 1, http("POST", "/encode?verbose=1", "image/png", small))
    bad("query of 3000 bytes", 1, http("POST", "/encode?format=" + "j" * 3000, "image/png", small))
    bad("header of 70 KB", 1, http("GET", "/healthz", extra=("X-Big: " + "a" * 70000,)))
    bad("wrong type text/plain", 2, http("POST", "/encode", "text/plain", b"hello"))
    bad("wrong type form-urlencoded", 1,
        http("POST", "/anomaly", "application/x-www-form-urlencoded", small))
    bad("image posted to /decode", 1, http("POST", "/decode", "image/png", small))
    bad("GET /encode", 1, http("GET", "/encode"))
    bad("DELETE /healthz", 1, http("DELETE", "/healthz"))
    bad("unknown path", 1, http("GET", "/etc/passwd"))
    bad("malformed chunked framing", 1,
        http("POST", "/encode", "image/png", b"zz\r\nabc\r\n0\r\n\r\n",
             extra=("Transfer-Encoding: chunked",), length=False))
    bad("non-HTTP request line", 1, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n")
    many, mt = multipart([(b'Content-Disposition: form-data; name="p%d"' % i, b"x")
                          for i in range(40)])
    bad("multipart, 40 parts", 1, http("POST", "/encode", mt, many))
    longh, lt = multipart([(b'Content-Disposition: form-data; name="image"\r\nX-Pad: ' +
                            b"p" * 10000, small)])
    bad("multipart, 10 KB part header", 1, http("POST", "/encode", lt, longh))
    bad("pixel bomb: PNG declaring 100000x100000", 2,
        http("POST", "/encode", "image/png", png_header_only(100000, 100000)))
    bad("zlib bomb: 64x64 PNG inflating to 64 MiB", 2,
        http("POST", "/anomaly", "image/png", png_zlib_bomb(64, 64, 64 << 20)))
    return k


# ---- the client ----------------------------------------------------------------------


class NoReply(Exception):
    pass


async def read_response(reader):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as e:
        raise NoReply() from e
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdr = {}
    for line in lines[1:]:
        if ":" in line:
            a, b = line.split(":", 1)
            hdr[a.strip().lower()] = b.strip()
    if "content-length" in hdr:
        body = await reader.readexactly(int(hdr["content-length"]))
    elif hdr.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            n = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            body += await reader.readexactly(n + 2)
            body = body[:-2]
            if n == 0:
                await reader.readuntil(b"\r\n")
                break
    else:
        body = await reader.read()
    return status, hdr, body


async def exchange(port, raw, mode, conn=None):
    """One request. Returns (status or None, headers, body, conn to keep or None)."""
    if conn is None:
        conn = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    reader, writer = conn
    try:
        writer.write(raw)
        await writer.drain()
    except ConnectionError:
        pass  # the server may refuse before reading everything: its reply still counts
    try:
        status, hdr, body = await read_response(reader)
    except (NoReply, ConnectionError):
        writer.close()
        return None, {}, b"", None
    if mode != "keep" or hdr.get("connection", "").lower() == "close":
        writer.close()
        conn = None
    return status, hdr, body, conn


def proc_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


async def run(args):
    kinds = build_kinds(args.max_body)
    by_name = {k.name: k for k in kinds}
    port, pid = args.port, args.pid

    # answers sent alone: the good ones' expected bodies, and the /decode inputs
    st, _, lat_json, _ = await exchange(port, by_name["POST /encode png 320x240 (json)"].raw, "x")
    st2, _, lat_bin, _ = await exchange(port, by_name["POST /encode png 48x48 (binary f16)"].raw,
                                        "x")
    assert st == 200 and st2 == 200, "the server does not encode"
    by_name["POST /decode json"].raw = http("POST", "/decode", "application/json", lat_json)
    by_name["POST /decode binary (?width=64)"].raw = http(
        "POST", "/decode?width=64", "application/x-aec-latent", lat_bin)
    for k in kinds:
        if k.good:
            st, _, body, _ = await exchange(port, k.raw, "x")
            assert st == 200, f"{k.name}: {st}"
            k.expect = body

    schedule = [k for k in kinds for _ in range(k.weight)]
    random.Random(7).shuffle(schedule)
    await asyncio.sleep(0.5)
    fds_before = proc_fds(pid)
    rss_start = proc_rss_kib(pid)
    warm_at = args.requests // 10
    samples = []  # (requests done, rss KiB, fds)
    state = {"next": 0, "done": 0, "noreply": Counter(), "timeouts": 0}

    async def client():
        conn = None
        while state["next"] < args.requests:
            i = state["next"]
            state["next"] += 1
            k = schedule[i % len(schedule)]
            try:
                status, _, body, conn = await asyncio.wait_for(
                    exchange(port, k.raw, k.mode, conn if k.good else None), args.timeout)
            except asyncio.TimeoutError:
                state["timeouts"] += 1
                status, body, conn = "timeout", b"", None
            k.status[status if status is not None else "no reply"] += 1
            if k.good and (status != 200 or body != k.expect):
                k.wrong += 1
            state["done"] += 1
        if conn:
            conn[1].close()

    async def sampler():
        while state["done"] < args.requests:
            samples.append((state["done"], proc_rss_kib(pid), proc_fds(pid)))
            await asyncio.sleep(0.5)

    t0 = time.monotonic()
    samp = asyncio.create_task(sampler())
    await asyncio.gather(*(client() for _ in range(args.connections)))
    elapsed = time.monotonic() - t0
    await samp

    # after the run: descriptors settle back, good answers unchanged
    deadline = time.monotonic() + 10
    while proc_fds(pid) > fds_before and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    fds_after = proc_fds(pid)
    rss_end = proc_rss_kib(pid)
    final_ok = {}
    for k in kinds:
        if k.good:
            st, _, body, _ = await exchange(port, k.raw, "x")
            final_ok[k.name] = st == 200 and body == k.expect
    return kinds, samples, state, elapsed, fds_before, fds_after, rss_start, rss_end, warm_at, \
        final_ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--requests", type=int, default=100000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--max-body", type=int, required=True, help="aecd's --max-body, in bytes")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--log", help="aecd's stderr, to count error lines")
    args = ap.parse_args()
    (kinds, samples, state, elapsed, fds_before, fds_after, rss_start, rss_end, warm_at,
     final_ok) = asyncio.run(run(args))

    classes = Counter()
    for k in kinds:
        for s, c in k.status.items():
            classes[f"{s // 100}xx" if isinstance(s, int) else s] += c
    total = sum(classes.values())
    print(f"mixed soak: {total} requests at {args.connections} connections in {elapsed:.1f} s"
          f" ({total / elapsed:.0f}/s)")
    print("by class: " + ", ".join(f"{c} {n}" for c, n in sorted(classes.items())))
    print("\n| request | good | sent | answers |\n|---|---|---|---|")
    for k in kinds:
        ans = ", ".join(f"{s}: {n}" for s, n in sorted(k.status.items(), key=lambda x: str(x[0])))
        print(f"| {k.name} | {'yes' if k.good else ''} | {sum(k.status.values())} | {ans} |")
    good_sent = sum(sum(k.status.values()) for k in kinds if k.good)
    wrong = sum(k.wrong for k in kinds)
    hostile_2xx = sum(n for k in kinds if not k.good for s, n in k.status.items()
                      if isinstance(s, int) and 200 <= s < 300)
    fivexx = sum(n for c, n in classes.items() if c == "5xx")

    warm = next((s for s in samples if s[0] >= warm_at), samples[-1] if samples else None)
    rss_max = max([s[1] for s in samples] + [rss_end])
    growth = 100.0 * (rss_end - warm[1]) / warm[1] if warm else float("nan")
    fds_during = max(s[2] for s in samples) if samples else fds_before
    print(f"\ngood answers: {good_sent}, wrong or not 200: {wrong}")
    print(f"hostile answered 2xx: {hostile_2xx}; 5xx: {fivexx}; timeouts: {state['timeouts']}")
    print(f"RSS (MiB): before the run {rss_start / 1024:.1f}, after warm-up ({warm_at} requests)"
          f" {warm[1] / 1024:.1f}, end {rss_end / 1024:.1f}, max {rss_max / 1024:.1f};"
          f" growth after warm-up {growth:+.2f}%")
    print(f"open descriptors: before {fds_before}, most during {fds_during}, after {fds_after}")
    print("RSS over the run (requests done: MiB): " + ", ".join(
        f"{s[0]}: {s[1] / 1024:.1f}" for s in samples[::max(1, len(samples) // 10)]))
    print("final check, answers unchanged: " + ", ".join(
        f"{n}: {'same' if ok else 'DIFFERENT'}" for n, ok in final_ok.items()))
    errors = 0
    if args.log and os.path.exists(args.log):
        with open(args.log, errors="replace") as f:
            errors = sum(1 for line in f if "level=error" in line)
        print(f"aecd error lines logged: {errors}")

    bars = [("no 5xx", fivexx == 0),
            ("no hostile request answered 2xx", hostile_2xx == 0),
            ("every good answer 200 and correct", wrong == 0),
            ("no request timed out", state["timeouts"] == 0),
            ("RSS growth after warm-up < 5%", growth < 5.0),
            ("descriptors flat (after <= before)", fds_after <= fds_before),
            ("good answers unchanged at the end", all(final_ok.values())),
            ("no error logged", errors == 0)]
    for name, ok in bars:
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    sys.exit(0 if all(ok for _, ok in bars) else 1)


if __name__ == "__main__":
    main()
