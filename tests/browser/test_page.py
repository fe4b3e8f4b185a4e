#!/usr/bin/env python3
"""test_page.py - the page at / in a real browser (Debian's chromium, headless,
driven through chromedriver's WebDriver HTTP API; Python standard library only).

    test_page.py OUT_DIR        (env: AECD_BIN, AEC_SOURCE_DIR, AEC_SHARED_DIR)

Starts aecd on the shipped models (loopback, a free port) and chromedriver,
loads http://127.0.0.1:PORT/, uploads a test photo through the page's file
input, and waits for the page to finish. Fails if the page shows an error,
no decoded image, or any of its numbers is missing; then runs a codec model
and the photo codec (the photo must come back at its own size, with the
quality asked for), and asks for the latent as `coded` from the default
(non-codec) model and checks that the page shows the API's own error
message. Saves OUT_DIR/page-screenshot.png and page-photo-screenshot.png.
Exit 0 passed, 1 failed, 77 skipped (no chromium or chromedriver).
"""
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib

FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, file=sys.stderr)
    if not cond:
        FAILURES.append(what)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(w, h):
    """A small RGB PNG: soft gradients and a disc, something like a photo."""
    rows = []
    for y in range(h):
        row = bytearray([0])
        for x in range(w):
            inside = (x - w * 0.6) ** 2 + (y - h * 0.45) ** 2 < (h * 0.28) ** 2
            r = 200 if inside else int(40 + 150 * x / w)
            g = 140 if inside else int(60 + 120 * y / h)
            b = 60 if inside else 150
            row += bytes((r, g, b))
        rows.append(bytes(row))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


