#!/usr/bin/env bash
# L7 benchmark: ringway as an HTTP/1.1 reverse proxy against HAProxy (mode http,
# http-reuse always) and nginx (proxy_pass to an upstream with keepalive), plus a "direct"
# row with no proxy as a ceiling. The origin is an nginx serving two static files.
#
#   bench/http.sh                      # RUNS=3, prints a Markdown table on stdout
#   RUNS=5 DURATION=20 bench/http.sh
#   PROXIES="direct haproxy nginx" BUILD=0 bench/http.sh
#
# Layout: the proxy runs on CPU $PROXY_CPU (default 1) with one worker/thread; the origin
# nginx (one worker) on $BACKEND_CPU (0) and the load generator (wrk / h2load, one thread)
# on $LOAD_CPU (0). Scenarios, each run $RUNS times per proxy (rounds interleave the
# proxies, so slow drift of a noisy machine hits all of them alike); the table shows medians:
#   small50  : wrk -t1 -c50  GET /small (6-byte body) for $DURATION s   -> req/s, p50/p99/p99.9
#   small200 : wrk -t1 -c200 GET /small                                  -> req/s, p50/p99/p99.9
#   big      : wrk -t1 -c16  GET /big ($BIG_BYTES, 1 MiB)                -> req/s, p50/p99/p99.9
#   h2load50 : h2load --h1 -t1 -c50 GET /small                           -> req/s, mean
# Percentiles come from bench/http/latency.lua (wrk's done() hook). The ringway config is
# bench/http/ringway.ron with the ports filled in. See bench/README.md. Only 127.0.0.1 is
# used. Every process this script starts is stopped by PID (trap on EXIT) and is also
# wrapped in `timeout`, so nothing outlives a killed run.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$ROOT/bench/lib.sh" || exit 1 # the helpers shared with l4.sh and https.sh

RUNS="${RUNS:-3}"
DURATION="${DURATION:-10}"            # seconds per measured client run
WARMUP_SECS="${WARMUP_SECS:-2}"       # untimed wrk -c50 /small after each proxy start; 0 = none
SMALL_CONNS="${SMALL_CONNS:-50}"      # small50 and h2load50
MANY_CONNS="${MANY_CONNS:-200}"       # small200
BIG_CONNS="${BIG_CONNS:-16}"          # big
BIG_BYTES="${BIG_BYTES:-1048576}"     # size of /big
WRK_TIMEOUT="${WRK_TIMEOUT:-5s}"      # wrk --timeout: a response slower than this is an error
SCENARIOS="${SCENARIOS:-small50 small200 big h2load50}"
PROXY_CPU="${PROXY_CPU:-1}"
LOAD_CPU="${LOAD_CPU:-0}"
BACKEND_CPU="${BACKEND_CPU:-0}"
BACKEND_PORT="${BACKEND_PORT:-23000}" # the origin nginx
BASE_PORT="${BASE_PORT:-23100}"       # proxy listens on BASE_PORT+k: k = 0 ringway, 10 haproxy, 20 nginx
CLIENT_SLACK="${CLIENT_SLACK:-30}"    # seconds: a client run is killed after DURATION + this
PROXY_MAX_SECS="${PROXY_MAX_SECS:-900}" # seconds: hard cap on any proxy process's life
READY_SECS="${READY_SECS:-10}"        # seconds for a proxy to answer GET /small with 200
BASELINE="${BASELINE:-haproxy}"       # the row the ratio columns divide by
FLOOR_PROXY="${FLOOR_PROXY:-ringway}" # the row checked against BASELINE under the table
PROXIES="${PROXIES:-direct ringway haproxy nginx}"
RINGWAY="${RINGWAY:-$ROOT/target/release/ringway}"
RINGWAY_TEMPLATE="${RINGWAY_TEMPLATE:-$ROOT/bench/http/ringway.ron}"
LUA_SCRIPT="${LUA_SCRIPT:-$ROOT/bench/http/latency.lua}"
BUILD="${BUILD:-1}"                   # 1: cargo build --release before running (if ringway is a row)
# Busy polling. Empty (the default): each proxy as it ships; ringway polls for its default
# budget after activity (tuning.busy_poll, config::DEFAULT_BUSY_POLL), HAProxy and nginx
# sleep at once. A budget (e.g. 50us): ringway's tuning.busy_poll set to it and HAProxy's
# `busy-polling` on (it never sleeps; nginx has none). 0s: off for both.
BUSY_POLL="${BUSY_POLL:-}"

TMP="$(mktemp -d /tmp/ringway-http.XXXXXX)"
RESULTS="$TMP/results.tsv"            # proxy <TAB> scenario <TAB> run <TAB> key=value fields
OUT="$TMP/out"                        # every client's raw output, one file per run
mkdir -p "$OUT" "$TMP/www"
: >"$RESULTS"
PIDS=()

