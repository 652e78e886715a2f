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

TMP="$(mktemp -d /tmp/ringway-http.XXXXXX)"
RESULTS="$TMP/results.tsv"            # proxy <TAB> scenario <TAB> run <TAB> key=value fields
OUT="$TMP/out"                        # every client's raw output, one file per run
mkdir -p "$OUT" "$TMP/www"
: >"$RESULTS"
PIDS=()

log() { echo "[http.sh] $*" >&2; }

stop_pid() { # stop_pid PID: TERM, wait up to 5 s, then KILL. Only PIDs this script started.
    local pid="$1" _
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do
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
    if [[ -n "${RAW_OUT:-}" && -s "$RESULTS" ]]; then cp "$RESULTS" "$RAW_OUT"; fi
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then
        log "kept $TMP"
    else
        # Keep the raw results (results.tsv and each client's output); drop configs, logs
        # and the served files.
        find "$TMP" -mindepth 1 -maxdepth 1 ! -name results.tsv ! -name out -exec rm -rf {} +
        log "raw results kept in $RESULTS and $OUT/"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# get_check PORT PATH SIZE: one GET; true if the status is 200 and the body has SIZE bytes.
get_check() {
    local port="$1" path="$2" size="$3" got
    if command -v curl >/dev/null; then
        got=$(curl -s --max-time 2 -o /dev/null -w '%{http_code} %{size_download}' \
            "http://127.0.0.1:$port$path" 2>/dev/null)
        [[ "$got" == "200 $size" ]]
    else # bash alone: the status line only
        got=$( (
            exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
            printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
            IFS= read -r -t 2 line <&3 && echo "$line"
        ) 2>/dev/null)
        [[ "$got" == "HTTP/1."?" 200"* ]]
    fi
}

wait_ready() { # wait_ready PORT PID: until GET /small answers 200, PID dies, or READY_SECS pass
    local port="$1" pid="$2" deadline=$((SECONDS + READY_SECS))
    while ((SECONDS < deadline)); do
        [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null && return 1
        get_check "$port" /small 6 && return 0
        sleep 0.1
    done
    return 1
}

start_bg() { # start_bg NAME CPU MAX_SECS CMD...: run CMD pinned and time-bounded; sets LAST_PID
    local name="$1" cpu="$2" max="$3"
    shift 3
    timeout --signal=TERM --kill-after=5 "$max" taskset -c "$cpu" "$@" >"$TMP/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# ------------------------------------------------------------------------------------------
# Tools

NOTES=()   # printed under the table
declare -A APT=([wrk]=wrk [h2load]=nghttp2-client [haproxy]=haproxy [nginx]=nginx
    [taskset]=util-linux [timeout]=coreutils [curl]=curl)
missing=()
for tool in wrk h2load haproxy nginx taskset timeout curl; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    pkgs=""
    for tool in "${missing[@]}"; do pkgs+=" ${APT[$tool]}"; done
    log "missing: ${missing[*]}; install with: apt-get install -y$pkgs"
fi
for tool in wrk nginx taskset timeout; do # the load generator and the origin are not optional
    command -v "$tool" >/dev/null || { log "$tool is required"; exit 1; }
done
command -v curl >/dev/null || log "no curl: readiness checks look at the status line only"
if [[ " $SCENARIOS " == *" h2load50 "* ]] && ! command -v h2load >/dev/null; then
    SCENARIOS="${SCENARIOS/h2load50/}"
    NOTES+=("h2load50 was not run: no h2load (apt-get install nghttp2-client).")
fi
if [[ " $PROXIES " == *" haproxy "* ]] && ! command -v haproxy >/dev/null; then
    NOTES+=("haproxy rows are empty: no haproxy (apt-get install haproxy).")
fi
[[ -f "$LUA_SCRIPT" ]] || { log "no wrk script at $LUA_SCRIPT"; exit 1; }

RINGWAY_OK=1
if [[ " $PROXIES " == *" ringway "* ]]; then
    if [[ "$BUILD" == 1 && "$RINGWAY" == "$ROOT/target/release/ringway" ]]; then
        log "cargo build --release ..."
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
    [[ -f "$RINGWAY_TEMPLATE" ]] || { log "no ringway config template at $RINGWAY_TEMPLATE"; RINGWAY_OK=0; }
    [[ "$RINGWAY_OK" == 1 ]] || NOTES+=("ringway rows are empty: no ringway binary or config template.")
fi

[[ "$(nproc)" -ge 2 ]] || log "warning: fewer than 2 CPUs; CPU $PROXY_CPU may not exist"

# ------------------------------------------------------------------------------------------
# Origin: one nginx worker serving static files, up for the whole run.

printf 'hello\n' >"$TMP/www/small"
head -c "$BIG_BYTES" /dev/zero >"$TMP/www/big"

write_origin() { # write_origin FILE
    cat >"$1" <<EOF
daemon off;
master_process off;          # a single process: the one worker
worker_processes 1;
pid $TMP/origin.pid;
error_log $TMP/origin-error.log warn;
worker_rlimit_nofile 10000;

events {
    worker_connections 4096;
    use epoll;
}

http {
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    open_file_cache max=16 inactive=60s; # no open()/fstat() per request
    open_file_cache_valid 60s;
    client_body_temp_path $TMP/origin-tmp/body;
    proxy_temp_path $TMP/origin-tmp/proxy;
    fastcgi_temp_path $TMP/origin-tmp/fastcgi;
    uwsgi_temp_path $TMP/origin-tmp/uwsgi;
    scgi_temp_path $TMP/origin-tmp/scgi;

    server {
        listen 127.0.0.1:$BACKEND_PORT backlog=4096;
        root $TMP/www;                  # /small: "hello\n" (6 bytes), /big: $BIG_BYTES bytes
    }
}
EOF
}

port_open "$BACKEND_PORT" && { log "127.0.0.1:$BACKEND_PORT is already in use (set BACKEND_PORT)"; exit 1; }
mkdir -p "$TMP/origin-tmp"
write_origin "$TMP/origin.conf"
# The origin lives as long as the whole run may take at worst (every client hitting its
# timeout), and not longer.
NPROXIES=$(wc -w <<<"$PROXIES")
NSCEN=$(wc -w <<<"$SCENARIOS")
BACKEND_SECS=$((RUNS * NPROXIES * ((NSCEN + 1) * (DURATION + CLIENT_SLACK + 5) + 2 * READY_SECS + 10) + 60))
start_bg origin "$BACKEND_CPU" "$BACKEND_SECS" nginx -e "$TMP/origin-error.log" -p "$TMP" -c "$TMP/origin.conf"
ORIGIN_PID=$LAST_PID
if ! wait_ready "$BACKEND_PORT" "$ORIGIN_PID" || ! get_check "$BACKEND_PORT" /big "$BIG_BYTES"; then
    log "origin nginx did not serve /small and /big on 127.0.0.1:$BACKEND_PORT; its output:"
    tail -n 20 "$TMP/origin.log" "$TMP/origin-error.log" >&2
    exit 1
fi

# ------------------------------------------------------------------------------------------
# Proxy configs

write_ringway() { # write_ringway FILE PORT: the template with the ports filled in
    sed -e "s/@PORT@/$2/g" -e "s/@BACKEND_PORT@/$BACKEND_PORT/g" "$RINGWAY_TEMPLATE" >"$1"
}

write_haproxy() { # write_haproxy FILE PORT
    cat >"$1" <<EOF
global
    nbthread 1
    maxconn 4096
    # no 'log': logging off, as for the other proxies

defaults
    mode http
    option http-keep-alive
    http-reuse always
    maxconn 4096
    timeout connect 1s
    timeout client 60s
    timeout http-request 10s
    timeout http-keep-alive 60s
    timeout server 30s

frontend fe
    bind 127.0.0.1:$2
    default_backend be

backend be
    server origin 127.0.0.1:$BACKEND_PORT
EOF
}

write_nginx() { # write_nginx FILE PORT
    cat >"$1" <<EOF
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

http {
    access_log off;
    keepalive_requests 100000;          # client side (default 1000 would close mid-run)
    keepalive_timeout 60s;
    client_body_temp_path $TMP/nginx-tmp/body;
    proxy_temp_path $TMP/nginx-tmp/proxy;
    fastcgi_temp_path $TMP/nginx-tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx-tmp/uwsgi;
    scgi_temp_path $TMP/nginx-tmp/scgi;

    upstream o {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 256;                  # idle upstream connections kept per worker
        keepalive_requests 100000;
        keepalive_timeout 60s;
    }

    server {
        listen 127.0.0.1:$2 backlog=4096;
        location / {
            proxy_pass http://o;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_read_timeout 30s;
            proxy_max_temp_file_size 0; # buffer in memory only: no temp files for /big
        }
    }
}
EOF
}

# start_proxy NAME INDEX: starts it pinned to PROXY_CPU; sets PROXY_PID, PROXY_PROC and PORT
start_proxy() {
    local name="$1" idx="$2" cfg
    PROXY_PID=""
    PROXY_PROC=""
    if [[ "$name" == direct ]]; then
        PORT="$BACKEND_PORT"
        return 0
    fi
    case "$name" in # fixed offsets, so a proxy keeps its port whatever PROXIES lists
    ringway) PORT=$BASE_PORT ;;
    haproxy) PORT=$((BASE_PORT + 10)) ;;
    nginx) PORT=$((BASE_PORT + 20)) ;;
    *) PORT=$((BASE_PORT + 30 + 10 * idx)) ;;
    esac
    if port_open "$PORT"; then
        log "$name: 127.0.0.1:$PORT already in use (set BASE_PORT)"
        return 1
    fi
    case "$name" in
    ringway)
        [[ "$RINGWAY_OK" == 1 ]] || return 1
        cfg="$TMP/ringway.ron"
        write_ringway "$cfg" "$PORT"
        start_bg ringway "$PROXY_CPU" "$PROXY_MAX_SECS" "$RINGWAY" run -c "$cfg" --workers 1
        ;;
    haproxy)
        command -v haproxy >/dev/null || return 1
        cfg="$TMP/haproxy.cfg"
        write_haproxy "$cfg" "$PORT"
        start_bg haproxy "$PROXY_CPU" "$PROXY_MAX_SECS" haproxy -db -f "$cfg"
        ;;
    nginx)
        cfg="$TMP/nginx.conf"
        mkdir -p "$TMP/nginx-tmp"
        write_nginx "$cfg" "$PORT"
        start_bg nginx "$PROXY_CPU" "$PROXY_MAX_SECS" nginx -e "$TMP/nginx-error.log" -p "$TMP" -c "$cfg"
        ;;
    *)
        log "unknown proxy $name"
        return 1
        ;;
    esac
    PROXY_PID=$LAST_PID
    if ! wait_ready "$PORT" "$PROXY_PID"; then
        log "$name exited or did not answer GET /small with 200 on 127.0.0.1:$PORT within ${READY_SECS}s; its output:"
        tail -20 "$TMP/$name.log" >&2
        stop_pid "$PROXY_PID"
        PROXY_PID=""
        return 1
    fi
    get_check "$PORT" /big "$BIG_BYTES" || log "  $name: GET /big did not return 200 with $BIG_BYTES bytes"
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

