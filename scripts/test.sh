#!/bin/sh
# Runs every test: installs what is missing, then builds and runs the whole
# ctest suite twice, as a Release build and as a Debug build with
# AddressSanitizer + UBSan. Tests that need ../shared (real photos, PyTorch
# test vectors) skip with a message when it is absent.
#   scripts/test.sh            both configurations
#   AEC_TEST_CONFIGS=release scripts/test.sh   only one
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh" --test
configs=${AEC_TEST_CONFIGS:-"release asan"}

# C sources stay clang-format clean (.clang-format at the top level).
if command -v clang-format >/dev/null 2>&1; then
    echo "== clang-format"
    (cd "$root" && git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror)
fi

# The API description must stay valid OpenAPI 3.1 (the integration tests check
# real responses against its schemas).
if command -v npx >/dev/null 2>&1; then
    echo "== openapi.yaml lint"
    (cd "$root" && npx --yes @redocly/cli@2.77.0 lint --format stylish openapi.yaml)
else
    echo "== openapi.yaml lint: SKIP (npx not found; install nodejs and npm)"
fi
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
