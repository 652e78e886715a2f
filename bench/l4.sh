#!/usr/bin/env bash
# L4 benchmark: ringway (splice and buffered relays) against HAProxy (mode tcp, with and
# without splice) and nginx (stream), plus a "direct" row with no proxy as a ceiling.
# Optional extra row: haproxy-splice-auto (add it to PROXIES).
#
#   bench/l4.sh                       # RUNS=3, prints a Markdown table on stdout
#   RUNS=5 bench/l4.sh
#   PROXIES="direct haproxy nginx" bench/l4.sh
#
# Layout: the proxy runs on CPU $PROXY_CPU (default 1) with one worker/thread; the backends
# (l4load sink/echo) and the load generator (l4load) share CPU $LOAD_CPU (default 0).
# Scenarios, each run $RUNS times per proxy (rounds interleave the proxies, so slow drift of
# a noisy machine hits all of them alike); the table shows the median:
#   stream1  : $BYTES through 1 connection to a discarding backend        -> MB/s
#   stream16 : $BYTES through 16 connections (BYTES/16 each)              -> MB/s
#   rr       : 64-byte round trips over 16 connections for $RR_SECS s    -> round trips/s, p50/p99
# See bench/README.md. Only 127.0.0.1 is used. Every process this script starts is stopped
# by PID (trap on EXIT) and is also wrapped in `timeout`, so nothing outlives a killed run.
# Helpers shared with http.sh and https.sh are in bench/lib.sh.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$ROOT/bench/lib.sh" || exit 1 # the helpers shared with http.sh and https.sh

RUNS="${RUNS:-3}"
BYTES="${BYTES:-1G}"                  # per stream scenario (l4load accepts K/M/G suffixes)
MANY_CONNS="${MANY_CONNS:-16}"
RR_CONNS="${RR_CONNS:-16}"
RR_SIZE="${RR_SIZE:-64}"
RR_SECS="${RR_SECS:-5}"
WARMUP_BYTES="${WARMUP_BYTES:-64M}"   # one untimed stream after each proxy start; 0 = none
PROXY_CPU="${PROXY_CPU:-1}"
LOAD_CPU="${LOAD_CPU:-0}"
BACKEND_PORT="${BACKEND_PORT:-22000}" # sink on BACKEND_PORT, echo on BACKEND_PORT+1
BASE_PORT="${BASE_PORT:-21000}"       # each proxy listens on BASE_PORT+k (->sink) and +k+1 (->echo),
                                      # k = 0 ringway-splice, 10 ringway-buffered, 20 haproxy,
                                      # 30 haproxy-splice, 40 nginx, 50 haproxy-splice-auto
CLIENT_TIMEOUT="${CLIENT_TIMEOUT:-60}" # seconds: cap on any one l4load client run
PROXY_MAX_SECS="${PROXY_MAX_SECS:-900}" # seconds: hard cap on any proxy process's life
READY_SECS="${READY_SECS:-10}"        # seconds to wait for a proxy to listen
BASELINE="${BASELINE:-haproxy}"       # the row the ratio columns divide by
PROXIES="${PROXIES:-direct ringway-splice ringway-buffered haproxy haproxy-splice nginx}"
RINGWAY="${RINGWAY:-$ROOT/target/release/ringway}"
NGINX_STREAM_MODULE="${NGINX_STREAM_MODULE:-/usr/lib/nginx/modules/ngx_stream_module.so}"
BUILD="${BUILD:-1}"                   # 1: build l4load (and try ringway) before running

TMP="$(mktemp -d /tmp/ringway-l4.XXXXXX)"
RESULTS="$TMP/results.tsv"            # proxy <TAB> scenario <TAB> run <TAB> l4load output line
: >"$RESULTS"
PIDS=()

