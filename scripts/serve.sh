#!/bin/sh
# Quick start: install what is missing, build (Release), and serve the model
# shipped in models/ on http://127.0.0.1:8080 (options are passed to aecd).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" -j "$(nproc)"
exec "$root/build/aecd" --models "$root/models" "$@"
