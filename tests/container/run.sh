#!/usr/bin/env bash
# tests/container/run.sh - builds the top-level Dockerfile and tests the image
# the way a user runs it. Needs root (rootful podman, no registry and no
# Docker engine: ../shared/tools/container-smoke makes debian:bookworm-slim
# locally with debootstrap and installs podman via apt on first use).
#
#   0. docker/ manifests: tests/container/check_manifests.py (needs python3-yaml).
#   1. container-smoke: build the image (its build stage runs ctest), run it,
#      wait for GET /healthz = 200, stop it.
#   2. Training in the container, as documented: aec-train on a few photos
#      mounted at /data writes a model to a mounted /models directory.
#   3. The shipped image, started as `docker run -p 8080:8080 IMAGE` would
#      (plus --read-only, as Kubernetes' readOnlyRootFilesystem): POST
#      /encode (JSON and binary) -> /decode -> PNG, /anomaly -> score,
#      /healthz, /readyz, /v1/model, /metrics, the image's HEALTHCHECK, aecd
#      is PID 1 as uid 10001; `podman stop` (SIGTERM) -> exit code 0.
#   4. A folder of models from the host: -v models:/models serves it; a model
#      renamed into the folder and `podman kill -s HUP` (docker kill -s HUP)
#      is served as ?model=NAME without a restart.
#
# Exit 0: passed, or "SKIP: ..." when podman cannot be installed or run at
# all here (not root, no ../shared/tools/container-smoke, no apt mirror).
# Set AEC_CONTAINER_TEST_REQUIRED=1 to turn a skip into a failure.
# Any real failure: exit 1 with "FAIL: ..." and the container's logs.
#
# Environment (all optional):
#   AEC_SHARED_DIR      the shared/ folder          [<repo>/../shared]
#   AEC_CONTAINER_TAG   image tag to build           [aec:container-test]
#   AEC_CONTAINER_PORT  first host port to try       [18080]
#   AEC_RUN_TESTS=0     skip ctest in the image's build stage
#   AEC_CTEST_ARGS      extra ctest arguments for the build stage, e.g. "-E test_stress"
#   AEC_CONTAINER_RM_IMAGE=1  remove the image at the end (default: kept as build cache)
#
# If models/default.safetensors is not in the tree (a checkout without the
# shipped model), the image is built from a temporary copy of the tree whose
# models/ holds the model trained in step 2 (said so in the output).
# tests/container/compose.sh tests docker/compose.yaml (replicas + nginx).
set -euo pipefail

t_start=$SECONDS
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${AEC_SHARED_DIR:-$root/../shared}
smoke=$shared/tools/container-smoke
tag=${AEC_CONTAINER_TAG:-aec:container-test}
base_port=${AEC_CONTAINER_PORT:-18080}

say() { printf '[container-test] %s\n' "$*"; }
skip() {
    if [[ ${AEC_CONTAINER_TEST_REQUIRED:-0} == 1 ]]; then
        printf '[container-test] FAIL (AEC_CONTAINER_TEST_REQUIRED=1): cannot run: %s\n' "$*" >&2
        exit 1
    fi
    printf 'SKIP: container test: %s\n' "$*"
    exit 0
}
fail() {
    printf '[container-test] FAIL: %s\n' "$*" >&2
    exit 1
}
phase() { say "-- $* (t=$((SECONDS - t_start)) s)"; }

# ------------------------------------------------------------ 0. the manifests
# compose.yaml, k8s/*.yaml, nginx.conf: parse, and agree with aecd's defaults.
py=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import yaml' 2>/dev/null; then py=$p; break; fi
done
if [[ -n $py ]]; then
    "$py" "$root/tests/container/check_manifests.py" || fail "docker/ manifests (above)"
else
    say "NOTE: no python3 with PyYAML (python3-yaml): manifests not checked"
fi

