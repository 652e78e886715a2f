#!/usr/bin/env bash
# What `tuning.busy_poll` costs and what it buys, away from saturation: ringway with each
# budget of BUDGETS (default "0s 50us"), and HAProxy at its defaults for reference, in front
# of the same origin as bench/http.sh.
#
#   bench/busy_poll.sh                          # RUNS=3, prints a Markdown table on stdout
#   BUDGETS="0s 20us 50us 200us" RUNS=5 bench/busy_poll.sh
#
# Per proxy and run:
#   rate R  : h2load --h1 -t1 -c10 --rps R/10 GET /small for DURATION s, for each R of RATES
#             -> the proxy's CPU time as a share of one core (its own threads' run time)
#   serial  : wrk -t1 -c1 GET /small for DURATION s: one client, one request at a time
#             -> req/s, p50 and p99 (bench/http/latency.lua)
# Busy polling spends CPU after each burst of activity; the rate rows show how much at
# sparse and moderate load, the serial row the latency it saves. Layout as bench/http.sh:
# the proxy on CPU PROXY_CPU (1), the origin and the load generator on CPU 0. Rounds
# interleave the proxies; the table shows medians. Only 127.0.0.1 is used; every process is
# time-bounded and stopped by PID.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$ROOT/bench/lib.sh" || exit 1

RUNS="${RUNS:-3}"
DURATION="${DURATION:-5}"             # seconds per client run
BUDGETS="${BUDGETS:-0s 50us}"         # ringway's tuning.busy_poll, one row each
RATES="${RATES:-200 1000 5000 20000}" # requests/s offered in the rate rows (10 connections)
PROXY_CPU="${PROXY_CPU:-1}"
LOAD_CPU="${LOAD_CPU:-0}"
BACKEND_CPU="${BACKEND_CPU:-0}"
BACKEND_PORT="${BACKEND_PORT:-23000}"
BASE_PORT="${BASE_PORT:-23100}"
CLIENT_SLACK="${CLIENT_SLACK:-30}"
PROXY_MAX_SECS="${PROXY_MAX_SECS:-900}"
READY_SECS="${READY_SECS:-10}"
BUILD="${BUILD:-1}"
RINGWAY="${RINGWAY:-$ROOT/target/release/ringway}"
RINGWAY_TEMPLATE="${RINGWAY_TEMPLATE:-$ROOT/bench/http/ringway.ron}"
LUA_SCRIPT="${LUA_SCRIPT:-$ROOT/bench/http/latency.lua}"
SCENARIOS="rates" # for l7_tools: no h2load scenario to drop (h2load is required here)

PROXIES=""
for budget in $BUDGETS; do PROXIES+="ringway@$budget "; done
PROXIES+="haproxy"