cleanup() {
    stop_all
    if [[ -n "${RAW_OUT:-}" && -s "$RESULTS" ]]; then cp "$RESULTS" "$RAW_OUT"; fi
    # Keep the raw results (results.tsv and each client's output); drop configs, logs
    # and the served files.
    prune_tmp "$RESULTS and $OUT/" results.tsv out
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------------------
# Tools

NOTES=()   # printed under the table
l7_tools h2load50

RINGWAY_OK=1
if [[ " $PROXIES " == *" ringway "* ]]; then
    ringway_binary 1
    [[ -f "$RINGWAY_TEMPLATE" ]] || { log "no ringway config template at $RINGWAY_TEMPLATE"; RINGWAY_OK=0; }
    [[ "$RINGWAY_OK" == 1 ]] || NOTES+=("ringway rows are empty: no ringway binary or config template.")
fi

[[ "$(nproc)" -ge 2 ]] || log "warning: fewer than 2 CPUs; CPU $PROXY_CPU may not exist"

# ------------------------------------------------------------------------------------------
# Origin: one nginx worker serving static files, up for the whole run.

printf 'hello\n' >"$TMP/www/small"
head -c "$BIG_BYTES" /dev/zero >"$TMP/www/big"

# The origin lives as long as the whole run may take at worst (every client hitting its
# timeout), and not longer.
NPROXIES=$(wc -w <<<"$PROXIES")
NSCEN=$(wc -w <<<"$SCENARIOS")
BACKEND_SECS=$((RUNS * NPROXIES * ((NSCEN + 1) * (DURATION + CLIENT_SLACK + 5) + 2 * READY_SECS + 10) + 60))
start_origin "$BACKEND_SECS" "/small: \"hello\\n\" (6 bytes), /big: $BIG_BYTES bytes"
if ! wait_ready http "$BACKEND_PORT" "$ORIGIN_PID" || ! get_check http "$BACKEND_PORT" /big "$BIG_BYTES"; then
    log "origin nginx did not serve /small and /big on 127.0.0.1:$BACKEND_PORT; its output:"
    tail -n 20 "$TMP/origin.log" "$TMP/origin-error.log" >&2
    exit 1
fi

# ------------------------------------------------------------------------------------------
# Proxies

# busy_poll_off: BUSY_POLL is a zero duration ("0s", "0us", ...)
busy_poll_off() { [[ "$BUSY_POLL" =~ ^0+(\.0+)?(s|ms|us|ns)?$ ]]; }

# write_ringway FILE PORT: the template with the ports filled in, and busy_poll as BUSY_POLL
# says (its line dropped when BUSY_POLL is empty, so ringway's default applies)
write_ringway() {
    local busy=(-e "s/@BUSY_POLL@/$BUSY_POLL/g")
    [[ -z "$BUSY_POLL" ]] && busy=(-e '/busy_poll: "@BUSY_POLL@"/d')
    sed -e "s/@PORT@/$2/g" -e "s/@BACKEND_PORT@/$BACKEND_PORT/g" "${busy[@]}" \
        "$RINGWAY_TEMPLATE" >"$1"
}

write_haproxy() { # write_haproxy FILE PORT
    if [[ -n "$BUSY_POLL" ]] && ! busy_poll_off; then
        write_haproxy_http "$1" "$2" "" busy-polling
    else
        write_haproxy_http "$1" "$2"
    fi
}

write_nginx() { write_nginx_http "$@"; } # write_nginx FILE PORT

# start_proxy NAME INDEX: starts it pinned to PROXY_CPU; sets PROXY_PID, PROXY_PROC and PORT
start_proxy() {
    launch_http_proxy "$1" "$2" || return 1
    [[ "$1" == direct ]] && return 0
    await_http_proxy "$1" || return 1
    get_check http "$PORT" /big "$BIG_BYTES" || log "  $1: GET /big did not return 200 with $BIG_BYTES bytes"
}

client() { # client CMD ARGS...: the load generator pinned to the load CPU, time-bounded
    run_client $((DURATION + CLIENT_SLACK)) "$@"
}

scenario_client() { # scenario_client SCENARIO PORT: run_scenario's client run; sets PARSER
    local wrk=(wrk -t1 --latency --timeout "$WRK_TIMEOUT" -d "${DURATION}s" -s "$LUA_SCRIPT")
    case "$1" in
    small50) client "${wrk[@]}" -c "$SMALL_CONNS" "http://127.0.0.1:$2/small" ;;
    small200) client "${wrk[@]}" -c "$MANY_CONNS" "http://127.0.0.1:$2/small" ;;
    big) client "${wrk[@]}" -c "$BIG_CONNS" "http://127.0.0.1:$2/big" ;;
    h2load50)
        PARSER=parse_h2load
        client h2load --h1 -t1 -c "$SMALL_CONNS" -D "$DURATION" "http://127.0.0.1:$2/small"
        ;;
    *) log "unknown scenario $1"; return 1 ;;
    esac
}

