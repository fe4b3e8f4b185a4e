#!/bin/sh
# The shipped conv architecture against the reference MLP under the same
# wall-clock training budget, on the same files and split:
#   bench/budget_compare.sh [SECONDS] [DATA_DIR]
# Each model trains until its training time reaches SECONDS (checked after
# every epoch, so the last epoch may overshoot a little), constant lr 0.001.
# Prints validation MSE/PSNR (1000 validation images) and PSNR on the 2000
# held-out files. Run on a quiet machine.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
secs=${1:-300}
data=${2:-$root/../shared/data/cats}
build=${AEC_BUILD:-build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() { # name, args...
    name=$1
    shift
    "$root/$build/aec-train" --data "$data" --limit 10000 --val 0.1 --seed 1 --max-seconds "$secs" \
        --epochs 100000 --quiet --out "$out/$name.safetensors" --history "$out/$name.jsonl" "$@"
}
run conv --arch conv --batch 32
run mlp --arch mlp --batch 256
echo "| model | epochs in ${secs} s | training s | val MSE | val PSNR | held-out PSNR (2000 cats) |"
echo "|---|---|---|---|---|---|"
for name in conv mlp; do
    /usr/bin/python3 - "$out/$name.safetensors" "$out/$name.jsonl" "$name" <<'PY'
import json, struct, sys, math
path, hist, name = sys.argv[1:4]
with open(path, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    meta = json.loads(f.read(n))["__metadata__"]
t = json.loads(meta["aec.train"])
secs = sum(json.loads(l)["seconds"] for l in open(hist) if '"epoch":0' not in l)
print(f"| {name} | {t['epochs']} | {secs:.0f} | {t['val_mse']:.5f} | {t['val_psnr']:.2f} dB |", end="")
PY
    AEC_BUILD=$build /usr/bin/python3 "$here/heldout_psnr.py" "$out/$name.safetensors" |
        sed 's/.*PSNR of mean MSE \([0-9.]* dB\).*/ \1 |/'
done
echo "command: bench/budget_compare.sh $secs"