# ------------------------------------------------------------ can we run at all?
[[ $(id -u) -eq 0 ]] || skip "needs root (rootful podman)"
[[ -f $smoke ]] || skip "$smoke not found (the shared/ folder is not beside the repository)"
[[ -f $root/Dockerfile ]] || fail "no Dockerfile in $root"

work=$(mktemp -d /tmp/aec-container-test.XXXXXX)
chmod 755 "$work"
containers=()
P=(podman --runtime runc --cgroup-manager cgroupfs)

cleanup() {
    local rc=$?
    set +e
    for c in "${containers[@]+"${containers[@]}"}"; do
        if "${P[@]}" container exists "$c" 2>/dev/null; then
            "${P[@]}" rm -f -t 2 "$c" >/dev/null 2>&1
        fi
    done
    if [[ ${AEC_CONTAINER_RM_IMAGE:-0} == 1 ]]; then
        "${P[@]}" rmi -f "$tag" >/dev/null 2>&1
    fi
    rm -rf "$work"
    say "total time $((SECONDS - t_start)) s"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

phase "preparing podman and the debian:bookworm-slim base image"
if ! bash "$smoke" --base-only >"$work/base.log" 2>&1; then
    tail -n 20 "$work/base.log" >&2
    skip "container-smoke could not install podman or make the base image (no apt mirror?)"
fi
if ! command -v podman >/dev/null || ! command -v curl >/dev/null; then
    skip "podman or curl is still missing after container-smoke --base-only"
fi

# podman's default rlimits cannot be applied without CAP_SYS_RESOURCE; use
# what the host grants (the same as container-smoke).
hn=$(ulimit -Hn); hu=$(ulimit -Hu)
[[ $hn == unlimited || $hn -gt 1048576 ]] && hn=1048576
[[ $hu == unlimited || $hu -gt 32768 ]] && hu=32768
U=(--ulimit "nofile=$hn:$hn" --ulimit "nproc=$hu:$hu")
# Docker image format keeps the Dockerfile's HEALTHCHECK (OCI drops it).
export BUILDAH_FORMAT=docker

build_args=()
[[ -n ${AEC_RUN_TESTS:-} ]] && build_args+=(--build-arg "AEC_RUN_TESTS=$AEC_RUN_TESTS")
[[ -n ${AEC_CTEST_ARGS:-} ]] && build_args+=(--build-arg "AEC_CTEST_ARGS=$AEC_CTEST_ARGS")

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
next_port=$base_port
free_port() { # sets $port to a free loopback port >= next_port
    port=$next_port
    while ! port_free "$port"; do
        port=$((port + 1))
        ((port < base_port + 200)) || fail "no free port in $base_port..$((base_port + 200))"
    done
    next_port=$((port + 1))
}

# ------------------------------------------------------------ test images
# Photos for training and requests: real cat photos from shared/ when
# present, else synthetic PNGs.
mkdir -p "$work/photos"
cats=$shared/data/cats
if [[ -f $cats/cat.0.jpg ]]; then
    for i in $(seq 0 23); do cp "$cats/cat.$i.jpg" "$work/photos/"; done
    sample=$work/photos/cat.0.jpg
    sample_type=image/jpeg
else
    say "no $cats: using synthetic PNGs"
    command -v python3 >/dev/null || fail "python3 is needed to make synthetic PNGs"
    python3 - "$work/photos" <<'EOF'
import random, struct, sys, zlib
def png(path, w, h, rng):
    cx, cy, r = rng.randrange(w), rng.randrange(h), rng.randrange(5, 20)
    col = [rng.randrange(256) for _ in range(3)]
    rows = bytearray()
    for y in range(h):
        rows.append(0)
        for x in range(w):
            if (x - cx) ** 2 + (y - cy) ** 2 < r * r:
                rows += bytes(col)
            else:
                rows += bytes(((x * 255) // w, (y * 255) // h, 128))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(bytes(rows))) + chunk(b"IEND", b""))
rng = random.Random(1)
for i in range(24):
    png(f"{sys.argv[1]}/synthetic{i:02d}.png", 64, 48, rng)
EOF
    sample=$work/photos/synthetic00.png
    sample_type=image/png
fi
mkdir -p "$work/models"
chown 10001:10001 "$work/models" # the image's user writes here

# ------------------------------------------------------------ helpers
logs_of() {
    say "logs of $1:"
    "${P[@]}" logs "$1" 2>&1 | tail -n 40 | sed 's/^/    /' >&2 || true
}
# run_container NAME PORT [podman run options...]: starts IMAGE detached.
run_container() {
    local name=$1 p=$2
    shift 2
    containers+=("$name")
    # the systemd health-check timer is not available here; the check is
    # run by hand below (podman healthcheck run)
    "${P[@]}" run -d --name "$name" "${U[@]}" --health-interval disable \
        -p "127.0.0.1:$p:8080" "$@" "$tag" >"$work/$name.run" 2>&1 ||
        { cat "$work/$name.run" >&2; fail "podman run $name failed"; }
}
wait_ready() { # NAME PORT
    local i code=000
    for i in $(seq 1 60); do
        state=$("${P[@]}" inspect -f '{{.State.Status}}' "$1" 2>/dev/null || echo gone)
        [[ $state == running || $state == created || $state == configured ]] ||
            { logs_of "$1"; fail "$1 is $state before it was ready"; }
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$2/readyz" || true)
        [[ $code == 200 ]] && return 0
        sleep 0.5
    done
    logs_of "$1"
    fail "$1: GET /readyz answered $code, not 200, within 30 s"
}
# req NAME OUT METHOD URL [curl args...]: sets $status and $ctype.
req() {
    local name=$1 out=$2 method=$3 url=$4
    shift 4
    local r
    r=$(curl -sS -X "$method" -o "$out" -w '%{http_code} %{content_type}' --max-time 60 "$@" "$url") ||
        { logs_of "$name"; fail "$method $url: curl failed"; }
    status=${r%% *}
    ctype=${r#* }
}
expect_status() { # NAME WANT WHAT BODYFILE
    if [[ $status != "$2" ]]; then
        say "body: $(head -c 400 "$4" 2>/dev/null)"
        logs_of "$1"
        fail "$3: HTTP $status, expected $2"
    fi
}
is_png() { [[ $(head -c 8 "$1" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]]; }
stop_expect_0() { # NAME
    local t0=$SECONDS rc
    "${P[@]}" stop -t 30 "$1" >/dev/null 2>"$work/$1.stop" ||
        { cat "$work/$1.stop" >&2; fail "podman stop $1 failed"; }
    rc=$("${P[@]}" inspect --format '{{.State.ExitCode}}' "$1")
    if [[ $rc != 0 ]]; then
        logs_of "$1"
        fail "$1: aecd exited with $rc after SIGTERM, expected 0"
    fi
    grep -q 'aecd stopped' < <("${P[@]}" logs "$1" 2>&1) ||
        { logs_of "$1"; fail "$1: no 'aecd stopped' in the log after SIGTERM"; }
    say "$1: podman stop -> SIGTERM -> exit code 0 in $((SECONDS - t0)) s"
}

# ------------------------------------------------------------ 1. build + smoke
ctx=$root
fallback=0
if [[ ! -f $root/models/default.safetensors ]]; then
    fallback=1
    say "NOTE: models/default.safetensors is not in the tree: building from a copy of the"
    say "      tree whose models/ holds the model trained in the container (step 2)"
    ctx=$work/ctx
    mkdir -p "$ctx"
    tar -C "$root" --exclude=./.git --exclude='./build*' -cf - . | tar -C "$ctx" -xf -
    mkdir -p "$ctx/models"
    phase "building $tag (no model yet)"
    "${P[@]}" build --pull=never --layers -t "$tag" ${build_args[@]+"${build_args[@]}"} \
        "$ctx" >"$work/build.log" 2>&1 ||
        { tail -n 60 "$work/build.log" >&2; fail "podman build failed (see above)"; }
fi

if ((fallback == 0)); then
    free_port
    phase "container-smoke: build $tag, run, GET /healthz (port $port)"
    bash "$smoke" ${build_args[@]+"${build_args[@]}"} -c 8080 -t 60 "$ctx" "$tag" "$port" \
        >"$work/smoke.log" 2>&1 ||
        { grep -v '^\[ *[0-9]*%\]' "$work/smoke.log" | tail -n 80 >&2; fail "container-smoke failed (see above)"; }
    grep '^\[container-smoke\]' "$work/smoke.log" | sed 's/^/    /'
fi

# ------------------------------------------------------------ 2. training in the container
phase "aec-train in the container: /data (24 photos) -> /models/ci.safetensors"
"${P[@]}" run --rm "${U[@]}" --health-interval disable \
    -v "$work/photos:/data:ro" -v "$work/models:/models" "$tag" \
    aec-train --data /data --out /models/ci.safetensors --arch conv --size 16 --epochs 1 \
    --batch 8 --threads 2 --quiet >"$work/train.log" 2>&1 ||
    { cat "$work/train.log" >&2; fail "aec-train in the container failed"; }
[[ -s $work/models/ci.safetensors ]] || fail "aec-train wrote no /models/ci.safetensors"
say "trained $(stat -c %s "$work/models/ci.safetensors") bytes, owned by uid $(stat -c %u "$work/models/ci.safetensors")"

# the aec file tool in the image, on its baked photo codec: compress, info, decompress
if [[ -f $root/models/photo.safetensors ]]; then
    phase "aec compress / info / decompress in the container"
    mkdir -p "$work/files" && cp "$sample" "$work/files/in" && chmod -R a+rwX "$work/files"
    "${P[@]}" run --rm "${U[@]}" --health-interval disable -v "$work/files:/w" "$tag" \
        sh -c 'aec compress /w/in -q 40 -o /w/in.aec && aec info /w/in.aec && aec decompress /w/in.aec -o /w/out.png' \
        >"$work/aec.log" 2>&1 || { cat "$work/aec.log" >&2; fail "aec in the container failed"; }
    is_png "$work/files/out.png" || fail "aec decompress in the container: no PNG"
    grep -q 'version 3' "$work/aec.log" || { cat "$work/aec.log" >&2; fail "aec info: no 'version 3'"; }
    say "aec in the container: $(stat -c %s "$work/files/in.aec") B stream, $(stat -c %s "$work/files/out.png") B PNG"
fi

if ((fallback == 1)); then
    cp "$work/models/ci.safetensors" "$ctx/models/default.safetensors"
    free_port
    phase "container-smoke: build $tag (with the model), run, GET /healthz (port $port)"
    bash "$smoke" ${build_args[@]+"${build_args[@]}"} -c 8080 -t 60 "$ctx" "$tag" "$port" \
        >"$work/smoke.log" 2>&1 ||
        { grep -v '^\[ *[0-9]*%\]' "$work/smoke.log" | tail -n 80 >&2; fail "container-smoke failed (see above)"; }
    grep '^\[container-smoke\]' "$work/smoke.log" | sed 's/^/    /'
fi
size=$("${P[@]}" image inspect --format '{{.Size}}' "$tag")
say "image $tag: $((size / 1000000)) MB"

# ------------------------------------------------------------ 3. the shipped image
a=aec-ct-$$-shipped
free_port
pa=$port
phase "serving the baked model: $a on 127.0.0.1:$pa (read-only root filesystem)"
run_container "$a" "$pa" --read-only --read-only-tmpfs=false
wait_ready "$a" "$pa"
base=http://127.0.0.1:$pa

req "$a" "$work/healthz" GET "$base/healthz"
expect_status "$a" 200 "GET /healthz" "$work/healthz"
req "$a" "$work/model.json" GET "$base/v1/model"
expect_status "$a" 200 "GET /v1/model" "$work/model.json"
grep -q '"id":"aec-[0-9a-f]\{16\}"' "$work/model.json" || fail "GET /v1/model: no model id: $(head -c 200 "$work/model.json")"

req "$a" "$work/enc.json" POST "$base/encode" -H "Content-Type: $sample_type" --data-binary "@$sample"
expect_status "$a" 200 "POST /encode ($(basename "$sample"))" "$work/enc.json"
grep -q '"latent":\[' "$work/enc.json" || fail "POST /encode: no latent in $(head -c 200 "$work/enc.json")"
req "$a" "$work/dec.png" POST "$base/decode" -H 'Content-Type: application/json' --data-binary "@$work/enc.json"
expect_status "$a" 200 "POST /decode (JSON latent)" "$work/dec.png"
[[ $ctype == image/png* ]] || fail "POST /decode: Content-Type '$ctype', expected image/png"
is_png "$work/dec.png" || fail "POST /decode: the body is not a PNG"
say "encode $(basename "$sample") -> $(stat -c %s "$work/enc.json") B JSON latent -> decode -> $(stat -c %s "$work/dec.png") B PNG"

req "$a" "$work/enc.bin" POST "$base/encode?format=binary&dtype=u8" -H "Content-Type: $sample_type" --data-binary "@$sample"
expect_status "$a" 200 "POST /encode?format=binary" "$work/enc.bin"
[[ $(head -c 4 "$work/enc.bin") == AECL ]] || fail "POST /encode?format=binary: no AECL magic"
req "$a" "$work/dec2.png" POST "$base/decode?width=96" -H 'Content-Type: application/x-aec-latent' --data-binary "@$work/enc.bin"
expect_status "$a" 200 "POST /decode (binary u8 latent)" "$work/dec2.png"
is_png "$work/dec2.png" || fail "POST /decode (binary): the body is not a PNG"

req "$a" "$work/anomaly.json" POST "$base/anomaly" -H "Content-Type: $sample_type" --data-binary "@$sample"
expect_status "$a" 200 "POST /anomaly" "$work/anomaly.json"
[[ $ctype == application/json* ]] || fail "POST /anomaly: Content-Type '$ctype'"
grep -Eq '"score":[-+0-9.eE]+' "$work/anomaly.json" || fail "POST /anomaly: no numeric score in $(head -c 300 "$work/anomaly.json")"
say "anomaly: $(head -c 200 "$work/anomaly.json")"

# the photo codec, when the tree ships it: any size in, the version-3 stream out, the PNG back at
# the photo's own size
if [[ -f $root/models/photo.safetensors ]]; then
    req "$a" "$work/photo.aec" POST "$base/encode?model=photo&quality=50" -H "Content-Type: $sample_type" --data-binary "@$sample"
    expect_status "$a" 200 "POST /encode?model=photo" "$work/photo.aec"
    [[ $(head -c 3 "$work/photo.aec") == AEC ]] || fail "POST /encode?model=photo: no AEC magic"
    req "$a" "$work/photo.png" POST "$base/decode" -H 'Content-Type: application/x-aec-latent' --data-binary "@$work/photo.aec"
    expect_status "$a" 200 "POST /decode (photo stream)" "$work/photo.png"
    is_png "$work/photo.png" || fail "POST /decode (photo stream): the body is not a PNG"
    say "photo codec: $(basename "$sample") -> $(stat -c %s "$work/photo.aec") B stream -> $(stat -c %s "$work/photo.png") B PNG"
fi

req "$a" "$work/bad.json" POST "$base/encode" -H 'Content-Type: image/png' --data-binary 'not an image'
expect_status "$a" 415 "POST /encode with bytes that are no image" "$work/bad.json"

req "$a" "$work/readyz" GET "$base/readyz"
expect_status "$a" 200 "GET /readyz" "$work/readyz"
req "$a" "$work/metrics" GET "$base/metrics"
expect_status "$a" 200 "GET /metrics" "$work/metrics"
grep -q '^aec_requests_total{endpoint="encode",status="200"} [1-9]' "$work/metrics" ||
    { grep aec_requests_total "$work/metrics" >&2 || true; fail "GET /metrics: no aec_requests_total for the /encode calls"; }

# The image's HEALTHCHECK (aecd --check-health) as Docker would run it.
if [[ $("${P[@]}" image inspect --format '{{if .HealthCheck}}yes{{end}}' "$tag" 2>/dev/null) == yes ]]; then
    "${P[@]}" healthcheck run "$a" >/dev/null 2>&1 || { logs_of "$a"; fail "the image's HEALTHCHECK failed"; }
    say "HEALTHCHECK (aecd --check-health) -> healthy"
else
    say "NOTE: the image has no HEALTHCHECK in its config (OCI format?); not checked"
fi
# aecd must be PID 1 (it gets docker stop's SIGTERM) and not root.
top=$("${P[@]}" top "$a" pid user comm 2>/dev/null | awk 'NR > 1 { print $1, $2, $3 }')
grep -Eq '^1 (aec|10001) aecd$' <<<"$top" || fail "expected aecd as PID 1, user aec; podman top says: $top"
say "PID 1 is aecd, user aec (10001)"

stop_expect_0 "$a"

# ------------------------------------------------------------ 4. models from the host, reloaded
b=aec-ct-$$-hostmodel
free_port
pb=$port
phase "serving a host folder: $b with -v models:/models (holding ci.safetensors)"
run_container "$b" "$pb" -v "$work/models:/models:ro"
wait_ready "$b" "$pb"
req "$b" "$work/model2.json" GET "http://127.0.0.1:$pb/v1/model"
expect_status "$b" 200 "GET /v1/model" "$work/model2.json"
grep -q '"input":{"channels":3,"height":16,"width":16}' "$work/model2.json" ||
    fail "the host model (16x16) is not the one served: $(head -c 300 "$work/model2.json")"
req "$b" "$work/enc3.json" POST "http://127.0.0.1:$pb/encode" -H "Content-Type: $sample_type" --data-binary "@$sample"
expect_status "$b" 200 "POST /encode (host model)" "$work/enc3.json"
say "the host model is served (input 16x16)"
# a second model arrives (temp name, then rename, as aec-train writes) and SIGHUP reloads
second=$root/models/default.safetensors # the 48x48 model, or the trained one when absent
[[ -f $second ]] || second=$work/models/ci.safetensors
cp "$second" "$work/models/.second.tmp"
mv "$work/models/.second.tmp" "$work/models/second.safetensors"
"${P[@]}" kill -s HUP "$b" >/dev/null || fail "podman kill -s HUP failed"
for _ in $(seq 1 100); do
    req "$b" "$work/models.json" GET "http://127.0.0.1:$pb/v1/models/second"
    [[ $status == 200 ]] && grep -q '"state":"ready"' "$work/models.json" && break
    sleep 0.1
done
grep -q '"state":"ready"' "$work/models.json" ||
    fail "after SIGHUP, /v1/models/second is not ready: $(head -c 300 "$work/models.json")"
req "$b" "$work/enc4.json" POST "http://127.0.0.1:$pb/encode?model=second" -H "Content-Type: $sample_type" --data-binary "@$sample"
expect_status "$b" 200 "POST /encode?model=second (after the reload)" "$work/enc4.json"
grep -q '"model_name":"second"' "$work/enc4.json" || fail "?model=second did not answer: $(head -c 200 "$work/enc4.json")"
say "SIGHUP reloaded the folder: ?model=second serves the new file, no restart"
stop_expect_0 "$b"

phase "PASS"