TMP="$(mktemp -d /tmp/ringway-busy-poll.XXXXXX)"
RESULTS="$TMP/results.tsv"
OUT="$TMP/out"
mkdir -p "$OUT" "$TMP/www"
: >"$RESULTS"
PIDS=()
cleanup() {
    stop_all
    prune_tmp "$RESULTS and $OUT/" results.tsv out
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NOTES=()
l7_tools none h2load haproxy
RINGWAY_OK=1
ringway_binary 1
[[ -f "$RINGWAY_TEMPLATE" ]] || RINGWAY_OK=0
[[ "$RINGWAY_OK" == 1 ]] || { log "no ringway binary or config template"; exit 1; }

printf 'hello\n' >"$TMP/www/small"
NRATES=$(wc -w <<<"$RATES")
BACKEND_SECS=$((RUNS * $(wc -w <<<"$PROXIES") * ((NRATES + 1) * (DURATION + CLIENT_SLACK + 5) + 2 * READY_SECS + 10) + 60))
start_origin "$BACKEND_SECS" "/small: \"hello\\n\" (6 bytes)"
wait_ready http "$BACKEND_PORT" "$ORIGIN_PID" || { log "origin nginx did not start"; exit 1; }

# The proxies as bench/http.sh runs them (bench/http/ringway.ron, lib.sh's HAProxy config);
# ringway's busy_poll is the row's budget.
write_ringway() { # write_ringway FILE PORT
    sed -e "s/@PORT@/$2/g" -e "s/@BACKEND_PORT@/$BACKEND_PORT/g" -e "s/@BUSY_POLL@/$BUDGET/g" \
        "$RINGWAY_TEMPLATE" >"$1"
}
write_haproxy() { write_haproxy_http "$@"; } # write_haproxy FILE PORT

# start_proxy NAME INDEX: ringway@BUDGET or haproxy, pinned to PROXY_CPU, answering on PORT
start_proxy() {
    local name="$1"
    if [[ "$name" == ringway@* ]]; then
        BUDGET="${name#ringway@}"
        name=ringway
    fi
    launch_http_proxy "$name" "$2" || return 1
    await_http_proxy "$1"
}

client() { run_client $((DURATION + CLIENT_SLACK)) "$@"; }

round() { # round PROXY RUN: every rate, then the serial client
    local proxy="$1" run="$2" rate raw cpu0 cpu1 out
    client wrk -t1 -c10 -d2s "http://127.0.0.1:$PORT/small" >/dev/null 2>&1 # warm-up
    for rate in $RATES; do
        raw="$OUT/$proxy-r$rate-$run.txt"
        cpu0=$(proxy_cpu_now)
        client h2load --h1 -t1 -c10 --rps $((rate / 10)) -D "$DURATION" \
            "http://127.0.0.1:$PORT/small" >"$raw" 2>&1
        cpu1=$(proxy_cpu_now)
        out=$(parse_h2load <"$raw")
        if [[ -n "$out" && -n "$cpu0" && -n "$cpu1" ]]; then
            add_result "$proxy" "r$rate" "$run" "$out busy_pct=$(awk -v a="$cpu0" -v b="$cpu1" \
                -v d="$DURATION" 'BEGIN { printf "%.2f", (b - a) / (d * 1e7) }')" "$cpu0" "$cpu1"
        else
            run_failed "$proxy" "r$rate" "$run" "no result: $(tail -3 "$raw" | tr '\n' ' ')"
        fi
    done
    run_scenario serial_client "$proxy" serial "$run" "$PORT"
}

serial_client() { # serial_client SCENARIO PORT: one connection, one request at a time
    client wrk -t1 -c1 --latency -d "${DURATION}s" -s "$LUA_SCRIPT" "http://127.0.0.1:$2/small"
}

LOAD_START="$(loadavg)"
log "tmp=$TMP runs=$RUNS duration=${DURATION}s proxies=($PROXIES) rates=($RATES)"
rounds round 1

awk -F'\t' -v proxies="$PROXIES" -v rates="$RATES" -v runs="$RUNS" -v dur="$DURATION" "$AWK_STATS"'
{ add($1 SUBSEP $2 SUBSEP "busy", field($4, "busy_pct")); add($1 SUBSEP $2 SUBSEP "rps", field($4, "rps"))
  add($1 SUBSEP $2 SUBSEP "p50", field($4, "p50_us")); add($1 SUBSEP $2 SUBSEP "p99", field($4, "p99_us")) }
END {
    np = split(proxies, P, " "); nr = split(rates, R, " ")
    printf "Median of %d runs, %d s each. Rate columns: the proxy'"'"'s CPU time as a share of one core ", runs, dur
    printf "while h2load offers that many requests/s over 10 connections. Serial: wrk, one connection, "
    printf "one request at a time (latencies in µs).\n\n| proxy |"
    for (i = 1; i <= nr; i++) printf " CPU at %s/s |", R[i]
    printf " serial req/s | serial p50 | serial p99 |\n|---|"
    for (i = 1; i <= nr + 3; i++) printf "---:|"
    printf "\n"
    for (p = 1; p <= np; p++) {
        name = P[p]; sub(/^ringway@/, "ringway, busy_poll ", name)
        printf "| %s |", name
        for (i = 1; i <= nr; i++) printf " %s |", num(median(P[p] SUBSEP "r" R[i] SUBSEP "busy"), "%.1f%%")
        printf " %s | %s | %s |\n", num(median(P[p] SUBSEP "serial" SUBSEP "rps"), "%.0f"),
            num(median(P[p] SUBSEP "serial" SUBSEP "p50"), "%.0f"), num(median(P[p] SUBSEP "serial" SUBSEP "p99"), "%.0f")
    }
}' "$RESULTS"
print_notes
printf '\nTools: %s, %s, %s.\n' "$(wrk --version 2>&1 | head -1 | awk '{ print "wrk " $2 }')" \
    "$(h2load --version 2>&1 | head -1)" "$(haproxy -v 2>&1 | head -1 | awk '{ print "HAProxy " $3 }')"
print_load "$LOAD_START"
