#!/bin/sh
# Sustained load on aecd: wrk at 64 connections on /encode (a real photo) for
# SECONDS (default 90, about 10^5 requests on 2 cores), while a second client
# polls /healthz every 100 ms and aecd's resident memory is sampled every 5 s.
#   bench/soak.sh [SECONDS] [MODEL]
# Prints requests, errors, non-2xx, /healthz latency p50/p99/max, and RSS over
# time (the first sample after warm-up vs the last).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
secs=${1:-90}
model=${2:-$root/models/default.safetensors}
photo=${BENCH_IMAGE:-$root/../shared/data/cats/cat.1.jpg}
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
"$root/build/aecd" --model "$model" --port 0 --port-file "$tmp/port" --log-level warn 2>"$tmp/aecd.log" &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
port=$(cat "$tmp/port")
url=http://127.0.0.1:$port
(while kill -0 $pid 2>/dev/null; do
    grep VmRSS /proc/$pid/status | awk -v t="$(date +%s)" '{print t, $2}'
    sleep 5
done) >"$tmp/rss" &
(end=$(($(date +%s) + secs))
 while [ "$(date +%s)" -lt $end ]; do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$url/healthz"
    sleep 0.1
 done) >"$tmp/health" &
hpid=$!
wrk -t2 -c64 -d"${secs}s" --timeout 30s --latency -s "$here/wrk/post_image.lua" "$url/encode" \
    -- "$photo" image/jpeg >"$tmp/wrk" 2>&1
wait $hpid
echo "soak: $secs s, 64 connections, /encode of $(basename "$photo"), model $(basename "$model")"
grep -E "requests in|Non-2xx|Socket errors|Requests/sec|WRKRESULT" "$tmp/wrk" || true
python3 - "$tmp/health" "$tmp/rss" <<'PY'
import sys
h = [l.split() for l in open(sys.argv[1]) if l.strip()]
bad = [c for c, _ in h if c != "200"]
t = sorted(float(x) * 1000 for _, x in h)
q = lambda p: t[min(len(t) - 1, int(p * len(t)))]
print(f"/healthz: {len(t)} checks, {len(bad)} not 200, p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {t[-1]:.1f} ms")
r = [int(l.split()[1]) for l in open(sys.argv[2]) if l.strip()]
if len(r) > 3:
    warm = r[2]
    print(f"RSS (MiB): start {r[0]/1024:.1f}, after warm-up (10 s) {warm/1024:.1f}, end {r[-1]/1024:.1f}, max {max(r)/1024:.1f}; growth after warm-up {100*(r[-1]-warm)/warm:+.1f}%")
PY
grep -cE "level=(error|warn)" "$tmp/aecd.log" | sed 's/^/aecd warnings and errors logged: /'
echo "command: bench/soak.sh $secs"