class WebDriver:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.sid = None

    def call(self, method, path, body=None, timeout=60):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"WebDriver {method} {path}: {e.code} {e.read()[:400]!r}")

    def session(self, chromium):
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1200,1000", "--no-first-run", "--no-proxy-server"]}}}}
        self.sid = self.call("POST", "/session", caps, timeout=120)["sessionId"]

    def s(self, method, path, body=None, timeout=60):
        return self.call(method, f"/session/{self.sid}{path}", body, timeout)

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def element(self, css):
        v = self.s("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(v.values()))

    def wait(self, script, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            v = self.js(script)
            if v:
                return v
            time.sleep(0.1)
        return None


def main(argv):
    out_dir = argv[1] if len(argv) > 1 else "."
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        print("SKIP: chromium or chromedriver not installed (apt-get install chromium"
              " chromium-driver; scripts/deps.sh --test does)", file=sys.stderr)
        return 77
    aecd_bin, src = os.environ["AECD_BIN"], os.environ["AEC_SOURCE_DIR"]
    tmp = tempfile.mkdtemp(prefix="aec-page-")
    procs = []
    try:
        port_file = os.path.join(tmp, "port")
        log = open(os.path.join(tmp, "aecd.log"), "w")
        procs.append(subprocess.Popen([aecd_bin, "--models", os.path.join(src, "models"),
                                       "--host", "127.0.0.1", "--port", "0", "--port-file",
                                       port_file], stdout=log, stderr=log))
        for _ in range(600):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.05)
        port = int(open(port_file).read())
        dport = free_port()
        dlog = open(os.path.join(tmp, "chromedriver.log"), "w")
        procs.append(subprocess.Popen([driver, f"--port={dport}"], stdout=dlog, stderr=dlog))
        wd = WebDriver(dport)
        for _ in range(200):
            try:
                if wd.call("GET", "/status", timeout=2).get("ready"):
                    break
            except Exception:
                pass
            time.sleep(0.05)
        wd.session(chromium)
        # a cat photo from ../shared when there is one (what the models know),
        # else a synthetic picture
        cats = os.path.join(os.environ.get("AEC_SHARED_DIR", ""), "data", "cats")
        jpgs = sorted(f for f in os.listdir(cats) if f.endswith(".jpg"))[:1] \
            if os.path.isdir(cats) else []
        if jpgs:
            photo = os.path.realpath(os.path.join(cats, jpgs[0]))
        else:
            photo = os.path.join(tmp, "photo.png")
            with open(photo, "wb") as f:
                f.write(png(160, 120))
        print(f"     photo: {photo}", file=sys.stderr)

        wd.s("POST", "/url", {"url": f"http://127.0.0.1:{port}/"})
        n = wd.wait("return document.querySelectorAll('#model option').length")
        check(n is not None and n >= 1, f"the page lists the served models ({n})")
        default = wd.js("return document.getElementById('model').value")
        check(default == "default", f"the default model is chosen: {default}")

        # upload through the file input, as a user picking a file does
        wd.s("POST", f"/element/{wd.element('#file')}/value", {"text": photo})
        state = wd.wait("return document.body.dataset.state")
        shown = wd.js("return document.getElementById('error').textContent")
        check(state == "done", f"the page finished without an error (state {state}; error:"
              f" {shown!r})")
        width = wd.js("return document.getElementById('decoded').naturalWidth")
        check(width == 48, f"the decoded image is shown, 48 px wide ({width})")
        stats = wd.js("""const r = {};
            for (const id of ['s-bytes','s-bpp','s-psnr','s-enc','s-dec','s-score'])
                r[id] = document.getElementById(id).textContent;
            return r;""")
        print(f"     numbers: {stats}", file=sys.stderr)
        check(stats["s-psnr"].endswith(" dB") and float(stats["s-psnr"].split()[0]) > 18,
              f"PSNR shown and plausible: {stats['s-psnr']}")
        check(stats["s-bytes"].split()[0].isdigit() and int(stats["s-bytes"].split()[0]) > 28,
              f"latent bytes shown: {stats['s-bytes']}")
        check(all(stats[k] for k in stats), "every number is shown")
        check(any(k in stats["s-score"] for k in ("reconstruction", "catface", "combined")),
              f"the anomaly score says which it is: {stats['s-score']}")
        check("combined" not in stats["s-score"] or "rotation raw" in stats["s-score"],
              f"with the combined score, the rotation recognizer's raw score: {stats['s-score']}")
        check(wd.js("return document.getElementById('heatmap').naturalWidth") == 48,
              "the anomaly heatmap is shown")
        check(not wd.js("return document.getElementById('error').classList.contains('shown')"),
              "no error is shown")

        # a codec model, chosen with the keyboard-usable select: the coded stream
        codec = wd.js("""for (const o of document.querySelectorAll('#model option'))
                if (o.textContent.includes('(codec,')) return o.value;
            return null;""")
        if check(codec is not None, f"a codec model is listed ({codec})"):
            wd.js("document.getElementById('model').value = arguments[0];"
                  "document.body.dataset.state = '';", codec)
            wd.s("POST", f"/element/{wd.element('#go')}/click", {})
            state = wd.wait("return document.body.dataset.state")
            coded = wd.js("return document.getElementById('s-bytes').textContent")
            check(state == "done" and int(coded.split()[0]) < 1500,
                  f"{codec}: a coded stream of a few hundred bytes ({coded})")
            shot = wd.s("GET", "/screenshot")
            os.makedirs(out_dir, exist_ok=True)
            path = os.path.join(out_dir, "page-screenshot.png")
            with open(path, "wb") as f:
                f.write(base64.b64decode(shot))
            print(f"     screenshot: {path}", file=sys.stderr)

        # the photo codec: the photo comes back at its own size, with a quality
        photo_codec = wd.js("""for (const o of document.querySelectorAll('#model option'))
                if (o.textContent.includes('(photo codec')) return o.value;
            return null;""")
        if check(photo_codec is not None, f"a photo codec is listed ({photo_codec})"):
            wd.js("const s = document.getElementById('model'); s.value = arguments[0];"
                  "s.dispatchEvent(new Event('change'));"
                  "document.getElementById('quality').value = '40';"
                  "document.body.dataset.state = '';", photo_codec)
            check(wd.js("return document.getElementById('dtype').disabled") and
                  not wd.js("return document.getElementById('quality').disabled"),
                  "for a photo codec the page offers a quality, not a dtype")
            wd.s("POST", f"/element/{wd.element('#go')}/click", {})
            state = wd.wait("return document.body.dataset.state")
            shown = wd.js("return document.getElementById('error').textContent")
            sizes = wd.js("""const o = document.getElementById('original'),
                    d = document.getElementById('decoded');
                return [o.naturalWidth, o.naturalHeight, d.naturalWidth, d.naturalHeight];""")
            nums = wd.js("""const r = {};
                for (const id of ['s-latent','s-bytes','s-bpp','s-psnr','s-score'])
                    r[id] = document.getElementById(id).textContent;
                return r;""")
            print(f"     photo codec: {sizes} {nums}", file=sys.stderr)
            check(state == "done", f"the photo codec run finished (state {state}; {shown!r})")
            check(sizes and sizes[0] == sizes[2] and sizes[1] == sizes[3],
                  f"the decoded photo has the photo's own size: {sizes}")
            check("quality 40" in nums["s-latent"] and nums["s-psnr"].endswith(" dB"),
                  f"the stream's quality and the PSNR are shown: {nums}")
            shot = wd.s("GET", "/screenshot")
            os.makedirs(out_dir, exist_ok=True)
            path = os.path.join(out_dir, "page-photo-screenshot.png")
            with open(path, "wb") as f:
                f.write(base64.b64decode(shot))
            print(f"     screenshot: {path}", file=sys.stderr)

        # an API error is shown as the API words it
        wd.js("const s = document.getElementById('model'); s.value = 'default';"
              "s.dispatchEvent(new Event('change'));"
              "document.getElementById('dtype').value = 'coded';")
        wd.js("document.body.dataset.state = '';")
        wd.s("POST", f"/element/{wd.element('#go')}/click", {})
        state = wd.wait("return document.body.dataset.state")
        msg = wd.js("return document.getElementById('error').textContent")
        check(state == "error" and "codec tables" in msg and "invalid_parameter" in msg,
              f"a refused request shows the API's message: {msg!r}")
        wd.s("DELETE", "")
    except Exception as e:  # noqa: BLE001 - any failure of the run is a test failure
        check(False, f"the browser run: {e}")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if FAILURES:
            for name in ("aecd.log", "chromedriver.log"):
                p = os.path.join(tmp, name)
                if os.path.exists(p):
                    print(f"---- {name} (tail)\n" + open(p).read()[-2000:], file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(FAILURES)} failed", file=sys.stderr)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