cleanup() {
    stop_all
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------------------
# Tools

L4LOAD="${L4LOAD:-}"
if [[ -z "$L4LOAD" ]]; then
    L4LOAD="$ROOT/target/release/examples/l4load"
    if [[ "$BUILD" == 1 ]]; then
        if ! cargo build --release --example l4load >"$TMP/build-l4load.log" 2>&1; then
            # The example needs the crate's library to compile; l4load itself is std only.
            log "cargo could not build the l4load example (see below); building it with rustc alone"
            tail -5 "$TMP/build-l4load.log" >&2
            L4LOAD="$TMP/l4load"
            rustc --edition 2021 -C opt-level=3 -o "$L4LOAD" "$ROOT/bench/l4load.rs" >&2 || exit 1
        fi
    fi
fi
[[ -x "$L4LOAD" ]] || { log "no l4load binary at $L4LOAD"; exit 1; }

RINGWAY_OK=1
NOTES=()   # printed under the table
if [[ " $PROXIES " == *" ringway-"* ]]; then
    ringway_binary 0
    [[ "$RINGWAY_OK" == 1 ]] || NOTES+=("ringway rows are empty: no ringway binary could be built.")
fi

if [[ " $PROXIES " == *" nginx "* && ! -f "$NGINX_STREAM_MODULE" ]] && ! nginx -V 2>&1 | grep -Eq -- '--with-stream( |$)'; then
    log "nginx stream module not found at $NGINX_STREAM_MODULE (Debian: apt-get install libnginx-mod-stream); nginx row will be empty"
fi

[[ "$(nproc)" -ge 2 ]] || log "warning: fewer than 2 CPUs; CPU $PROXY_CPU may not exist"

SINK_PORT="$BACKEND_PORT"
ECHO_PORT=$((BACKEND_PORT + 1))

# ------------------------------------------------------------------------------------------
# Backends: up for the whole run, on the load generator's CPU.

for p in "$SINK_PORT" "$ECHO_PORT"; do
    port_open "$p" && { log "127.0.0.1:$p is already in use (set BACKEND_PORT)"; exit 1; }
done
# Backends live as long as the whole run may take at worst (every client hitting its
# timeout), and not longer.
NPROXIES=$(wc -w <<<"$PROXIES")
BACKEND_SECS=$((RUNS * NPROXIES * (4 * (CLIENT_TIMEOUT + 35) + READY_SECS + 10) + 60))
start_bg sink "$LOAD_CPU" "$BACKEND_SECS" "$L4LOAD" sink --listen "127.0.0.1:$SINK_PORT" --exit-after "$BACKEND_SECS"
SINK_PID=$LAST_PID
start_bg echo "$LOAD_CPU" "$BACKEND_SECS" "$L4LOAD" echo --listen "127.0.0.1:$ECHO_PORT" --exit-after "$BACKEND_SECS"
ECHO_PID=$LAST_PID
if ! wait_port "$SINK_PORT" "$SINK_PID" || ! wait_port "$ECHO_PORT" "$ECHO_PID"; then
    log "backends did not start"
    exit 1
fi

# ------------------------------------------------------------------------------------------
# Proxy configs

write_ringway() { # write_ringway FILE RELAY PORT
    cat >"$1" <<EOF
(
    workers: 1,
    listeners: [
        (name: "sink", bind: "127.0.0.1:$3", protocol: Tcp(pool: "sink", relay: $2),
         timeouts: (connect: "1s", idle: "5m")),
        (name: "echo", bind: "127.0.0.1:$(($3 + 1))", protocol: Tcp(pool: "echo", relay: $2),
         timeouts: (connect: "1s", idle: "5m")),
    ],
    pools: [
        (name: "sink", balance: RoundRobin, backends: [(addr: "127.0.0.1:$SINK_PORT")]),
        (name: "echo", balance: RoundRobin, backends: [(addr: "127.0.0.1:$ECHO_PORT")]),
    ],
)
EOF
}

write_haproxy() { # write_haproxy FILE SPLICE(none|forced|auto) PORT
    local splice=""
    # Forced splice both ways. HAProxy 2.6's `option splice-auto` was measured (strace) to
    # stay on recvfrom/sendto for these loopback streams, so it is an optional extra row.
    [[ "$2" == forced ]] && splice="    option splice-request
    option splice-response"
    [[ "$2" == auto ]] && splice="    option splice-auto"
    cat >"$1" <<EOF
global
    nbthread 1
    maxconn 4096
    # no 'log': logging off, as for the other proxies

defaults
    mode tcp
    maxconn 4096
    timeout connect 1s
    timeout client 5m
    timeout server 5m
$splice

frontend fe_sink
    bind 127.0.0.1:$3
    default_backend be_sink

frontend fe_echo
    bind 127.0.0.1:$(($3 + 1))
    default_backend be_echo

backend be_sink
    server sink 127.0.0.1:$SINK_PORT

backend be_echo
    server echo 127.0.0.1:$ECHO_PORT
EOF
}

write_nginx() { # write_nginx FILE PORT
    local load=""
    [[ -f "$NGINX_STREAM_MODULE" ]] && load="load_module $NGINX_STREAM_MODULE;"
    {
        echo "$load"
        nginx_head nginx
        cat <<EOF

stream {
    upstream sink { server 127.0.0.1:$SINK_PORT; }
    upstream echo { server 127.0.0.1:$ECHO_PORT; }

    proxy_buffer_size 64k;   # default 16k; 64k matches HAProxy's and ringway's copy size
    proxy_connect_timeout 1s;
    proxy_timeout 5m;
    tcp_nodelay on;          # the default, stated

    server { listen 127.0.0.1:$2; proxy_pass sink; }
    server { listen 127.0.0.1:$(($2 + 1)); proxy_pass echo; }
}
EOF
    } >"$1"
}

# start_proxy NAME INDEX: starts it pinned to PROXY_CPU; sets PROXY_PID and PORT (->sink)
start_proxy() {
    local name="$1" idx="$2" cfg
    PROXY_PID=""
    PROXY_PROC=""
    if [[ "$name" == direct ]]; then
        PORT="$SINK_PORT"
        return 0
    fi
    case "$name" in # fixed offsets, so a proxy keeps its ports whatever PROXIES lists
    ringway-splice) PORT=$BASE_PORT ;;
    ringway-buffered) PORT=$((BASE_PORT + 10)) ;;
    haproxy) PORT=$((BASE_PORT + 20)) ;;
    haproxy-splice) PORT=$((BASE_PORT + 30)) ;;
    nginx) PORT=$((BASE_PORT + 40)) ;;
    haproxy-splice-auto) PORT=$((BASE_PORT + 50)) ;;
    *) PORT=$((BASE_PORT + 60 + 10 * idx)) ;;
    esac
    if port_open "$PORT" || port_open $((PORT + 1)); then
        log "$name: 127.0.0.1:$PORT or +1 already in use (set BASE_PORT)"
        return 1
    fi
    case "$name" in
    ringway-splice | ringway-buffered)
        [[ "$RINGWAY_OK" == 1 ]] || return 1
        cfg="$TMP/$name.ron"
        if [[ "$name" == ringway-splice ]]; then write_ringway "$cfg" Splice "$PORT"; else write_ringway "$cfg" Buffered "$PORT"; fi
        start_bg "$name" "$PROXY_CPU" "$PROXY_MAX_SECS" "$RINGWAY" run -c "$cfg"
        ;;
    haproxy | haproxy-splice | haproxy-splice-auto)
        cfg="$TMP/$name.cfg"
        case "$name" in
        haproxy) write_haproxy "$cfg" none "$PORT" ;;
        haproxy-splice) write_haproxy "$cfg" forced "$PORT" ;;
        haproxy-splice-auto) write_haproxy "$cfg" auto "$PORT" ;;
        esac
        start_bg "$name" "$PROXY_CPU" "$PROXY_MAX_SECS" haproxy -db -f "$cfg"
        ;;
    nginx)
        cfg="$TMP/nginx.conf"
        write_nginx "$cfg" "$PORT"
        start_bg nginx "$PROXY_CPU" "$PROXY_MAX_SECS" nginx -p "$TMP" -c "$cfg"
        ;;
    *)
        log "unknown proxy $name"
        return 1
        ;;
    esac
    PROXY_PID=$LAST_PID
    if ! wait_port "$PORT" "$PROXY_PID" || ! wait_port $((PORT + 1)) "$PROXY_PID"; then
        proxy_not_ready "$name" "did not listen on 127.0.0.1:$PORT"
        return 1
    fi
    proxy_child
}