round() { # round PROXY RUN: a warm-up, then every scenario against the proxy on PORT
    local scen
    if [[ "$WARMUP_SECS" != 0 ]]; then
        client wrk -t1 -c "$SMALL_CONNS" -d "${WARMUP_SECS}s" "http://127.0.0.1:$PORT/small" \
            >"$TMP/warmup.log" 2>&1 || log "  $1: warm-up failed"
    fi
    for scen in $SCENARIOS; do
        run_scenario scenario_client "$1" "$scen" "$2" "$PORT"
    done
}

# ------------------------------------------------------------------------------------------
# Runs

LOAD_START="$(loadavg)"
log "tmp=$TMP runs=$RUNS duration=${DURATION}s proxies=($PROXIES) scenarios=($SCENARIOS)"
log "cpus: proxy=$PROXY_CPU load=$LOAD_CPU origin=$BACKEND_CPU; origin 127.0.0.1:$BACKEND_PORT"
rounds round 1

# ------------------------------------------------------------------------------------------
# Tables: medians and ratios to BASELINE, the floor check, CPU cost, then the spread.

awk -F'\t' -v proxies="$PROXIES" -v scens="$SCENARIOS" -v base="$BASELINE" -v floor="$FLOOR_PROXY" \
    -v runs="$RUNS" -v dur="$DURATION" -v c1="$SMALL_CONNS" -v c2="$MANY_CONNS" -v c3="$BIG_CONNS" \
    -v big="$BIG_BYTES" "$AWK_STATS$AWK_L7"'
END {
    np = split(proxies, P, " "); ns = split(scens, S, " ")
    desc["small50"] = sprintf("wrk -c%d GET /small (6 B)", c1)
    desc["small200"] = sprintf("wrk -c%d GET /small (6 B)", c2)
    desc["big"] = sprintf("wrk -c%d GET /big (%d B)", c3, big)
    desc["h2load50"] = sprintf("h2load --h1 -c%d GET /small", c1)
    printf "Median of %d runs, %d s each. Latencies in µs; p50/p99/p99.9 from wrk'"'"'s histogram ", runs, dur
    printf "(h2load gives no percentiles: mean only). ×%s = ratio to the %s row ", base, base
    printf "(req/s: higher is better; p99: lower is better).\n\n"
    l7_medians("")
    if (l7_has_floor()) l7_floors("Floors")
    printf "\nProxy CPU cost (median; the proxy process'"'"'s own CPU time during each scenario, so less\n"
    printf "sensitive to the machine'"'"'s load than req/s). busy = proxy CPU time / scenario wall time:\n"
    printf "near 100%% the proxy'"'"'s core is the bottleneck, well below it the load generator or origin is.\n\n"
    l7_cpu()
    l7_spread()
}' "$RESULTS"

print_notes

versions="$(wrk --version 2>&1 | head -1 | awk '{ print "wrk " $2 }')"
command -v h2load >/dev/null && versions+=", $(h2load --version 2>&1 | head -1)"
command -v haproxy >/dev/null && versions+=", $(haproxy -v 2>&1 | head -1 | awk '{ print "HAProxy " $3 }')"
versions+=", $(nginx -v 2>&1 | sed 's/^nginx version: //')"
printf '\nTools: %s.\n' "$versions"
if [[ -z "$BUSY_POLL" ]]; then
    # The default as the measured source defines it, so the footer can not go stale.
    default_busy="$(sed -n 's/.*DEFAULT_BUSY_POLL: Duration = Duration::from_\(micros\|millis\)(\([0-9_]*\)).*/\2 \1/p' \
        "$ROOT/src/config/mod.rs" | sed 's/ micros$/ µs/; s/ millis$/ ms/')"
    printf 'Busy polling as each proxy ships: ringway polls %s after activity (tuning.busy_poll default); HAProxy and nginx do not.\n' \
        "${default_busy:-its default budget}"
elif busy_poll_off; then
    printf 'Busy polling off for every proxy (ringway tuning.busy_poll %s).\n' "$BUSY_POLL"
else
    printf 'Busy polling on: ringway tuning.busy_poll %s, HAProxy busy-polling (nginx has none).\n' "$BUSY_POLL"
fi
print_load "$LOAD_START"
if [[ "${KEEP_TMP:-0}" == 1 ]]; then
    printf 'Raw results: %s (configs and logs in %s)\n' "$RESULTS" "$TMP"
else
    printf 'Raw results: %s (each client'"'"'s output in %s/)\n' "$RESULTS" "$OUT"
fi
