#!/usr/bin/env bash
# Serving benchmark: aecd, with its dynamic batcher on (the default) and off
# (--max-batch 1), against the peer a Python user would write instead
# (bench/peer_server.py: FastAPI + uvicorn + PyTorch on the same weights),
# under the same wrk load; plus the roofline: the served /encode rate as a
# fraction of the engine's in-process batched rate (build/bench/aec-bench-encode).
#
#   bench/serve_bench.sh [MODEL...]
#
# MODEL defaults to models/default.safetensors (skipped with a message when
# absent) and the reference MLP models/reference-mlp.safetensors (trained
# into a temp folder when absent: aec-train --arch mlp --epochs 1 --limit 2048;
# only the weights' shapes matter for speed).
#
# Loads, one at a time, each `wrk -t2 -cN -d${BENCH_SECONDS}s --latency` on
# 127.0.0.1 with a Lua script (bench/wrk/):
#   /encode  photo    the original JPEG photo (post_image.lua)
#   /encode  model    the same photo already at the model's input size (PNG)
#   /anomaly photo    the JPEG photo
#   /decode  latent   the JSON reply of one aecd /encode (post_image.lua: it posts any file)
# at each of BENCH_CONNECTIONS, against: aecd (batching on), aecd
# --max-batch 1 (at BENCH_NOBATCH_CONNECTIONS), and the peer. Every server is
# started here on a free loopback port and stopped before the next one starts;
# nothing else of ours runs during a load. Progress goes to stderr; the report
# (markdown) to stdout.
#
# Environment (defaults in brackets):
#   BENCH_SECONDS              seconds per load [10]
#   BENCH_CONNECTIONS          connection counts [1 4 16 64]
#   BENCH_NOBATCH_CONNECTIONS  connection counts for aecd --max-batch 1 [1 16 64]
#   BENCH_SERVERS              any of: aecd aecd-nobatch peer [all three]
#   BENCH_ENDPOINTS            any of: encode encode-model anomaly decode [all]
#   BENCH_DATA                 photo folder [../shared/data/cats]
#   BENCH_IMAGE                the photo [BENCH_DATA/cat.1.jpg; a synthetic PNG
#                              when there is no photo]
#   BENCH_TIMEOUT              wrk --timeout, seconds [30]
#   BENCH_ROOFLINE_SECONDS     seconds per batch size of aec-bench-encode [2]
#   BENCH_KEEP                 folder to keep the logs and raw wrk output in
#   PEER_THREADS               torch.set_num_threads of the peer [2]
#   AECD_FLAGS                 extra aecd options, e.g. "--threads 4"
#
# A default run (two models, 80 loads of 10 s) takes about 15-16 minutes.
# Needs a Release build in build/ (built here when missing), wrk, curl and
# /usr/bin/python3 with fastapi, uvicorn, torch, numpy and PIL (Debian
# packages; installed with apt-get when missing and running as root). Run it on a quiet machine: the
# client (wrk) and the server share the cores, as they would on any one box.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
PY=/usr/bin/python3

secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-1 4 16 64}
nobatch_conns=${BENCH_NOBATCH_CONNECTIONS:-1 16 64}
servers=${BENCH_SERVERS:-aecd aecd-nobatch peer}
endpoints=${BENCH_ENDPOINTS:-encode encode-model anomaly decode}
data=${BENCH_DATA:-$root/../shared/data/cats}
timeout=${BENCH_TIMEOUT:-30}
roof_secs=${BENCH_ROOFLINE_SECONDS:-2}
peer_threads=${PEER_THREADS:-2}
aecd_flags=${AECD_FLAGS:-}
invocation="$0${*:+ $*}"
for v in BENCH_SECONDS BENCH_CONNECTIONS BENCH_NOBATCH_CONNECTIONS BENCH_SERVERS BENCH_ENDPOINTS \
    BENCH_DATA BENCH_IMAGE BENCH_TIMEOUT BENCH_ROOFLINE_SECONDS BENCH_KEEP PEER_THREADS AECD_FLAGS; do
    if [ -n "${!v:-}" ]; then invocation="$v='${!v}' $invocation"; fi
done

log() { printf '[serve_bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

case "$secs" in '' | *[!0-9]*) die "BENCH_SECONDS must be a whole number of seconds (got '$secs')" ;; esac
for n in $conns $nobatch_conns; do
    case "$n" in '' | *[!0-9]* | 0) die "connection counts must be positive integers (got '$n')" ;; esac
