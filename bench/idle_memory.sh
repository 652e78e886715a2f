#!/usr/bin/env bash
# Memory per idle keep-alive client connection: ringway, HAProxy and nginx, each in front
# of the same origin as bench/http.sh and configured as there.
#
#   bench/idle_memory.sh                 # RUNS=3 CONNS=1500, prints a Markdown table
#   CONNS=3000 RUNS=5 bench/idle_memory.sh
#
# Per proxy and run: read the proxy's resident memory (VmRSS) once it answers, open CONNS
# client connections (bench/idle_conns.rs), make one GET /small on each, read every
# response, and read the proxy's VmRSS again while all of them sit idle, kept alive. The
# difference over CONNS is what one idle client connection costs the proxy (its state and
# buffers; socket buffers are the kernel's and not in VmRSS). Upstream connections the
# proxy keeps to the origin are counted too: they are part of the difference.
#
# nginx here allows 4096 connections (bench/lib.sh), clients and upstream together: keep
# CONNS at most about 2000. Only 127.0.0.1 is used; every process is time-bounded and
# stopped by PID.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$ROOT/bench/lib.sh" || exit 1

RUNS="${RUNS:-3}"
CONNS="${CONNS:-1500}"
PROXIES="${PROXIES:-ringway haproxy nginx}"
PROXY_CPU="${PROXY_CPU:-1}"
LOAD_CPU="${LOAD_CPU:-0}"
BACKEND_CPU="${BACKEND_CPU:-0}"
BACKEND_PORT="${BACKEND_PORT:-23000}"
BASE_PORT="${BASE_PORT:-23100}"
CLIENT_SECS="${CLIENT_SECS:-120}" # the idle client's bound: opening, holding, closing
PROXY_MAX_SECS="${PROXY_MAX_SECS:-900}"
READY_SECS="${READY_SECS:-10}"
BUILD="${BUILD:-1}"
RINGWAY="${RINGWAY:-$ROOT/target/release/ringway}"
RINGWAY_TEMPLATE="${RINGWAY_TEMPLATE:-$ROOT/bench/http/ringway.ron}"
LUA_SCRIPT="${LUA_SCRIPT:-$ROOT/bench/http/latency.lua}" # checked by l7_tools
SCENARIOS=""

TMP="$(mktemp -d /tmp/ringway-idle-memory.XXXXXX)"
RESULTS="$TMP/results.tsv"
: >"$RESULTS"
PIDS=()
cleanup() {
    stop_all
    prune_tmp "$RESULTS" results.tsv
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NOTES=()
l7_tools none
RINGWAY_OK=1
ringway_binary 1
[[ -f "$RINGWAY_TEMPLATE" ]] || RINGWAY_OK=0

# The client is std only: rustc alone builds it in seconds.
IDLE_CONNS="$TMP/idle_conns"
rustc --edition 2021 -C opt-level=2 -o "$IDLE_CONNS" "$ROOT/bench/idle_conns.rs" >&2 || exit 1
need=$((CONNS + 64))
if (($(ulimit -n) < need)); then
    ulimit -n "$need" 2>/dev/null || { log "CONNS=$CONNS needs $need open files; the limit is $(ulimit -n)"; exit 1; }
fi

mkdir -p "$TMP/www"
printf 'hello\n' >"$TMP/www/small"
BACKEND_SECS=$((RUNS * $(wc -w <<<"$PROXIES") * (CLIENT_SECS + 2 * READY_SECS + 10) + 60))
start_origin "$BACKEND_SECS" "/small: \"hello\\n\" (6 bytes)"
wait_ready http "$BACKEND_PORT" "$ORIGIN_PID" || { log "origin nginx did not start"; exit 1; }

write_ringway() { # write_ringway FILE PORT: bench/http/ringway.ron at ringway's default tuning
    sed -e "s/@PORT@/$2/g" -e "s/@BACKEND_PORT@/$BACKEND_PORT/g" -e '/busy_poll: "@BUSY_POLL@"/d' \
        "$RINGWAY_TEMPLATE" >"$1"
}
write_haproxy() { write_haproxy_http "$@"; } # write_haproxy FILE PORT
write_nginx() { write_nginx_http "$@"; }     # write_nginx FILE PORT

start_proxy() { # start_proxy NAME INDEX
    launch_http_proxy "$1" "$2" || return 1
    await_http_proxy "$1"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
upstream_conns() { ss -Htn state established "( dport = :$BACKEND_PORT )" 2>/dev/null | wc -l; }

round() { # round PROXY RUN
    local proxy="$1" run="$2" before after line ups
    before=$(rss_kb "$PROXY_PROC")
    [[ -n "$before" ]] || { run_failed "$proxy" idle "$run" "no VmRSS for PID ${PROXY_PROC:-?}"; return; }
    coproc IDLE { timeout --signal=TERM --kill-after=5 "$CLIENT_SECS" taskset -c "$LOAD_CPU" \
        "$IDLE_CONNS" "127.0.0.1:$PORT" "$CONNS" /small 2>"$TMP/idle_conns.err"; }
    PIDS+=("$IDLE_PID")
    local pid="$IDLE_PID"
    if read -r -t "$CLIENT_SECS" line <&"${IDLE[0]}" && [[ "$line" == "ready $CONNS" ]]; then
        after=$(rss_kb "$PROXY_PROC")
        ups=$(upstream_conns)
        add_result "$proxy" idle "$run" "rss_before_kb=$before rss_idle_kb=$after upstream=$ups" "" ""
    else
        run_failed "$proxy" idle "$run" "client: $(tail -2 "$TMP/idle_conns.err" | tr '\n' ' ')"
    fi
    local to_client="${IDLE[1]}"
    exec {to_client}>&- # closing its input: the client closes every connection and exits
    wait "$pid" 2>/dev/null
}

LOAD_START="$(loadavg)"
log "tmp=$TMP runs=$RUNS conns=$CONNS proxies=($PROXIES)"
rounds round 1

awk -F'\t' -v proxies="$PROXIES" -v runs="$RUNS" -v conns="$CONNS" "$AWK_STATS"'
{ b = field($4, "rss_before_kb"); a = field($4, "rss_idle_kb")
  add($1 SUBSEP "before", b); add($1 SUBSEP "idle", a); add($1 SUBSEP "per", (a - b) * 1024 / conns)
  add($1 SUBSEP "up", field($4, "upstream")) }
END {
    np = split(proxies, P, " ")
    printf "Median of %d runs. %d client connections, one GET /small each, then idle and kept alive. ", runs, conns
    printf "RSS is the proxy process'"'"'s resident memory; per connection = (idle - before) / %d.\n\n", conns
    printf "| proxy | RSS before | RSS with %d idle | per idle connection | upstream connections open |\n", conns
    printf "|---|---:|---:|---:|---:|\n"
    for (p = 1; p <= np; p++)
        printf "| %s | %s | %s | %s | %s |\n", P[p], num(median(P[p] SUBSEP "before") / 1024, "%.1f MiB"),
            num(median(P[p] SUBSEP "idle") / 1024, "%.1f MiB"), num(median(P[p] SUBSEP "per"), "%.0f B"),
            num(median(P[p] SUBSEP "up"), "%.0f")
}' "$RESULTS"
print_notes
printf '\nTools: %s, %s.\n' "$(haproxy -v 2>&1 | head -1 | awk '{ print "HAProxy " $3 }')" "$(nginx -v 2>&1 | sed 's/^nginx version: //')"
print_load "$LOAD_START"