client() { # client CMD ARGS...: the load generator pinned to the load CPU, time-bounded
    timeout --signal=TERM --kill-after=5 $((DURATION + CLIENT_SLACK)) taskset -c "$LOAD_CPU" "$@"
}

# Parsers: raw client output on stdin -> one line of key=value fields (empty if unusable).
# Latencies in µs; wrk and h2load print durations with units (ns, us, ms, s, m, h).
AWK_US='function us(v,   n, u) {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "ns") return n / 1000
    if (u == "ms") return n * 1000
    if (u == "s") return n * 1e6
    if (u == "m") return n * 60e6
    if (u == "h") return n * 3600e6
    return n
}'

parse_wrk() {
    awk "$AWK_US"'
    /^Requests\/sec:/ { rps = $2 }
    / requests in / { gsub(/,/, ""); req = $1; secs = us($4) / 1e6 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ { gsub(/,/, ""); sock = $4 + $6 + $8 + $10 }
    /^ +50% / { t50 = us($2) } /^ +99% / { t99 = us($2) }
    /^@wrk / { sub(/^@wrk /, ""); lua = $0 }
    END {
        if (rps == "") exit
        if (lua == "") lua = sprintf("requests=%s p50_us=%.0f p99_us=%.0f", req, t50, t99)  # no p99.9
        printf "rps=%s secs=%s non2xx=%d sock_errors=%d %s\n", rps, secs, non2xx, sock, lua
    }'
}

parse_h2load() {
    awk "$AWK_US"'
    /^finished in / { gsub(/,/, ""); secs = us($3) / 1e6; rps = $4 }
    /^requests: / { gsub(/,/, ""); req = $2; ok = $8; failed = $10; errored = $12; tmo = $14 }
    /^status codes: / { gsub(/,/, ""); s2 = $3; s3 = $5; s4 = $7; s5 = $9 }
    /^time for request:/ { mn = us($4); mx = us($5); mean = us($6); sd = us($7) }
    END {
        if (rps == "") exit
        printf "rps=%s secs=%s requests=%s succeeded=%s failed=%s errored=%s timeout=%s", rps, secs, req, ok, failed, errored, tmo
        printf " non2xx=%d min_us=%.0f max_us=%.0f mean_us=%.1f sd_us=%.0f\n", s3 + s4 + s5, mn, mx, mean, sd
    }'
}

run_scenario() { # run_scenario PROXY SCENARIO RUN PORT
    local proxy="$1" scen="$2" run="$3" port="$4" raw="$OUT/$1-$2-$3.txt" parser=parse_wrk
    local out cpu0="" cpu1=""
    local wrk=(wrk -t1 --latency --timeout "$WRK_TIMEOUT" -d "${DURATION}s" -s "$LUA_SCRIPT")
    [[ -n "${PROXY_PROC:-}" ]] && cpu0=$(proxy_cpu_ns "$PROXY_PROC")
    case "$scen" in
    small50) client "${wrk[@]}" -c "$SMALL_CONNS" "http://127.0.0.1:$port/small" ;;
    small200) client "${wrk[@]}" -c "$MANY_CONNS" "http://127.0.0.1:$port/small" ;;
    big) client "${wrk[@]}" -c "$BIG_CONNS" "http://127.0.0.1:$port/big" ;;
    h2load50)
        parser=parse_h2load
        client h2load --h1 -t1 -c "$SMALL_CONNS" -D "$DURATION" "http://127.0.0.1:$port/small"
        ;;
    *) log "unknown scenario $scen"; return 1 ;;
    esac >"$raw" 2>&1
    local rc=$?
    [[ -n "$cpu0" ]] && cpu1=$(proxy_cpu_ns "$PROXY_PROC")
    out=$($parser <"$raw")
    if [[ $rc == 0 && -n "$out" ]]; then
        [[ -n "$cpu0" && -n "$cpu1" ]] && out="$out proxy_cpu_ns=$((cpu1 - cpu0))"
        printf '%s\t%s\t%s\t%s\n' "$proxy" "$scen" "$run" "$out" >>"$RESULTS"
        log "  $proxy $scen #$run: $out"
    else
        log "  $proxy $scen #$run: FAILED (exit $rc): $(tail -3 "$raw" | tr '\n' ' ')"
        if [[ -n "${PROXY_PID:-}" ]] && ! kill -0 "$PROXY_PID" 2>/dev/null; then
            log "  $proxy exited; last output:"
            tail -10 "$TMP/$proxy.log" >&2
        fi
    fi
}