done

# ---- prerequisites -----------------------------------------------------------

ensure_packages() {
    local need=() optional=()
    command -v wrk > /dev/null || need+=(wrk)
    command -v curl > /dev/null || need+=(curl)
    [ -x "$PY" ] || need+=(python3)
    local mod
    for mod in fastapi:python3-fastapi uvicorn:python3-uvicorn torch:python3-torch \
        numpy:python3-numpy PIL:python3-pil; do
        "$PY" -c "import ${mod%%:*}" 2> /dev/null || need+=("${mod#*:}")
    done
    # uvicorn's "standard" extras, used by the peer when present (its best case)
    for mod in uvloop:python3-uvloop httptools:python3-httptools; do
        "$PY" -c "import ${mod%%:*}" 2> /dev/null || optional+=("${mod#*:}")
    done
    [ ${#need[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
        [ ${#need[@]} -eq 0 ] && return 0
        die "missing: ${need[*]} (apt-get install ${need[*]})"
    fi
    log "installing ${need[*]} ${optional[*]} with apt-get"
    local all=("${need[@]}" "${optional[@]}")
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${all[@]}" > /dev/null 2>&1; then
        apt-get update -q > /dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" > /dev/null ||
            die "apt-get install ${need[*]} failed"
        [ ${#optional[@]} -eq 0 ] ||
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${optional[@]}" > /dev/null 2>&1 ||
            log "optional ${optional[*]} not installed; the peer uses asyncio/h11"
    fi
}

ensure_build() {
    local b=$root/build
    if [ ! -x "$b/aecd" ] || [ ! -x "$b/bench/aec-bench-encode" ] || [ ! -x "$b/aec-train" ]; then
        log "building (Release) in $b"
        cmake -S "$root" -B "$b" -DCMAKE_BUILD_TYPE=Release > /dev/null
        cmake --build "$b" -j2 > /dev/null
    fi
    local type
    type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$b/CMakeCache.txt" 2> /dev/null || true)
    [ "$type" = Release ] ||
        log "WARNING: $b is a '${type:-default}' build, not Release: aecd's numbers will be low"
}

ensure_packages
ensure_build
aecd_bin=$root/build/aecd

tmp=$(mktemp -d "${TMPDIR:-/tmp}/serve_bench.XXXXXX")
out=${BENCH_KEEP:-$tmp}
mkdir -p "$out/runs"
server_pid=
server_port=
server_kind=

cleanup() {
    local rc=$?
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2> /dev/null; then
        kill -TERM "$server_pid" 2> /dev/null || true
        sleep 1
        kill -0 "$server_pid" 2> /dev/null && kill -KILL "$server_pid" 2> /dev/null
        wait "$server_pid" 2> /dev/null || true
    fi
    rm -rf "$tmp"
    [ -n "${BENCH_KEEP:-}" ] && log "logs and raw results kept in $out"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- models and inputs ---------------------------------------------------------

models=()
if [ $# -gt 0 ]; then
    for m in "$@"; do
        [ -f "$m" ] || die "$m: no such model file"
        models+=("$(cd "$(dirname "$m")" && pwd)/$(basename "$m")")
    done
else
    if [ -f "$root/models/default.safetensors" ]; then
        models+=("$root/models/default.safetensors")
    else
        log "models/default.safetensors not found (not trained yet?): skipped"
    fi
    if [ -f "$root/models/reference-mlp.safetensors" ]; then
        models+=("$root/models/reference-mlp.safetensors")
    elif [ -d "$data" ]; then
        log "models/reference-mlp.safetensors not found: training one (1 epoch, 2048 photos; speed depends only on the shapes)"
        "$root/build/aec-train" --data "$data" --arch mlp --epochs 1 --limit 2048 --seed 1 \
            --out "$tmp/reference-mlp.safetensors" --quiet ||
            die "training the reference MLP failed"
        models+=("$tmp/reference-mlp.safetensors")
    else
        log "no models/reference-mlp.safetensors and no $data to train one on: skipped"
    fi
fi
[ ${#models[@]} -gt 0 ] || die "no model to benchmark (give MODEL files as arguments)"

photo=${BENCH_IMAGE:-}
if [ -z "$photo" ]; then
    if [ -f "$data/cat.1.jpg" ]; then
        photo=$data/cat.1.jpg
    elif [ -d "$data" ]; then
        photo=$(find "$data" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) 2> /dev/null |
            LC_ALL=C sort | head -n 1)
    fi
fi
if [ -z "$photo" ] || [ ! -f "$photo" ]; then
    photo=$tmp/synthetic.png
    log "no photo found (BENCH_IMAGE, or $data): using a synthetic 500x375 PNG instead"
    "$PY" - "$photo" << 'PY'
import sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(1)
y, x = np.mgrid[0:375, 0:500]
img = np.stack([x * 255 / 499, y * 255 / 374, (x + y) % 256], -1) + rng.normal(0, 12, (375, 500, 3))
Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(sys.argv[1])
PY
fi
case "$photo" in
*.png | *.PNG) photo_type=image/png ;;
*) photo_type=image/jpeg ;;
esac
photo_desc=$("$PY" -c "
import os, sys
from PIL import Image
im = Image.open(sys.argv[1])
print(f'{os.path.basename(sys.argv[1])} ({im.format} {im.width}x{im.height}, {os.path.getsize(sys.argv[1])} bytes)')" "$photo")

# model_info FILE -> "C H W" of the input, from the safetensors header
model_input() {
    "$PY" - "$1" << 'PY'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    meta = json.loads(f.read(n))["__metadata__"]
i = json.loads(meta["aec.input"])
print(i["channels"], i["height"], i["width"])
PY
}

# ---- servers -----------------------------------------------------------------

# start_server KIND MODEL TAG: aecd | aecd-nobatch | peer; sets server_pid/port.
start_server() {
    local kind=$1 model=$2 tag=$3
    local pf=$tmp/port.$kind logf=$out/$tag.$kind.log cmd
    rm -f "$pf"
    case "$kind" in
    aecd) cmd=("$aecd_bin" --model "$model" --host 127.0.0.1 --port 0 --port-file "$pf") ;;
    aecd-nobatch) cmd=("$aecd_bin" --model "$model" --host 127.0.0.1 --port 0 --port-file "$pf" --max-batch 1) ;;
    peer) cmd=("$PY" "$here/peer_server.py" "$model" --host 127.0.0.1 --port 0 --port-file "$pf"
        --threads "$peer_threads") ;;
    *) die "unknown server kind $kind" ;;
    esac
    # shellcheck disable=SC2206
    [ "$kind" = peer ] || cmd+=($aecd_flags)
    log "starting $kind: ${cmd[*]}"
    printf '%s\n' "${cmd[*]}" > "$out/$tag.$kind.cmd"
    "${cmd[@]}" > "$logf" 2>&1 &
    server_pid=$!
    server_kind=$kind
    for _ in $(seq 1 600); do
        if ! kill -0 "$server_pid" 2> /dev/null; then
            tail -n 20 "$logf" >&2
            die "$kind exited during startup (log above)"
        fi
        if [ -s "$pf" ]; then
            server_port=$(cat "$pf")
            if curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:$server_port/healthz" 2> /dev/null; then
                return 0
            fi
        fi
        sleep 0.2
    done
    die "$kind did not become healthy in 120 s (log: $logf)"
}

stop_server() {
    [ -n "$server_pid" ] || return 0
    kill -TERM "$server_pid" 2> /dev/null || true
    for _ in $(seq 1 150); do
        kill -0 "$server_pid" 2> /dev/null || break
        sleep 0.2
    done
    if kill -0 "$server_pid" 2> /dev/null; then
        log "$server_kind did not stop in 30 s: SIGKILL"
        kill -KILL "$server_pid" 2> /dev/null || true
    fi
    wait "$server_pid" 2> /dev/null || true
    server_pid=
}

# Requests still being worked on (a load's last ones go on after wrk hangs up).
in_flight() {
    if [ "$server_kind" = peer ]; then
        curl -fsS --max-time 5 "http://127.0.0.1:$server_port/healthz" 2> /dev/null |
            sed -n 's/.*"in_flight":\([0-9]*\).*/\1/p'
    else # the /metrics request itself counts
        curl -fsS --max-time 5 "http://127.0.0.1:$server_port/metrics" 2> /dev/null |
            awk '$1 == "aec_in_flight_requests" { print $2 - 1 }'
    fi
}

wait_idle() {
    local n
    for _ in $(seq 1 300); do
        n=$(in_flight)
        [ "${n:-1}" -le 0 ] 2> /dev/null && return 0
        sleep 0.2
    done
    log "WARNING: $server_kind still has ${n:-?} requests in flight after 60 s"
}

metrics_snapshot() { # FILE
    if [ "$server_kind" = peer ]; then : > "$1"; else
        curl -fsS --max-time 5 "http://127.0.0.1:$server_port/metrics" > "$1" 2> /dev/null || : > "$1"
    fi
}

# ---- loads -----------------------------------------------------------------------

endpoint_path() { case "$1" in encode | encode-model) echo /encode ;; *) echo "/$1" ;; esac; }

# wrk_args ENDPOINT TAG -> the script and its arguments
wrk_script_args() {
    case "$1" in
    encode | anomaly) echo "$here/wrk/post_image.lua" "$photo" "$photo_type" ;;
    encode-model) echo "$here/wrk/post_image.lua" "$tmp/$2.model.png" image/png ;;
    decode) echo "$here/wrk/post_image.lua" "$tmp/$2.latent.json" application/json ;;
    esac
}

