#!/bin/sh
# Runs every test: installs what is missing, then builds and runs the whole
# ctest suite twice, as a Release build and as a Debug build with
# AddressSanitizer + UBSan. Tests that need ../shared (real photos, PyTorch
# test vectors) skip with a message when it is absent.
#   scripts/test.sh            both configurations
#   AEC_TEST_CONFIGS=release scripts/test.sh   only one
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
configs=${AEC_TEST_CONFIGS:-"release asan"}
jobs=$(nproc)
for c in $configs; do
    case $c in
    release) dir=build; flags="-DCMAKE_BUILD_TYPE=Release" ;;
    asan) dir=build-asan; flags="-DCMAKE_BUILD_TYPE=Debug -DAEC_SANITIZE=ON" ;;
    *) echo "unknown config $c" >&2; exit 2 ;;
    esac
    echo "== $c build ($dir)"
    # shellcheck disable=SC2086
    cmake -S "$root" -B "$root/$dir" $flags -DAEC_WERROR=ON >/dev/null
    cmake --build "$root/$dir" -j "$jobs"
    echo "== $c tests"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir "$root/$dir" --output-on-failure -j "$jobs"
done