client() { # client ARGS...: l4load pinned to the load CPU, bounded; prints its one line
    run_client $((CLIENT_TIMEOUT + 30)) "$L4LOAD" "$@" --timeout "$CLIENT_TIMEOUT"
}

record() { # record PROXY SCENARIO RUN ARGS...
    local proxy="$1" scen="$2" run="$3" out cpu0 cpu1
    shift 3
    cpu0=$(proxy_cpu_now)
    if out="$(client "$@" 2>"$TMP/client.err")"; then
        cpu1=$(proxy_cpu_now)
        add_result "$proxy" "$scen" "$run" "$out" "$cpu0" "$cpu1"
    else
        run_failed "$proxy" "$scen" "$run" "FAILED: $(tr '\n' ' ' <"$TMP/client.err")"
    fi
}

round() { # round PROXY RUN: a warm-up stream, then the three scenarios
    local rr_port=$((PORT + 1))
    if [[ "$WARMUP_BYTES" != 0 ]]; then
        client stream --to "127.0.0.1:$PORT" --conns 4 --bytes "$WARMUP_BYTES" >/dev/null 2>&1 ||
            log "  $1: warm-up failed"
    fi
    record "$1" stream1 "$2" stream --to "127.0.0.1:$PORT" --conns 1 --bytes "$BYTES"
    record "$1" stream16 "$2" stream --to "127.0.0.1:$PORT" --conns "$MANY_CONNS" --bytes "$BYTES"
    [[ "$1" == direct ]] && rr_port="$ECHO_PORT"
    record "$1" rr "$2" rr --to "127.0.0.1:$rr_port" --conns "$RR_CONNS" --secs "$RR_SECS" --size "$RR_SIZE"
}

# ------------------------------------------------------------------------------------------
# Runs