# A few requests of each kind before the loads (first torch calls are slow).
warm_up() { # TAG
    local ep s a ct
    for ep in $endpoints; do
        read -r s a ct <<< "$(wrk_script_args "$ep" "$1")"
        for _ in 1 2 3; do
            curl -sS -o /dev/null --max-time 60 -H "Content-Type: $ct" --data-binary "@$a" \
                "http://127.0.0.1:$server_port$(endpoint_path "$ep")" || true
        done
    done
}

run_no=0
total_runs=0

run_load() { # TAG KIND ENDPOINT CONNS
    local tag=$1 kind=$2 ep=$3 c=$4
    local t=$((c < 2 ? c : 2)) s a ct
    read -r s a ct <<< "$(wrk_script_args "$ep" "$tag")"
    local url
    url="http://127.0.0.1:$server_port$(endpoint_path "$ep")"
    local cmd=(wrk -t"$t" -c"$c" -d"${secs}s" --timeout "${timeout}s" --latency -s "$s" "$url" -- "$a" "$ct")
    local base=$out/runs/$tag.$kind.$ep.c$c
    wait_idle
    metrics_snapshot "$base.m0"
    local l0 l1
    l0=$(wc -l < "$out/$tag.$kind.log")
    run_no=$((run_no + 1))
    "${cmd[@]}" > "$base.wrk" 2>&1 || log "wrk exited with $? (see $base.wrk)"
    wait_idle
    metrics_snapshot "$base.m1"
    l1=$(wc -l < "$out/$tag.$kind.log")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tag" "$kind" "$ep" "$c" "$base" "$l0" "$l1" "${cmd[*]}" \
        >> "$out/runs.tsv"
    log "[$run_no/$total_runs] $tag $kind $ep c=$c: $(awk '/^WRKRESULT/ {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "%.1f req/s, p50 %.2f ms, p99 %.2f ms, errors %d", v["requests"] / v["duration_us"] * 1e6,
            v["p50_us"] / 1000, v["p99_us"] / 1000, v["connect"] + v["read"] + v["write"] + v["timeout"] + v["non2xx"]
        found = 1 } END { if (!found) printf "no result line (see the .wrk file)" }' "$base.wrk")"
}

