#!/bin/sh
# Training benchmark: aec-train and PyTorch (Debian's python3-torch) on the
# reference experiment, side by side in one run, same files, same split.
#   bench/train_bench.sh [DATA_DIR] [EPOCHS] [THREADS]
# Needs a Release build in build/ (cmake -S . -B build && cmake --build build)
# and /usr/bin/python3 with torch, numpy and PIL. Run it on a quiet machine.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
data=${1:-$root/../shared/data/cats}
epochs=${2:-2}
threads=${3:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
[ -d "$data" ] || { echo "train_bench: $data not found" >&2; exit 1; }

echo "== aec-train (threads $threads)" >&2
OPENBLAS_NUM_THREADS=$threads /usr/bin/time -v "$root/build/aec-train" --data "$data" --arch mlp \
    --limit 8192 --epochs "$epochs" --batch 256 --lr 0.001 --val 0.1 --seed 1 \
    --threads "$threads" --out "$out/ref.safetensors" --history "$out/aec.jsonl" --quiet \
    2> "$out/aec.time"
echo "== PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') (threads $threads)" >&2
OMP_NUM_THREADS=$threads /usr/bin/time -v /usr/bin/python3 "$here/torch_train.py" --data "$data" \
    --limit 8192 --epochs "$epochs" --threads "$threads" > "$out/torch.jsonl" 2> "$out/torch.time"

/usr/bin/python3 - "$out" "$epochs" "$threads" <<'PY'
import json, re, sys, platform, os
out, epochs, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def rows(p): return [r for r in (json.loads(l) for l in open(p) if l.startswith("{")) if r["epoch"] > 0]
def rss(p):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(p).read())
    return int(m.group(1)) / 1024 if m else float("nan")
a, t = rows(f"{out}/aec.jsonl"), rows(f"{out}/torch.jsonl")
meta = json.loads(open(f"{out}/ref.safetensors", "rb").read(8 + int.from_bytes(open(f"{out}/ref.safetensors", "rb").read(8), "little"))[8:])["__metadata__"]
train = json.loads(meta["aec.train"])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"machine: {cpu}, {os.cpu_count()} cores; threads {threads}")
print("| epoch | aec-train s | aec img/s | PyTorch s | PyTorch img/s | time ratio aec/torch | aec val MSE | PyTorch val MSE |")
print("|---|---|---|---|---|---|---|---|")
for x, y in zip(a, t):
    print(f"| {x['epoch']} | {x['seconds']:.2f} | {x['images_per_s']:.0f} | {y['seconds']:.2f} | {y['images_per_s']:.0f} | {x['seconds']/y['seconds']:.2f} | {x['val_mse']:.4f} | {y['val_mse']:.4f} |")
print(f"aec-train final val MSE after batchnorm re-estimation: {train['val_mse']:.4f} ({train['val_psnr']:.2f} dB)")
print(f"peak RSS: aec-train {rss(out + '/aec.time'):.0f} MiB, PyTorch {rss(out + '/torch.time'):.0f} MiB")
PY
echo "command: bench/train_bench.sh $data $epochs $threads"