# ------------------------------------------------------------------------------------------
# Runs

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
log "tmp=$TMP runs=$RUNS duration=${DURATION}s proxies=($PROXIES) scenarios=($SCENARIOS)"
log "cpus: proxy=$PROXY_CPU load=$LOAD_CPU origin=$BACKEND_CPU; origin 127.0.0.1:$BACKEND_PORT"
for run in $(seq "$RUNS"); do
    idx=0
    for proxy in $PROXIES; do
        idx=$((idx + 1))
        if ! start_proxy "$proxy" "$idx"; then
            log "  $proxy: not started, round $run skipped"
            NOTES+=("$proxy did not start in round $run (its rows lack that run; the log above says why).")
            continue
        fi
        if [[ "$WARMUP_SECS" != 0 ]]; then
            client wrk -t1 -c "$SMALL_CONNS" -d "${WARMUP_SECS}s" "http://127.0.0.1:$PORT/small" \
                >"$TMP/warmup.log" 2>&1 || log "  $proxy: warm-up failed"
        fi
        for scen in $SCENARIOS; do
            run_scenario "$proxy" "$scen" "$run" "$PORT"
        done
        if [[ -n "${PROXY_PID:-}" ]] && ! kill -0 "$PROXY_PID" 2>/dev/null; then
            log "  $proxy died during round $run; last output:"
            tail -10 "$TMP/$proxy.log" >&2
        fi
        stop_proxy
    done
