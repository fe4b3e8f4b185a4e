"""Shared helpers of the Python benchmarks (bench/*.py)."""
import os
import subprocess

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
