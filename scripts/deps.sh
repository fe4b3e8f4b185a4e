#!/bin/sh
# Installs the Debian 12 packages aec needs to build, test and benchmark,
# skipping what is already there. Run as root (or with sudo available).
#   scripts/deps.sh          build + test dependencies
#   scripts/deps.sh --bench  also wrk, PyTorch, JPEG/WebP tools for bench/
set -eu
pkgs="build-essential cmake pkg-config libopenblas-dev libcjson-dev libstb-dev
libmicrohttpd-dev libcurl4-openssl-dev python3 curl ca-certificates prometheus
clang-format"
if [ "${1:-}" = "--bench" ]; then
    pkgs="$pkgs wrk python3-torch python3-numpy python3-pil python3-fastapi python3-uvicorn
libjpeg-turbo-progs webp gnuplot-nox"
fi
if [ "${1:-}" = "--fuzz" ]; then
    pkgs="$pkgs clang-14 libclang-rt-14-dev"
fi
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