done

# ------------------------------------------------------------------------------------------
# Tables: medians and ratios to BASELINE, the floor check, CPU cost, then the spread.

awk -F'\t' -v proxies="$PROXIES" -v scens="$SCENARIOS" -v base="$BASELINE" -v floor="$FLOOR_PROXY" \
    -v runs="$RUNS" -v dur="$DURATION" -v c1="$SMALL_CONNS" -v c2="$MANY_CONNS" -v c3="$BIG_CONNS" \
    -v big="$BIG_BYTES" '
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
    p = $1; sc = $2; run = $3; line = $4; k = p SUBSEP sc
    add(k SUBSEP "rps", field(line, "rps"))
    add(k SUBSEP "p50", field(line, "p50_us"))
    add(k SUBSEP "p99", field(line, "p99_us"))
    add(k SUBSEP "p999", field(line, "p999_us"))
    add(k SUBSEP "mean", field(line, "mean_us"))
    cpu = field(line, "proxy_cpu_ns"); req = field(line, "requests"); secs = field(line, "secs")
    if (cpu != "" && req > 0) add(k SUBSEP "cpr", cpu / 1e3 / req)              # µs per request
    if (cpu != "" && secs > 0) add(k SUBSEP "busy", 100 * cpu / 1e9 / secs)
    # A fast row made of errors is no result: say so under the table.
    bad = ""
    if (field(line, "non2xx") + 0 > 0) bad = bad " " field(line, "non2xx") " non-2xx/3xx responses;"
    e = field(line, "sock_errors") + field(line, "failed") + field(line, "errored") + field(line, "timeout")
    if (e > 0) bad = bad " " e " socket errors/failed requests;"
    if (sc == "big" && req > 0 && field(line, "bytes") != "" && field(line, "bytes") / req < big)
        bad = bad sprintf(" %.0f bytes per response, less than the body;", field(line, "bytes") / req)
    if (bad != "") warn[++nwarn] = sprintf("%s %s run %s:%s", p, sc, run, bad)
}
END {
    np = split(proxies, P, " "); ns = split(scens, S, " ")
    desc["small50"] = sprintf("wrk -c%d GET /small (6 B)", c1)
    desc["small200"] = sprintf("wrk -c%d GET /small (6 B)", c2)
    desc["big"] = sprintf("wrk -c%d GET /big (%d B)", c3, big)
    desc["h2load50"] = sprintf("h2load --h1 -c%d GET /small", c1)
    printf "Median of %d runs, %d s each. Latencies in µs; p50/p99/p99.9 from wrk'"'"'s histogram ", runs, dur
    printf "(h2load gives no percentiles: mean only). ×%s = ratio to the %s row ", base, base
    printf "(req/s: higher is better; p99: lower is better).\n\n"
    for (j = 1; j <= ns; j++) printf "- `%s`: %s\n", S[j], desc[S[j]]
    printf "\n| scenario | proxy | req/s | p50 µs | p99 µs | p99.9 µs | mean µs | req/s ×%s | p99 ×%s |\n", base, base
    printf "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    for (j = 1; j <= ns; j++) {
        sc = S[j]
        brps = median(base SUBSEP sc SUBSEP "rps"); bp99 = median(base SUBSEP sc SUBSEP "p99")
        for (i = 1; i <= np; i++) {
            k = P[i] SUBSEP sc
            rps = median(k SUBSEP "rps"); p99 = median(k SUBSEP "p99")
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", sc, P[i],
                num(rps, "%.0f"), num(median(k SUBSEP "p50"), "%.0f"), num(p99, "%.0f"),
                num(median(k SUBSEP "p999"), "%.0f"), num(median(k SUBSEP "mean"), "%.0f"),
                ratio(rps, brps), ratio(p99, bp99)
        }
    }
    if (index(" " proxies " ", " " floor " ") && index(" " proxies " ", " " base " ") && floor != base) {
        printf "\nFloors (%s against %s, medians): req/s at least %s'"'"'s, p99 no worse.\n\n", floor, base, base
        printf "| scenario | req/s ×%s | req/s floor | p99 ×%s | p99 floor |\n| --- | ---: | --- | ---: | --- |\n", base, base
        for (j = 1; j <= ns; j++) {
            sc = S[j]
            r = ratio(median(floor SUBSEP sc SUBSEP "rps"), median(base SUBSEP sc SUBSEP "rps"))
            l = ratio(median(floor SUBSEP sc SUBSEP "p99"), median(base SUBSEP sc SUBSEP "p99"))
            printf "| %s | %s | %s | %s | %s |\n", sc, r, r == "-" ? "-" : (r + 0 >= 1 ? "ok" : "**below**"),
                l, l == "-" ? "-" : (l + 0 <= 1 ? "ok" : "**worse**")
        }
    }
    printf "\nProxy CPU cost (median; the proxy process'"'"'s own CPU time during each scenario, so less\n"
    printf "sensitive to the machine'"'"'s load than req/s). busy = proxy CPU time / scenario wall time:\n"
    printf "near 100%% the proxy'"'"'s core is the bottleneck, well below it the load generator or origin is.\n\n"
    printf "| proxy |"; for (j = 1; j <= ns; j++) printf " %s CPU µs/req | busy |", S[j]
    printf "\n| --- |"; for (j = 1; j <= ns; j++) printf " ---: | ---: |"
    printf "\n"
    for (i = 1; i <= np; i++) {
        if (P[i] == "direct") continue
        printf "| %s |", P[i]
        for (j = 1; j <= ns; j++) {
            k = P[i] SUBSEP S[j]
            printf " %s | %s |", num(median(k SUBSEP "cpr"), "%.2f"), pctf(median(k SUBSEP "busy"))
        }
        printf "\n"
    }
    printf "\nSpread (min–max over runs):\n\n"
    printf "| scenario | proxy | req/s | p99 µs |\n| --- | --- | --- | --- |\n"
    for (j = 1; j <= ns; j++)
        for (i = 1; i <= np; i++) {
            k = P[i] SUBSEP S[j]
            printf "| %s | %s | %s | %s |\n", S[j], P[i], spread(k SUBSEP "rps", "%.0f"), spread(k SUBSEP "p99", "%.0f")
        }
    for (i = 1; i <= nwarn; i++) printf "%sWarning: %s\n", i == 1 ? "\n" : "", warn[i]
}' "$RESULTS"

for note in "${NOTES[@]}"; do printf '\nNote: %s\n' "$note"; done

versions="$(wrk --version 2>&1 | head -1 | awk '{ print "wrk " $2 }')"
command -v h2load >/dev/null && versions+=", $(h2load --version 2>&1 | head -1)"
command -v haproxy >/dev/null && versions+=", $(haproxy -v 2>&1 | head -1 | awk '{ print "HAProxy " $3 }')"
versions+=", $(nginx -v 2>&1 | sed 's/^nginx version: //')"
printf '\nTools: %s.\n' "$versions"
printf 'Load average (1/5/15 min) at start: %s; at end: %s (includes every process on the machine).\n' \
    "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)"
if [[ "${KEEP_TMP:-0}" == 1 ]]; then
    printf 'Raw results: %s (configs and logs in %s)\n' "$RESULTS" "$TMP"
else
    printf 'Raw results: %s (each client'"'"'s output in %s/)\n' "$RESULTS" "$OUT"
fi
