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
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

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

log() { echo "[l4.sh] $*" >&2; }

stop_pid() { # stop_pid PID: TERM, wait up to 5 s, then KILL. Only PIDs this script started.
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ignored SIGTERM for 5 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # wait_port PORT PID: until PORT accepts, PID dies, or READY_SECS pass
    local port="$1" pid="$2" deadline=$((SECONDS + READY_SECS))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || return 1
        port_open "$port" && return 0
        sleep 0.05
    done
    return 1
}

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
    if [[ "$BUILD" == 1 && "$RINGWAY" == "$ROOT/target/release/ringway" ]]; then
        if ! cargo build --release >"$TMP/build-ringway.log" 2>&1; then
            log "cargo build --release failed:"
            grep -m5 -E '^error' "$TMP/build-ringway.log" >&2
            if [[ -x "$RINGWAY" && "${STALE_OK:-1}" == 1 ]]; then
                built="$(date -u -r "$RINGWAY" '+%Y-%m-%d %H:%M:%S UTC')"
                log "using the existing $RINGWAY, built $built (STALE_OK=0 to refuse)"
                NOTES+=("ringway rows: the current tree did not build; measured the previous build of target/release/ringway ($built).")
            else
                RINGWAY_OK=0
            fi
        fi
    fi
    [[ -x "$RINGWAY" ]] || { log "no ringway binary at $RINGWAY"; RINGWAY_OK=0; }
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

start_bg() { # start_bg NAME CPU MAX_SECS CMD...: run CMD pinned and time-bounded; sets LAST_PID
    local name="$1" cpu="$2" max="$3"
    shift 3
    timeout --signal=TERM --kill-after=5 "$max" taskset -c "$cpu" "$@" >"$TMP/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

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
wait_port "$SINK_PORT" "$SINK_PID" && wait_port "$ECHO_PORT" "$ECHO_PID" || { log "backends did not start"; exit 1; }

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
    cat >"$1" <<EOF
$load
daemon off;
master_process off;          # a single process: the one worker
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
worker_rlimit_nofile 10000;

events {
    worker_connections 4096;
    use epoll;
}

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
    PROXY_PROC=""
    if ! wait_port "$PORT" "$PROXY_PID" || ! wait_port $((PORT + 1)) "$PROXY_PID"; then
        log "$name exited or did not listen on 127.0.0.1:$PORT within ${READY_SECS}s; its output:"
        tail -20 "$TMP/$name.log" >&2
        stop_pid "$PROXY_PID"
        PROXY_PID=""
        return 1
    fi
    # PROXY_PID is `timeout`; the proxy itself is its child (taskset execs the proxy).
    PROXY_PROC=$(awk '{ print $1 }' /proc/"$PROXY_PID"/task/"$PROXY_PID"/children 2>/dev/null)
    return 0
}

