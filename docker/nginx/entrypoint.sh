#!/bin/bash
# aec-lb: runs nginx and reloads it whenever the addresses of the "aecd"
# service name change (replicas scaled up or down, a replica restarted with
# a new address). Open-source nginx resolves "server aecd:8080" only when it
# starts or reloads; a reload is graceful (old workers finish their requests).
# Signals: TERM/QUIT/INT -> graceful stop of nginx (SIGQUIT); HUP -> reload.
set -u
svc=aecd
interval=${AEC_LB_RESOLVE_SECONDS:-5}

addrs() { getent ahosts "$svc" 2>/dev/null | awk '{ print $1 }' | sort -u | tr '\n' ' '; }

cur=
for ((i = 0; i < 60; i++)); do # the replicas may still be starting
    cur=$(addrs)
    [[ -n $cur ]] && break
    sleep 1
done
[[ -n $cur ]] || echo "aec-lb: '$svc' does not resolve; nginx will refuse to start" >&2
echo "aec-lb: upstream $svc = $cur" >&2

nginx -e stderr -g 'daemon off;' &
pid=$!
trap 'kill -QUIT "$pid" 2>/dev/null' TERM QUIT INT
trap 'kill -HUP "$pid" 2>/dev/null' HUP

while kill -0 "$pid" 2>/dev/null; do
    sleep "$interval" &
    wait $! # returns early when a trapped signal arrives
    new=$(addrs)
    if [[ -n $new && $new != "$cur" ]] && kill -0 "$pid" 2>/dev/null; then
        echo "aec-lb: upstream $svc changed from [ $cur] to [ $new]: reloading nginx" >&2
        nginx -e stderr -s reload && cur=$new
    fi
done
wait "$pid"
