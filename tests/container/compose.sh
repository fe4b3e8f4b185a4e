#!/usr/bin/env bash
# tests/container/compose.sh - runs docker/compose.yaml for real: 3 aecd
# replicas behind the nginx load balancer, then checks that requests through
# the balancer reach several replicas and that none fails while the service
# is scaled down (3 -> 2) and a replica is restarted under load.
#
# No Docker engine: Debian's docker-compose (1.29) drives rootful podman
# through its Docker-compatible API socket, started here and stopped at the
# end. Podman has no systemd here to run health checks on a timer, so this
# script runs them (podman healthcheck run) every 2 s meanwhile.
#
# Needs root and ../shared/tools/container-smoke (for podman and the
# debian:bookworm-slim base image); installs docker-compose and aardvark-dns
# (container DNS) via apt when missing. Exit 0: passed, or "SKIP: ..." when
# that cannot be set up (AEC_CONTAINER_TEST_REQUIRED=1: fail instead).
# Environment: AEC_SHARED_DIR, AEC_CONTAINER_PORT (first port tried, 18180),
# AEC_RUN_TESTS / AEC_CTEST_ARGS (as for run.sh; passed as build args).
set -euo pipefail

t_start=$SECONDS
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${AEC_SHARED_DIR:-$root/../shared}
smoke=$shared/tools/container-smoke
base_port=${AEC_CONTAINER_PORT:-18180}
project=aecct$$

say() { printf '[compose-test] %s\n' "$*"; }
skip() {
    if [[ ${AEC_CONTAINER_TEST_REQUIRED:-0} == 1 ]]; then
        printf '[compose-test] FAIL (AEC_CONTAINER_TEST_REQUIRED=1): cannot run: %s\n' "$*" >&2
        exit 1
    fi
    printf 'SKIP: compose test: %s\n' "$*"
    exit 0
}
fail() {
    printf '[compose-test] FAIL: %s\n' "$*" >&2
    exit 1
}
phase() { say "-- $* (t=$((SECONDS - t_start)) s)"; }

[[ $(id -u) -eq 0 ]] || skip "needs root (rootful podman)"
[[ -f $smoke ]] || skip "$smoke not found"
[[ -f $root/models/default.safetensors ]] || fail "models/default.safetensors is missing"

work=$(mktemp -d /tmp/aec-compose-test.XXXXXX)
service_pid=
hc_pid=
load_pid=
compose_up=0
dc() { docker-compose -p "$project" -f "$root/docker/compose.yaml" "$@"; }