# proxy_cpu_ns PID: CPU time used so far by all of PID's threads, in ns (from the scheduler's
# per-thread sum_exec_runtime; falls back to utime+stime ticks from /proc/PID/stat).
proxy_cpu_ns() {
    local pid="$1" ns
    ns=$(awk '/^se.sum_exec_runtime/ { s += $3 } END { if (NR) printf "%.0f", s * 1e6 }' \
        /proc/"$pid"/task/*/sched 2>/dev/null)
    if [[ -z "$ns" || "$ns" == 0 ]]; then
        ns=$(awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.0f", ($12 + $13) * 1e9 / hz }' \
            /proc/"$pid"/stat 2>/dev/null)
    fi
    echo "${ns:-}"
}

stop_proxy() {
    [[ -n "${PROXY_PID:-}" ]] && stop_pid "$PROXY_PID"
    PROXY_PID=""
}

client() { # client ARGS...: l4load pinned to the load CPU, bounded; prints its one line
    timeout --signal=TERM --kill-after=5 $((CLIENT_TIMEOUT + 30)) \
        taskset -c "$LOAD_CPU" "$L4LOAD" "$@" --timeout "$CLIENT_TIMEOUT"
}

record() { # record PROXY SCENARIO RUN ARGS...
    local proxy="$1" scen="$2" run="$3" out cpu0="" cpu1=""
    shift 3
    [[ -n "${PROXY_PROC:-}" ]] && cpu0=$(proxy_cpu_ns "$PROXY_PROC")
    if out="$(client "$@" 2>"$TMP/client.err")"; then
        [[ -n "$cpu0" ]] && cpu1=$(proxy_cpu_ns "$PROXY_PROC")
        [[ -n "$cpu0" && -n "$cpu1" ]] && out="$out proxy_cpu_ns=$((cpu1 - cpu0))"
        printf '%s\t%s\t%s\t%s\n' "$proxy" "$scen" "$run" "$out" >>"$RESULTS"
        log "  $proxy $scen #$run: $out"
    else
        log "  $proxy $scen #$run: FAILED: $(tr '\n' ' ' <"$TMP/client.err")"
        if [[ -n "${PROXY_PID:-}" ]] && ! kill -0 "$PROXY_PID" 2>/dev/null; then
            log "  $proxy exited; last output:"
            tail -10 "$TMP/$proxy.log" >&2
        fi
    fi
}

# ------------------------------------------------------------------------------------------
# Runs

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
log "l4load=$L4LOAD tmp=$TMP runs=$RUNS bytes=$BYTES proxy_cpu=$PROXY_CPU load_cpu=$LOAD_CPU"
for run in $(seq "$RUNS"); do
    idx=0
    for proxy in $PROXIES; do
        idx=$((idx + 1))
        if ! start_proxy "$proxy" "$idx"; then
            log "  $proxy: not started, round $run skipped"
            continue
        fi
        if [[ "$WARMUP_BYTES" != 0 ]]; then
            client stream --to "127.0.0.1:$PORT" --conns 4 --bytes "$WARMUP_BYTES" >/dev/null 2>&1 ||
                log "  $proxy: warm-up failed"
        fi
        record "$proxy" stream1 "$run" stream --to "127.0.0.1:$PORT" --conns 1 --bytes "$BYTES"
        record "$proxy" stream16 "$run" stream --to "127.0.0.1:$PORT" --conns "$MANY_CONNS" --bytes "$BYTES"
        rr_port=$((PORT + 1))
        [[ "$proxy" == direct ]] && rr_port="$ECHO_PORT"
        record "$proxy" rr "$run" rr --to "127.0.0.1:$rr_port" --conns "$RR_CONNS" --secs "$RR_SECS" --size "$RR_SIZE"
        if [[ -n "${PROXY_PID:-}" ]] && ! kill -0 "$PROXY_PID" 2>/dev/null; then
            log "  $proxy died during round $run; last output:"
            tail -10 "$TMP/$proxy.log" >&2
        fi
        stop_proxy
    done
done

# ------------------------------------------------------------------------------------------
# Table: medians, ratio to BASELINE, then the spread.

awk -F'\t' -v proxies="$PROXIES" -v base="$BASELINE" -v runs="$RUNS" \
    -v many="$MANY_CONNS" -v rrc="$RR_CONNS" -v rrs="$RR_SIZE" -v bytes="$BYTES" '
function field(line, key,   n, i, a, kv) {
    n = split(line, a, " ")
    for (i = 1; i <= n; i++) { split(a[i], kv, "="); if (kv[1] == key) return kv[2] }
    return ""
}
function add(k, v) { if (v != "") { cnt[k]++; val[k, cnt[k]] = v + 0 } }
function sorted(k,   i, j, t, n) {
    n = cnt[k]
    for (i = 1; i <= n; i++) s[i] = val[k, i]
    for (i = 2; i <= n; i++) { t = s[i]; for (j = i - 1; j >= 1 && s[j] > t; j--) s[j + 1] = s[j]; s[j + 1] = t }
    return n
}
function median(k,   n) {
    n = sorted(k); if (n == 0) return ""
    return (n % 2) ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2
}
function spread(k, fmt,   n) {
    n = sorted(k); if (n == 0) return "-"
    return sprintf(fmt "–" fmt " (n=%d)", s[1], s[n], n)
}
function num(v, fmt) { return v == "" ? "-" : sprintf(fmt, v) }
function pctf(v) { return v == "" ? "-" : sprintf("%.0f%%", v) }
function ratio(v, b) { return (v == "" || b == "" || b == 0) ? "-" : sprintf("%.2f", v / b) }
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

printf '\nLoad average (1/5/15 min) at start: %s; at end: %s (includes every process on the machine).\n' \
    "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)"

for note in "${NOTES[@]}"; do printf '\nNote: %s\n' "$note"; done

if [[ -n "${RAW_OUT:-}" ]]; then cp "$RESULTS" "$RAW_OUT"; fi