count_runs() {
    local k n=0 c
    for k in $servers; do
        local cs=$conns
        [ "$k" = aecd-nobatch ] && cs=$nobatch_conns
        for c in $cs; do n=$((n + $(wc -w <<< "$endpoints"))); done
    done
    echo $((n * ${#models[@]}))
}
total_runs=$(count_runs)
log "models: ${models[*]}"
log "photo: $photo_desc; $total_runs loads of ${secs} s: about $(((total_runs * (secs + 1) + 30 * ${#models[@]}) / 60 + 1)) minutes"

: > "$out/runs.tsv"
: > "$out/models.tsv"
mi=0
for model in "${models[@]}"; do
    mi=$((mi + 1))
    tag=m$mi
    read -r mc mh mw <<< "$(model_input "$model")"
    "$PY" - "$photo" "$tmp/$tag.model.png" "$mw" "$mh" "$mc" << 'PY'
import sys
from PIL import Image
src, dst, w, h, c = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
im = Image.open(src).convert("L" if c == 1 else "RGB")
im.resize((w, h), Image.BICUBIC, reducing_gap=None).save(dst)
PY
    printf '%s\t%s\t%s\t%s\t%s\n' "$tag" "$model" "$mc" "$mh" "$mw" >> "$out/models.tsv"
    log "== model $mi/${#models[@]}: $model (input ${mc}x${mh}x${mw})"
    for kind in $servers; do
        start_server "$kind" "$model" "$tag"
        base=http://127.0.0.1:$server_port
        if [ ! -s "$tmp/$tag.latent.json" ]; then # the /decode body: one /encode reply
            curl -fsS --max-time 60 -H "Content-Type: $photo_type" --data-binary "@$photo" "$base/encode" \
                > "$tmp/$tag.latent.json" || die "$kind /encode of the photo failed"
        fi
        # for the correctness check: both servers' latents of the model-size image and the photo
        curl -sS --max-time 60 -H "Content-Type: image/png" --data-binary "@$tmp/$tag.model.png" \
            "$base/encode" > "$out/$tag.$kind.check-model.json" || true
        curl -sS --max-time 60 -H "Content-Type: $photo_type" --data-binary "@$photo" \
            "$base/encode" > "$out/$tag.$kind.check-photo.json" || true
        if [ "$kind" = aecd ]; then
            curl -fsS "$base/v1/model" > "$out/$tag.v1model.json" 2> /dev/null || true
        fi
        warm_up "$tag"
        cs=$conns
        [ "$kind" = aecd-nobatch ] && cs=$nobatch_conns
        for ep in $endpoints; do
            for c in $cs; do
                run_load "$tag" "$kind" "$ep" "$c"
            done
        done
        stop_server
    done
    # the same BLAS thread count as the served aecd (its default: all cores)
    roof_args=("$model" "$roof_secs")
    if [[ " $aecd_flags " =~ [[:space:]]--blas-threads[=[:space:]]+([0-9]+)[[:space:]] ]]; then
        roof_args+=("${BASH_REMATCH[1]}")
    fi
    log "in-process roofline: aec-bench-encode ${roof_args[*]}"
    "$root/build/bench/aec-bench-encode" "${roof_args[@]}" > "$out/$tag.roofline.txt" 2>&1 ||
        log "aec-bench-encode failed (see $out/$tag.roofline.txt)"
done

# ---- report ----------------------------------------------------------------------

AECD_FLAGS=$aecd_flags "$PY" - "$out" "$invocation" "$secs" "$photo_desc" "$peer_threads" "$conns" << 'PY'
import json, os, re, sys
from collections import defaultdict

out, invocation, secs, photo_desc, peer_threads, conns = sys.argv[1:7]
max_conn = max(int(c) for c in conns.split())
SERVER = {"aecd": "aecd", "aecd-nobatch": "aecd --max-batch 1", "peer": "FastAPI+torch"}
ENDPOINT = {"encode": "/encode photo", "encode-model": "/encode model-size PNG",
            "anomaly": "/anomaly photo", "decode": "/decode JSON latent"}
EP_ORDER = ["encode", "encode-model", "anomaly", "decode"]
SV_ORDER = ["aecd", "aecd-nobatch", "peer"]


def wrk_result(path):
    r, bad = None, None
    for line in open(path, errors="replace"):
        if line.startswith("WRKRESULT"):
            r = {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
        elif line.startswith("WRKFIRSTBAD"):
            bad = line[len("WRKFIRSTBAD "):].strip()
    return r, bad


def metrics(path):
    m = {}
    if os.path.exists(path):
        for line in open(path):
            if line.startswith("#") or not line.strip():
                continue
            k, _, v = line.rpartition(" ")
            try:
                m[k] = float(v)
            except ValueError:
                pass
    return m


def roofline(path):
    rates = {}
    if os.path.exists(path):
        for line in open(path):
            mm = re.match(r"\|\s*(\d+)\s*\|\s*([\d.]+)\s*\|", line)
            if mm:
                rates[int(mm.group(1))] = float(mm.group(2))
    return rates


models = [l.rstrip("\n").split("\t") for l in open(f"{out}/models.tsv")]
runs = defaultdict(list)
for l in open(f"{out}/runs.tsv"):
    tag, kind, ep, c, base, l0, l1, cmd = l.rstrip("\n").split("\t")
    runs[tag].append(dict(kind=kind, ep=ep, c=int(c), base=base, l0=int(l0), l1=int(l1), cmd=cmd))

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print("# aecd serving benchmark\n")
print(f"command: `{invocation}` ({secs} s per load); machine: {cpu}, {os.cpu_count()} cores, "
      f"load average at the end {os.getloadavg()[0]:.2f}; client wrk on the same machine, loopback; "
      f"photo {photo_desc}.")
flags = os.environ.get("AECD_FLAGS", "")
print(f"Servers: `aecd` = build/aecd defaults (dynamic batcher: --max-batch 32, --batch-timeout-us 1000; "
      f"--blas-threads = cores; log level info, one log line per request)"
      f"{' with AECD_FLAGS ' + repr(flags) if flags else ''}; `aecd --max-batch 1` = batching off; "
      f"`FastAPI+torch` = bench/peer_server.py (uvicorn, 1 worker, torch threads {peer_threads}, "
      f"access log off, no batching).\n")

problems = []
for tag, path, c, h, w in models:
    rs = runs.get(tag, [])
    info = {}
    try:
        info = json.load(open(f"{out}/{tag}.v1model.json"))
    except (OSError, ValueError):
        pass
    desc = f"input {c}x{h}x{w}"
    if info:
        desc = (f"{info.get('id')}, input {c}x{h}x{w}, latent {info['latent']['dim']}, "
                f"{info.get('param_count', 0) / 1e6:.2f} M parameters")
    print(f"## {os.path.basename(path)} ({desc})\n")
    print(f"file: {path}\n")
    print("| endpoint | server | connections | req/s | p50 ms | p99 ms | errors | aecd mean batch |")
    print("|---|---|---|---|---|---|---|---|")
    res = {}
    rs.sort(key=lambda r: (EP_ORDER.index(r["ep"]), SV_ORDER.index(r["kind"]), r["c"]))
    for r in rs:
        wr, bad = wrk_result(r["base"] + ".wrk")
        m0, m1 = metrics(r["base"] + ".m0"), metrics(r["base"] + ".m1")
        batch = ""
        if r["kind"] != "peer" and m1:
            dn = m1.get("aec_batch_size_count", 0) - m0.get("aec_batch_size_count", 0)
            ds = m1.get("aec_batch_size_sum", 0) - m0.get("aec_batch_size_sum", 0)
            batch = f"{ds / dn:.1f}" if dn > 0 else "-"
        label = f"| {ENDPOINT[r['ep']]} | {SERVER[r['kind']]} | {r['c']} |"
        if wr is None:
            print(f"{label} no result | | FAILED | |")
            problems.append(f"{tag} {r['kind']} {r['ep']} c={r['c']}: wrk printed no result; "
                            f"`{r['cmd']}`; output: " + open(r["base"] + ".wrk", errors="replace").read()[-400:])
            continue
        errs = wr["connect"] + wr["read"] + wr["write"] + wr["timeout"] + wr["non2xx"]
        rps = wr["requests"] / wr["duration_us"] * 1e6
        res[(r["kind"], r["ep"], r["c"])] = dict(rps=rps, p50=wr["p50_us"] / 1e3, p99=wr["p99_us"] / 1e3)
        print(f"{label} {rps:.1f} | {wr['p50_us'] / 1e3:.2f} | {wr['p99_us'] / 1e3:.2f} | {errs:.0f} | {batch} |")
        if errs:
            problems.append(
                f"{tag} {r['kind']} {r['ep']} c={r['c']}: {errs:.0f} errors (connect {wr['connect']:.0f}, "
                f"read {wr['read']:.0f}, write {wr['write']:.0f}, timeout {wr['timeout']:.0f}, "
                f"non-2xx {wr['non2xx']:.0f}{'; first: ' + bad if bad else ''}); `{r['cmd']}`")
        # aecd's own view: every status it logged during the load other than 200
        if r["kind"] != "peer":
            logf = f"{out}/{tag}.{r['kind']}.log"
            lines = open(logf, errors="replace").read().splitlines()[r["l0"]:r["l1"]]
            odd = [l for l in lines if "msg=request" in l and "status=200 " not in l]
            cancelled = [l for l in odd if "status=499 " in l]
            other = [l for l in lines if "msg=request" not in l] + [l for l in odd if l not in cancelled]
            if other:
                problems.append(f"{tag} {r['kind']} {r['ep']} c={r['c']}: aecd logged {len(other)} "
                                f"non-200/unexpected lines:\n    " + "\n    ".join(other[:8]))
            if cancelled:
                problems.append(f"note: {tag} {r['kind']} {r['ep']} c={r['c']}: {len(cancelled)} requests "
                                f"logged 499 (wrk hung up on them when the run ended; not errors)")
    print()
    if rs:
        r0 = next((r for r in rs if r["kind"] == "aecd"), rs[0])
        print(f"load: `{re.sub(r'127.0.0.1:[0-9]+', '127.0.0.1:PORT', r0['cmd'])}` "
              f"(-t2, or -t1 at 1 connection; -cN per row)")
        for k in SV_ORDER:
            if os.path.exists(f"{out}/{tag}.{k}.cmd"):
                print(f"{SERVER[k]}: `{open(f'{out}/{tag}.{k}.cmd').read().strip()}`")
        print()

    # correctness: the peer's latent against aecd's
    def latent(kind, which):
        try:
            return json.load(open(f"{out}/{tag}.{kind}.check-{which}.json"))["latent"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
    a, p = latent("aecd", "model"), latent("peer", "model")
    if a is not None and p is not None:
        d = max(abs(x - y) for x, y in zip(a, p)) if len(a) == len(p) else float("inf")
        verdict = "OK" if d <= 1e-4 else "MISMATCH"
        line = f"peer check: /encode of the model-size PNG, max |aecd - peer| = {d:.2e} over {len(a)} values ({verdict}, want <= 1e-4)"
        ap, pp = latent("aecd", "photo"), latent("peer", "photo")
        if ap is not None and pp is not None and len(ap) == len(pp):
            line += f"; of the photo {max(abs(x - y) for x, y in zip(ap, pp)):.2e} (resizers differ: stb vs PIL)"
        print(line + "\n")
        if verdict != "OK":
            problems.append(f"{tag}: peer latent differs from aecd's by {d:.2e}")
    elif "peer" in {r["kind"] for r in rs} and "aecd" in {r["kind"] for r in rs}:
        print("peer check: could not compare (an /encode reply did not parse)\n")
        problems.append(f"{tag}: peer check failed to run")

    # roofline
    rates = roofline(f"{out}/{tag}.roofline.txt")
    served = res.get(("aecd", "encode-model", max_conn))
    print("### roofline\n")
    if rates:
        head = open(f"{out}/{tag}.roofline.txt").readline()
        bt = re.search(r"(\d+) threads", head)
        print(f"in-process encode (build/bench/aec-bench-encode, the serving path, images already "
              f"at the model size, {bt.group(1) if bt else '?'} threads): " +
              ", ".join(f"batch {b}: {v:.0f}/s" for b, v in sorted(rates.items())))
    if served and rates:
        fr = [f"{served['rps'] / rates[b]:.0%} of batch {b}" for b in (32, 64) if b in rates]
        print(f"\nserved /encode (model-size PNG, aecd, {max_conn} connections): {served['rps']:.1f} req/s = "
              + ", ".join(fr))
        nb = res.get(("aecd-nobatch", "encode-model", max_conn))
        if nb and 1 in rates:
            print(f"\nbatching off, {max_conn} connections: {nb['rps']:.1f} req/s = "
                  f"{nb['rps'] / rates[1]:.0%} of in-process batch 1 ({rates[1]:.0f}/s)")
    else:
        print("(needs the aecd /encode model-size load at "
              f"{max_conn} connections and aec-bench-encode's output)")
    print()
    # batch-1 latency
    parts = []
    for ep in ("encode", "encode-model"):
        vals = [(SERVER[k], res.get((k, ep, 1))) for k in SV_ORDER]
        vals = [f"{n} {v['p50']:.2f} ms" for n, v in vals if v]
        if vals:
            parts.append(f"{ENDPOINT[ep]}: " + ", ".join(vals))
    if parts:
        print("batch-1 latency (1 connection, p50): " + "; ".join(parts))
        a1, p1 = res.get(("aecd", "encode", 1)), res.get(("peer", "encode", 1))
        if a1 and p1:
            print(f"  -> aecd /encode p50 is {a1['p50'] / p1['p50']:.2f}x the peer's "
                  f"(includes the batcher's wait of up to --batch-timeout-us)")
        print()

print("## errors and failures\n")
real = [p for p in problems if not p.startswith("note:")]
if not real:
    print("none: every load finished with 0 errors and 0 non-2xx replies.")
for p in real:
    print(f"- {p}")
notes = [p for p in problems if p.startswith("note:")]
if notes:
    print(f"\n{len(notes)} notes (aecd logging 499 for requests wrk dropped at the end of a run):")
    for p in notes[:6]:
        print(f"- {p[6:]}")
PY
log "done"
