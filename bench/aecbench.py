"""Shared helpers of the Python benchmarks (bench/*.py)."""
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CATS = os.path.join(ROOT, "..", "shared", "data", "cats")


def training_order(d):
    """Every non-hidden file under d, sorted by path: the order in which
    aec-train --limit N takes its first N files (so files[N:] were never used)."""
    out = []
    for dp, dirs, fs in os.walk(d):
        dirs[:] = [x for x in dirs if not x.startswith(".")]
        out += [os.path.join(dp, f) for f in fs if not f.startswith(".")]
    return sorted(out)


def eval_rows(model, files):
    """Runs build/bench/aec-anomaly-eval (the engine's own code) on files; returns
    its TSV rows after the header: path, mse, blur-x4 mse, score, blur-x2, blur-x8."""
    tool = os.path.join(ROOT, os.environ.get("AEC_BUILD", "build"), "bench", "aec-anomaly-eval")
    out = subprocess.run([tool, model, "-"], input="\n".join(files), capture_output=True,
                         text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()[1:]]


def start_aecd(models_dir, tmp, extra=()):
    """One aecd serving models_dir on a free loopback port (log and port file
    in tmp; extra: more command-line options); returns (process, port)."""
    aecd = os.environ.get("AECD", os.path.join(ROOT, "build", "aecd"))
    pf = os.path.join(tmp, "port")
    log = open(os.path.join(tmp, "aecd.log"), "w")
    p = subprocess.Popen([aecd, "--models", models_dir, "--port", "0", "--port-file", pf,
                          "--log-level", os.environ.get("AEC_LOG", "warn"), *extra], stdout=log, stderr=log)
    for _ in range(600):
        if os.path.exists(pf) and open(pf).read().strip():
            return p, int(open(pf).read())
        if p.poll() is not None:
            sys.exit("aecd exited at start: see " + log.name)
        time.sleep(0.05)
    sys.exit("aecd did not start")
