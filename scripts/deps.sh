#!/bin/sh
# Installs the Debian 12 packages aec needs, skipping what is already there.
# Run as root (or with sudo available).
#   scripts/deps.sh          build and run (aecd, aec-train)
#   scripts/deps.sh --test   also what the tests use: libcurl, promtool, clang-format,
#                            chromium + chromedriver (the page test), OpenCV's cascades
#                            (opencv-data: test_cascade reads the cat-face one)
#   scripts/deps.sh --bench  also wrk, PyTorch, FastAPI, OpenCV's cascades, and the
#                            non-cat pictures of the anomaly benchmarks (mate/gnome/plasma
#                            backgrounds, Fashion-MNIST)
#   scripts/deps.sh --fuzz   also clang-14 and its sanitizer runtimes
set -eu
pkgs="build-essential cmake pkg-config libopenblas-dev libcjson-dev libstb-dev
libmicrohttpd-dev python3 curl ca-certificates"
case "${1:-}" in
--test) pkgs="$pkgs libcurl4-openssl-dev prometheus clang-format chromium chromium-driver
opencv-data" ;;
--bench)
    pkgs="$pkgs libcurl4-openssl-dev wrk python3-torch python3-numpy python3-pil python3-fastapi
python3-uvicorn mate-backgrounds gnome-backgrounds dataset-fashion-mnist opencv-data
plasma-workspace-wallpapers
libjpeg-turbo-progs webp gnuplot-nox libavif-bin libjxl-tools libheif-examples"
    ;;
--fuzz) pkgs="$pkgs clang-14 libclang-rt-14-dev" ;;
"") ;;
*) echo "usage: scripts/deps.sh [--test|--bench|--fuzz]" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
