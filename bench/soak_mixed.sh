#!/bin/sh
# Mixed good + hostile soak: REQUESTS (default 10^5) requests over 32
# connections against one aecd serving MODEL with --max-body 256K, a fixed
# mix of good /encode, /decode, /anomaly, /healthz, /readyz, /v1/model
# requests and ~30 kinds of hostile ones (bench/soak_mixed.py lists them).
# Prints the count by status class and per request kind, aecd's RSS after
# warm-up vs at the end, its open descriptors before vs after, and whether
# the good answers are unchanged at the end; exits 1 if a bar fails (any
# 5xx, a wrong good answer, RSS growth >= 5%, descriptor growth).
#   bench/soak_mixed.sh [REQUESTS] [MODEL]
# AECD=path/to/aecd picks the binary (default build/aecd).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
requests=${1:-100000}
model=${2:-$root/models/default.safetensors}
aecd=${AECD:-$root/build/aecd}
max_body=262144
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
"$aecd" --model "$model" --port 0 --port-file "$tmp/port" --max-body "$max_body" \
    --log-level warn 2>"$tmp/aecd.log" &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
[ -s "$tmp/port" ] || { cat "$tmp/aecd.log"; exit 1; }
echo "aecd $(basename "$model"), --max-body $max_body, 32 connections, $requests requests"
rc=0
python3 "$here/soak_mixed.py" --pid "$pid" --port "$(cat "$tmp/port")" --requests "$requests" \
    --connections 32 --max-body "$max_body" --log "$tmp/aecd.log" || rc=$?
kill "$pid"
wait "$pid" || { echo "FAIL: aecd did not exit 0 on SIGTERM"; rc=1; }
pid=
grep -c "level=warn" "$tmp/aecd.log" | sed 's/^/aecd warning lines: /'
echo "command: bench/soak_mixed.sh $requests"
exit $rc