cleanup() {
    local rc=$?
    set +e
    [[ -n $load_pid ]] && kill "$load_pid" 2>/dev/null
    if ((compose_up)); then
        if ((rc != 0)); then
            say "logs:"
            dc logs --no-color --tail 30 2>&1 | sed 's/^/    /' >&2
        fi
        dc down -t 30 >"$work/down.log" 2>&1 || cat "$work/down.log" >&2
    fi
    [[ -n $hc_pid ]] && kill "$hc_pid" 2>/dev/null && wait "$hc_pid" 2>/dev/null
    [[ -n $service_pid ]] && kill "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null
    rm -rf "$work"
    say "total time $((SECONDS - t_start)) s"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

phase "preparing podman, docker-compose, aardvark-dns"
bash "$smoke" --base-only >"$work/base.log" 2>&1 ||
    { tail -n 20 "$work/base.log" >&2; skip "container-smoke could not install podman or make the base image"; }
need=()
command -v docker-compose >/dev/null || need+=(docker-compose)
[[ -x /usr/lib/podman/aardvark-dns || -x /usr/libexec/podman/aardvark-dns ]] || need+=(aardvark-dns)
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends install "${need[@]}" >"$work/apt.log" 2>&1 ||
        { apt-get -o DPkg::Lock::Timeout=600 -q update >/dev/null 2>&1 &&
            apt-get -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends install "${need[@]}" >"$work/apt.log" 2>&1; } ||
        { tail -n 5 "$work/apt.log" >&2; skip "cannot install ${need[*]}"; }
fi

# podman as the Docker API: runc, cgroupfs and rlimits the host can grant
# (as container-smoke does on the command line).
hn=$(ulimit -Hn); hu=$(ulimit -Hu)
[[ $hn == unlimited || $hn -gt 1048576 ]] && hn=1048576
[[ $hu == unlimited || $hu -gt 32768 ]] && hu=32768
cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$hn:$hn", "nproc=$hu:$hu"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
export CONTAINERS_CONF=$work/containers.conf
export BUILDAH_FORMAT=docker
CONTAINERS_CONF=$work/containers.conf podman system service --time=0 "unix://$work/podman.sock" \
    >"$work/service.log" 2>&1 &
service_pid=$!
export DOCKER_HOST=unix://$work/podman.sock
for _ in $(seq 50); do [[ -S $work/podman.sock ]] && break; sleep 0.1; done
[[ -S $work/podman.sock ]] || { cat "$work/service.log" >&2; fail "podman system service did not start"; }

port=$base_port
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
export AEC_LB_PORT=$port
lb=http://127.0.0.1:$port

args=()
[[ -n ${AEC_RUN_TESTS:-} ]] && args+=(--build-arg "AEC_RUN_TESTS=$AEC_RUN_TESTS")
[[ -n ${AEC_CTEST_ARGS:-} ]] && args+=(--build-arg "AEC_CTEST_ARGS=$AEC_CTEST_ARGS")
phase "docker-compose build (aec:latest, aec-lb:latest)"
dc build ${args[@]+"${args[@]}"} >"$work/build.log" 2>&1 ||
    { grep -v '^\[ *[0-9]*%\]' "$work/build.log" | tail -n 60 >&2; fail "docker-compose build failed"; }

# health checks by hand (no systemd timers): every 2 s, every container of the project
(
    while true; do
        for c in $(podman ps -q --filter "label=com.docker.compose.project=$project"); do
            podman healthcheck run "$c" >/dev/null 2>&1
        done
        sleep 2
    done
) </dev/null >/dev/null 2>&1 &
hc_pid=$!

phase "docker-compose up: 3 aecd replicas + lb on 127.0.0.1:$port"
compose_up=1
timeout 180 docker-compose -p "$project" -f "$root/docker/compose.yaml" up -d >"$work/up.log" 2>&1 ||
    { cat "$work/up.log" >&2; fail "docker-compose up failed"; }
n=$(podman ps -q --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=aecd" | wc -l)
((n == 3)) || fail "expected 3 aecd replicas running, found $n"
code=000
for _ in $(seq 60); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$lb/readyz" || true)
    [[ $code == 200 ]] && break
    sleep 0.5
done
[[ $code == 200 ]] || fail "GET /readyz through the lb: $code"

sample=$shared/data/cats/cat.1.jpg
ctype=image/jpeg
if [[ ! -f $sample ]]; then
    sample=$work/sample.png # an 8x8 PNG
    printf '%s' 'iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAbElEQVR4nBXNQRUAUQhCUaMYhShGeVGIQhSizB+XXA7ODDtouIHBQ4YOM8suWm5h8ZKl+0CskDiBsIioHhx76LiDw0eO3oN/4FVf+J8h0PduzBqZ8x/bxNQPwgaFy192SGgelC0q13/CJaXlA8Z7WAGfV950AAAAAElFTkSuQmCC' |
        base64 -d >"$sample"
    ctype=image/png
fi

phase "30 requests through the lb"
lbname=$(podman ps --format '{{.Names}}' --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=lb" | head -n1)
for i in $(seq 30); do
    c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "Content-Type: $ctype" \
        --data-binary "@$sample" "$lb/encode")
    [[ $c == 200 ]] || fail "POST /encode #$i through the lb: $c"
done
ups=$(podman logs "$lbname" 2>/dev/null | grep 'uri="/encode"' | grep -o 'upstream=[0-9a-f.:]*' | sort | uniq -c)
say "requests per replica:"
printf '%s\n' "$ups" | sed 's/^/    /'
(($(wc -l <<<"$ups") >= 2)) || fail "all requests went to one replica"

phase "load while scaling 3 -> 2 and restarting a replica"
(
    ok=0 bad=0
    end=$((SECONDS + 25))
    while ((SECONDS < end)); do
        c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "Content-Type: $ctype" \
            --data-binary "@$sample" "$lb/encode" || true)
        if [[ $c == 200 ]]; then ok=$((ok + 1)); else bad=$((bad + 1)); echo "status $c" >>"$work/load.bad"; fi
    done
    echo "$ok $bad" >"$work/load.result"
) &
load_pid=$!
sleep 3
dc up -d --no-deps --scale aecd=2 aecd >"$work/scale.log" 2>&1 || { cat "$work/scale.log" >&2; fail "scale to 2 failed"; }
sleep 8
victim=$(podman ps --format '{{.Names}}' --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=aecd" | head -n1)
podman restart -t 30 "$victim" >/dev/null 2>&1 || fail "podman restart $victim failed"
wait "$load_pid"
load_pid=
read -r ok bad <"$work/load.result"
say "under scaling and a restart: $ok requests OK, $bad failed"
podman logs "$lbname" 2>&1 | grep '^aec-lb:' | sed 's/^/    /'
((bad == 0)) || { sort "$work/load.bad" | uniq -c >&2; fail "$bad requests failed while scaling"; }
((ok > 0)) || fail "no request succeeded under load"

phase "docker-compose down"
dc down -t 30 >"$work/down.log" 2>&1 || { cat "$work/down.log" >&2; fail "docker-compose down failed"; }
compose_up=0
phase "PASS"
