#!/bin/sh
# Builds the libFuzzer targets (clang-14, ASan + UBSan) and runs each for
# SECONDS (default 60) on a scratch copy of its seed corpus, so the repo's
# seeds stay small. Any crash, leak, timeout or UBSan report fails the run
# and leaves the reproducer in build-fuzz/artifacts/.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
[ $# -gt 0 ] && shift
"$root/scripts/deps.sh" --fuzz
CC=clang-14 cmake -S "$root" -B "$root/build-fuzz" -DAEC_FUZZ=ON -DBUILD_TESTING=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build-fuzz" -j "$(nproc)" >/dev/null
targets=${*:-$(cd "$root/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//')}
mkdir -p "$root/build-fuzz/artifacts"
status=0
for t in $targets; do
    name=${t#fuzz_}
    [ "$name" = safetensors ] && name=model_load # the same files seed the container parser
    seeds=$root/tests/fuzz/corpus/$name
    work=$(mktemp -d)
    [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/
    dict=""
    [ -f "$root/tests/fuzz/$name.dict" ] && dict="-dict=$root/tests/fuzz/$name.dict"
    echo "== $t for ${secs}s"
    # shellcheck disable=SC2086
    if UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
        "$root/build-fuzz/tests/fuzz/$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$root/build-fuzz/artifacts/$t-" $dict "$work" \
        >"$root/build-fuzz/$t.log" 2>&1; then
        grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$root/build-fuzz/$t.log" |
            tr '\n' ' '
        grep -oE "cov: [0-9]+ ft: [0-9]+" "$root/build-fuzz/$t.log" | tail -1
    else
        echo "FAILED: $t (log: build-fuzz/$t.log)"
        tail -30 "$root/build-fuzz/$t.log"
        status=1
    fi
    rm -rf "$work"
done
exit $status