LOAD_START="$(loadavg)"
log "l4load=$L4LOAD tmp=$TMP runs=$RUNS bytes=$BYTES proxy_cpu=$PROXY_CPU load_cpu=$LOAD_CPU"
rounds round 0

# ------------------------------------------------------------------------------------------
# Table: medians, ratio to BASELINE, then the spread.

awk -F'\t' -v proxies="$PROXIES" -v base="$BASELINE" -v runs="$RUNS" \
    -v many="$MANY_CONNS" -v rrc="$RR_CONNS" -v rrs="$RR_SIZE" -v bytes="$BYTES" "$AWK_STATS"'
{
    p = $1; sc = $2; line = $4
    cpu = field(line, "proxy_cpu_ns")
    if (sc == "stream1" || sc == "stream16") {
        add(p SUBSEP sc, field(line, "MBps"))
        if (cpu != "") {
            add(p SUBSEP sc "_cpg", cpu / 1e6 / (field(line, "bytes") / 1073741824))  # ms per GiB
            add(p SUBSEP sc "_busy", 100 * cpu / 1e9 / field(line, "secs"))
        }
    } else if (sc == "rr") {
        if (cpu != "") {
            add(p SUBSEP "rr_cpt", cpu / 1e3 / field(line, "trips"))                  # us per trip
            add(p SUBSEP "rr_busy", 100 * cpu / 1e9 / field(line, "secs"))
        }
        add(p SUBSEP "rps", field(line, "rps"))
        add(p SUBSEP "p50", field(line, "p50_us"))
        add(p SUBSEP "p99", field(line, "p99_us"))
    }
}
END {
    np = split(proxies, P, " ")
    b1 = median(base SUBSEP "stream1"); b16 = median(base SUBSEP "stream16"); brr = median(base SUBSEP "rps")
    printf "Median of %d runs. MB/s = 10^6 bytes/s of payload through the proxy (%s per scenario); ", runs, bytes
    printf "rr = %d-byte round trips over %d connections; ×%s = ratio to the %s row (higher is better).\n\n", rrs, rrc, base, base
    printf "| proxy | 1 conn MB/s | ×%s | %d conns MB/s | ×%s | rr round trips/s | ×%s | rr p50 µs | rr p99 µs |\n", base, many, base, base
    printf "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    for (i = 1; i <= np; i++) {
        p = P[i]
        m1 = median(p SUBSEP "stream1"); m16 = median(p SUBSEP "stream16"); mrr = median(p SUBSEP "rps")
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", p,
            num(m1, "%.0f"), ratio(m1, b1), num(m16, "%.0f"), ratio(m16, b16),
            num(mrr, "%.0f"), ratio(mrr, brr),
            num(median(p SUBSEP "p50"), "%.1f"), num(median(p SUBSEP "p99"), "%.1f")
    }
    printf "\nProxy CPU cost (median; from the proxy process'"'"'s own CPU time during each scenario, so less\n"
    printf "sensitive to the machine'"'"'s load than throughput). busy = proxy CPU time / scenario wall time:\n"
    printf "near 100%% the proxy'"'"'s core is the bottleneck, well below it the load generator is.\n\n"
    printf "| proxy | 1 conn: CPU ms/GiB | busy | %d conns: CPU ms/GiB | busy | rr: CPU µs/round trip | busy |\n", many
    printf "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    for (i = 1; i <= np; i++) {
        p = P[i]
        if (p == "direct") continue
        printf "| %s | %s | %s | %s | %s | %s | %s |\n", p,
            num(median(p SUBSEP "stream1_cpg"), "%.0f"), pctf(median(p SUBSEP "stream1_busy")),
            num(median(p SUBSEP "stream16_cpg"), "%.0f"), pctf(median(p SUBSEP "stream16_busy")),
            num(median(p SUBSEP "rr_cpt"), "%.2f"), pctf(median(p SUBSEP "rr_busy"))
    }
    printf "\nSpread (min–max over runs):\n\n"
    printf "| proxy | 1 conn MB/s | %d conns MB/s | rr round trips/s | rr p99 µs |\n", many
    printf "| --- | --- | --- | --- | --- |\n"
    for (i = 1; i <= np; i++) {
        p = P[i]
        printf "| %s | %s | %s | %s | %s |\n", p, spread(p SUBSEP "stream1", "%.0f"),
            spread(p SUBSEP "stream16", "%.0f"), spread(p SUBSEP "rps", "%.0f"), spread(p SUBSEP "p99", "%.1f")
    }
}' "$RESULTS"

printf '\n'
print_load "$LOAD_START"

print_notes

if [[ -n "${RAW_OUT:-}" ]]; then cp "$RESULTS" "$RAW_OUT"; fi
