# shellcheck shell=bash
# Helpers shared by bench/l4.sh, bench/http.sh and bench/https.sh. Sourced, never run: this
# file only defines functions and constants, so sourcing it starts nothing.
#
# The functions work on the sourcing script's globals: TMP (its temp dir), RESULTS
# (results.tsv: proxy <TAB> scenario <TAB> run <TAB> key=value fields), OUT (the L7 scripts'
# raw client output), PIDS (every PID the script started), NOTES (printed under the table)
# and its settings (RUNS, PROXIES, PROXY_CPU, LOAD_CPU, BACKEND_CPU, BACKEND_PORT, BASE_PORT,
# READY_SECS, PROXY_MAX_SECS, BUILD, RINGWAY, ...). They set LAST_PID (start_bg), PROXY_PID,
# PROXY_PROC and PORT (the proxy under test), RINGWAY_OK and ORIGIN_PID. A script defines
# start_proxy NAME INDEX (called by rounds) and cleanup (its EXIT trap; it calls stop_all).
#
# Only 127.0.0.1 is used. Every process goes through start_bg or run_client, which wrap it in
# `timeout` (and pin it with taskset), so nothing outlives a killed run; stop_all stops the
# long-lived ones by PID.

# ------------------------------------------------------------------------------------------
# Processes

# log MESSAGE: to stderr, tagged with the script's name ("[http.sh] ...").
log() { echo "[${0##*/}] $*" >&2; }

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

stop_all() { # stop_all: stop every process start_bg started (from the script's EXIT trap)
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
}

# prune_tmp WHAT NAME...: unless KEEP_TMP=1, delete everything in TMP but the NAMEs (the raw
# results) and say that WHAT was kept.
prune_tmp() {
    local what="$1" name keep=()
    shift
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then
        log "kept $TMP"
    else
        for name in "$@"; do keep+=(! -name "$name"); done
        find "$TMP" -mindepth 1 -maxdepth 1 "${keep[@]}" -exec rm -rf {} +
        log "raw results kept in $what"
    fi
}

start_bg() { # start_bg NAME CPU MAX_SECS CMD...: run CMD pinned and time-bounded; sets LAST_PID
    local name="$1" cpu="$2" max="$3"
    shift 3
    timeout --signal=TERM --kill-after=5 "$max" taskset -c "$cpu" "$@" >"$TMP/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# run_client SECS CMD...: a load generator run in the foreground, pinned to LOAD_CPU and
# killed after SECS.
run_client() {
    local secs="$1"
    shift
    timeout --signal=TERM --kill-after=5 "$secs" taskset -c "$LOAD_CPU" "$@"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_until PID STEP CMD...: poll CMD every STEP seconds until it succeeds (true), PID dies
# or READY_SECS pass (false). An empty PID is not checked.
wait_until() {
    local pid="$1" step="$2" deadline=$((SECONDS + READY_SECS))
    shift 2
    while ((SECONDS < deadline)); do
        [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null && return 1
        "$@" && return 0
        sleep "$step"
    done
    return 1
}

wait_port() { wait_until "$2" 0.05 port_open "$1"; } # wait_port PORT PID: until PORT accepts

# ------------------------------------------------------------------------------------------
# The proxy under test: PROXY_PID is its `timeout` wrapper, PROXY_PROC the proxy itself.

# proxy_not_ready NAME WHAT: the proxy exited or did not do WHAT in time: say so with its
# output and stop it. The caller then fails (start_proxy returns 1).
proxy_not_ready() {
    log "$1 exited or $2 within ${READY_SECS}s; its output:"
    tail -20 "$TMP/$1.log" >&2
    stop_pid "$PROXY_PID"
    PROXY_PID=""
}

proxy_child() { # proxy_child: sets PROXY_PROC once the proxy is up
    # PROXY_PID is `timeout`; the proxy itself is its child (taskset execs the proxy).
    PROXY_PROC=$(awk '{ print $1 }' /proc/"$PROXY_PID"/task/"$PROXY_PID"/children 2>/dev/null)
    return 0
}

# proxy_died NAME WHAT: if the proxy is no longer running, log "NAME WHAT" and its last output.
proxy_died() {
    if [[ -n "${PROXY_PID:-}" ]] && ! kill -0 "$PROXY_PID" 2>/dev/null; then
        log "  $1 $2; last output:"
        tail -10 "$TMP/$1.log" >&2
    fi
}

stop_proxy() {
    [[ -n "${PROXY_PID:-}" ]] && stop_pid "$PROXY_PID"
    PROXY_PID=""
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

# proxy_cpu_now: the proxy's CPU time so far in ns; empty if there is no proxy (`direct`) or
# it cannot be read. Read before and after a client run: the difference is what the run cost
# the proxy, which is less sensitive to the machine's load than throughput.
proxy_cpu_now() {
    [[ -n "${PROXY_PROC:-}" ]] && proxy_cpu_ns "$PROXY_PROC"
    return 0
}

# add_result PROXY SCENARIO RUN FIELDS CPU0 CPU1: one line of RESULTS, with the proxy's CPU
# time during the run (proxy_cpu_ns=CPU1-CPU0) when both readings exist.
add_result() {
    local out="$4"
    [[ -n "$5" && -n "$6" ]] && out="$out proxy_cpu_ns=$(($6 - $5))"
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$out" >>"$RESULTS"
    log "  $1 $2 #$3: $out"
}

# run_failed PROXY SCENARIO RUN WHY: a client run gave no result; if the proxy is why, show it.
run_failed() {
    log "  $1 $2 #$3: $4"
    proxy_died "$1" exited
}

# rounds BODY NOTE(0|1): RUNS rounds; in each, every proxy of PROXIES in turn is started
# (start_proxy NAME INDEX, defined by the script), measured by `BODY NAME RUN`, checked and
# stopped. Rounds interleave the proxies, so slow drift of a noisy machine hits all of them
# alike, and each round starts one proxy further down the list (round 2 of "a b c" runs
# b c a), so no proxy always runs first, or always right after the same one. INDEX stays
# the proxy's place in PROXIES (its port). NOTE=1: a proxy that did not start gets a
# note under the table.
rounds() {
    local body="$1" note="$2" run proxy idx
    local -a list
    read -r -a list <<<"$PROXIES"
    local n=${#list[@]} k
    for run in $(seq "$RUNS"); do
        for ((k = 0; k < n; k++)); do
            proxy=${list[$(((k + run - 1) % n))]}
            idx=$(((k + run - 1) % n + 1))
            if ! start_proxy "$proxy" "$idx"; then
                log "  $proxy: not started, round $run skipped"
                [[ "$note" == 1 ]] &&
                    NOTES+=("$proxy did not start in round $run (its rows lack that run; the log above says why).")
                continue
            fi
            "$body" "$proxy" "$run"
            proxy_died "$proxy" "died during round $run"
            stop_proxy
        done
    done
}

# ------------------------------------------------------------------------------------------
# ringway

# ringway_binary ANNOUNCE(0|1): with BUILD=1 and the default RINGWAY, `cargo build
# --release` first (ANNOUNCE=1 logs that it starts). If the build fails but a previous
# binary exists, that one is measured and a note says so (STALE_OK=0 refuses). Sets
# RINGWAY_OK=0 when there is no binary to run.
ringway_binary() {
    local built
    RINGWAY_OK=1
    if [[ "$BUILD" == 1 && "$RINGWAY" == "$ROOT/target/release/ringway" ]]; then
        [[ "$1" == 1 ]] && log "cargo build --release ..."
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
    return 0
}

# ------------------------------------------------------------------------------------------
# nginx config pieces (origin, L7 proxy, L4 stream proxy)

nginx_head() { # nginx_head NAME: one process, pid and error log TMP/NAME*, epoll
    cat <<EOF
daemon off;
master_process off;          # a single process: the one worker
worker_processes 1;
pid $TMP/$1.pid;
error_log $TMP/$1-error.log warn;
worker_rlimit_nofile 10000;

events {
    worker_connections 4096;
    use epoll;
}
EOF
}

nginx_temp_paths() { # nginx_temp_paths DIR: every temp path under TMP/DIR (not the prefix's)
    cat <<EOF
    client_body_temp_path $TMP/$1/body;
    proxy_temp_path $TMP/$1/proxy;
    fastcgi_temp_path $TMP/$1/fastcgi;
    uwsgi_temp_path $TMP/$1/uwsgi;
    scgi_temp_path $TMP/$1/scgi;
EOF
}

# ------------------------------------------------------------------------------------------
# L7 (http.sh, https.sh): the origin, readiness checks, proxies, clients, parsers, tables

# L7_TOOLS_APT: the Debian package of each tool the L7 scripts use.
declare -A L7_TOOLS_APT=([wrk]=wrk [h2load]=nghttp2-client [haproxy]=haproxy [nginx]=nginx
    [taskset]=util-linux [timeout]=coreutils [curl]=curl [openssl]=openssl)

# l7_tools H2LOAD_SCENARIO [TOOL...]: names the packages of missing tools; exits without
# wrk, nginx, taskset, timeout, a TOOL or the wrk script; drops H2LOAD_SCENARIO from
# SCENARIOS without h2load and notes that haproxy rows are empty without haproxy.
l7_tools() {
    local h2scen="$1" tool pkgs missing=()
    shift
    for tool in wrk h2load haproxy nginx taskset timeout curl "$@"; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    if ((${#missing[@]})); then
        pkgs=""
        for tool in "${missing[@]}"; do pkgs+=" ${L7_TOOLS_APT[$tool]}"; done
        log "missing: ${missing[*]}; install with: apt-get install -y$pkgs"
    fi
    for tool in wrk nginx taskset timeout "$@"; do # the load generator and the origin are not optional
        command -v "$tool" >/dev/null || { log "$tool is required"; exit 1; }
    done
    command -v curl >/dev/null || log "no curl: readiness checks look at the status line only"
    if [[ " $SCENARIOS " == *" $h2scen "* ]] && ! command -v h2load >/dev/null; then
        SCENARIOS="${SCENARIOS/"$h2scen"/}"
        NOTES+=("$h2scen was not run: no h2load (apt-get install nghttp2-client).")
    fi
    if [[ " $PROXIES " == *" haproxy "* ]] && ! command -v haproxy >/dev/null; then
        NOTES+=("haproxy rows are empty: no haproxy (apt-get install haproxy).")
    fi
    [[ -f "$LUA_SCRIPT" ]] || { log "no wrk script at $LUA_SCRIPT"; exit 1; }
}

# get_check SCHEME PORT PATH SIZE: one GET; true if the status is 200 and the body has SIZE
# bytes. The certificate is not verified (neither wrk nor h2load does). Without curl only
# the status line is checked.
get_check() {
    local scheme="$1" port="$2" path="$3" size="$4" got
    if command -v curl >/dev/null; then
        got=$(curl -ks --max-time 2 -o /dev/null -w '%{http_code} %{size_download}' \
            "$scheme://127.0.0.1:$port$path" 2>/dev/null)
        [[ "$got" == "200 $size" ]]
    elif [[ "$scheme" == https ]]; then
        got=$(printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" |
            timeout 3 openssl s_client -quiet -connect "127.0.0.1:$port" 2>/dev/null | head -1)
        [[ "$got" == "HTTP/1."?" 200"* ]]
    else # bash alone
        got=$( (
            exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
            printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
            IFS= read -r -t 2 line <&3 && echo "$line"
        ) 2>/dev/null)
        [[ "$got" == "HTTP/1."?" 200"* ]]
    fi
}

# wait_ready SCHEME PORT PID: until GET /small answers 200, PID dies, or READY_SECS pass
wait_ready() { wait_until "$3" 0.1 get_check "$1" "$2" /small 6; }

# start_origin SECS ROOT_COMMENT: the origin, one nginx worker serving TMP/www (the script
# puts the files there) on BACKEND_PORT, pinned to BACKEND_CPU, up for SECS; sets ORIGIN_PID.
# ROOT_COMMENT (what is served) goes into the config. Exits if the port is taken.
start_origin() {
    port_open "$BACKEND_PORT" && { log "127.0.0.1:$BACKEND_PORT is already in use (set BACKEND_PORT)"; exit 1; }
    mkdir -p "$TMP/origin-tmp"
    {
        nginx_head origin
        cat <<EOF

http {
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    open_file_cache max=16 inactive=60s; # no open()/fstat() per request
    open_file_cache_valid 60s;
$(nginx_temp_paths origin-tmp)

    server {
        listen 127.0.0.1:$BACKEND_PORT backlog=4096;
        root $TMP/www;                  # $2
    }
}
EOF
    } >"$TMP/origin.conf"
    start_bg origin "$BACKEND_CPU" "$1" nginx -e "$TMP/origin-error.log" -p "$TMP" -c "$TMP/origin.conf"
    # shellcheck disable=SC2034 # for the script
    ORIGIN_PID=$LAST_PID
}

# write_haproxy_http FILE PORT [BIND_OPTS [GLOBAL_LINE...]]: HAProxy as an HTTP/1.1 reverse
# proxy to the origin (mode http, keep-alive, http-reuse always), one thread, no logging.
# https.sh adds TLS with BIND_OPTS (after `bind 127.0.0.1:PORT`) and lines for `global`.
# Like ringway (and nginx below), it tells the origin the client's address and scheme in
# X-Forwarded-For and X-Forwarded-Proto, so every proxy sends the origin the same request.
write_haproxy_http() {
    local file="$1" port="$2" bind_opts="${3:-}" line global=""
    shift 2
    (($#)) && shift
    for line in "$@"; do global+="    $line"$'\n'; done
    cat >"$file" <<EOF
global
    nbthread 1
    maxconn 4096
$global    # no 'log': logging off, as for the other proxies

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
    bind 127.0.0.1:$port$bind_opts
    default_backend be

backend be
    option forwardfor
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
    server origin 127.0.0.1:$BACKEND_PORT
EOF
}

# write_nginx_http FILE PORT [LISTEN_OPTS [HTTP_LINES [SERVER_LINES]]]: nginx as an HTTP/1.1
# reverse proxy to the origin (upstream keepalive), one worker, no access log. https.sh adds
# TLS with LISTEN_OPTS (after `listen 127.0.0.1:PORT`) and newline-separated directives for
# the `http` block (HTTP_LINES, a paragraph of their own) and the `server` block. It passes
# the client's Host and adds X-Forwarded-For and X-Forwarded-Proto, as ringway and HAProxy do.
write_nginx_http() {
    local file="$1" port="$2" listen_opts="${3:-}" http_extra="" server_extra="" line
    while IFS= read -r line; do [[ -n "$line" ]] && http_extra+=$'\n'"    $line"; done <<<"${4:-}"
    [[ -n "$http_extra" ]] && http_extra=$'\n'"$http_extra"
    while IFS= read -r line; do [[ -n "$line" ]] && server_extra+=$'\n'"        $line"; done <<<"${5:-}"
    mkdir -p "$TMP/nginx-tmp"
    {
        nginx_head nginx
        cat <<EOF

http {
    access_log off;
    keepalive_requests 100000;          # client side (default 1000 would close mid-run)
    keepalive_timeout 60s;
$(nginx_temp_paths nginx-tmp)$http_extra

    upstream o {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 256;                  # idle upstream connections kept per worker
        keepalive_requests 100000;
        keepalive_timeout 60s;
    }

    server {
        listen 127.0.0.1:$port$listen_opts backlog=4096;$server_extra
        location / {
            proxy_pass http://o;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_connect_timeout 1s;
            proxy_read_timeout 30s;
            proxy_max_temp_file_size 0; # buffer in memory only: no temp files for /big
        }
    }
}
EOF
    } >"$file"
}

# launch_http_proxy NAME INDEX: starts ringway, haproxy or nginx (configs from the script's
# write_ringway, write_haproxy and write_nginx FILE PORT) pinned to PROXY_CPU on its port;
# `direct` starts nothing and sets PORT to the origin's. Sets PORT and PROXY_PID (empty for
# direct) and clears PROXY_PROC; the script then waits until the proxy answers.
launch_http_proxy() {
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
        write_nginx "$cfg" "$PORT"
        start_bg nginx "$PROXY_CPU" "$PROXY_MAX_SECS" nginx -e "$TMP/nginx-error.log" -p "$TMP" -c "$cfg"
        ;;
    *)
        log "unknown proxy $name"
        return 1
        ;;
    esac
    PROXY_PID=$LAST_PID
}

# await_http_proxy NAME: after launch_http_proxy, wait until the proxy answers GET /small with
# 200 on PORT and set PROXY_PROC; if it does not in time, stop it and return 1.
await_http_proxy() {
    if ! wait_ready http "$PORT" "$PROXY_PID"; then
        proxy_not_ready "$1" "did not answer GET /small with 200 on 127.0.0.1:$PORT"
        return 1
    fi
    proxy_child
}

# run_scenario CLIENT PROXY SCENARIO RUN PORT: `CLIENT SCENARIO PORT` (a function of the
# script) runs the scenario's load generator and sets PARSER (parse_wrk or parse_h2load).
# Its output goes to OUT/PROXY-SCENARIO-RUN.txt; the parsed fields, with the proxy's CPU
# time during the run, go to RESULTS.
run_scenario() {
    local client="$1" proxy="$2" scen="$3" run="$4" port="$5" raw="$OUT/$2-$3-$4.txt"
    local out cpu0 cpu1 rc
    PARSER=parse_wrk
    cpu0=$(proxy_cpu_now)
    "$client" "$scen" "$port" >"$raw" 2>&1
    rc=$?
    cpu1=$(proxy_cpu_now)
    out=$("$PARSER" <"$raw")
    if [[ $rc == 0 && -n "$out" ]]; then
        add_result "$proxy" "$scen" "$run" "$out" "$cpu0" "$cpu1"
    else
        run_failed "$proxy" "$scen" "$run" "FAILED (exit $rc): $(tail -3 "$raw" | tr '\n' ' ')"
    fi
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

# ------------------------------------------------------------------------------------------
# Tables. AWK_STATS: awk functions over RESULTS lines: field(LINE, KEY) reads a key=value
# field; add(K, V) collects a value under key K; median(K) and spread(K, FMT) ("min–max
# (n=N)") over the runs; num/pctf/ratio format a value ("-" when missing).
# shellcheck disable=SC2034 # for the scripts' awk programs
AWK_STATS='
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
function ratio(v, b, fmt) { return (v == "" || b == "" || b == 0) ? "-" : sprintf(fmt == "" ? "%.2f" : fmt, v / b) }
'

# AWK_L7: the L7 scripts' reading of RESULTS (needs AWK_STATS; awk -v proxies, scens, base,
# floor, and big for http.sh's short-body check) and their tables. Before calling a table
# function the END block sets np/P (the proxies) and ns/S (the scenarios) with split().
# shellcheck disable=SC2016,SC2034 # awk, not shell (backquotes are Markdown); for the scripts
AWK_L7='
{
    p = $1; sc = $2; run = $3; line = $4; k = p SUBSEP sc
    add(k SUBSEP "rps", field(line, "rps"))
    add(k SUBSEP "p50", field(line, "p50_us"))
    add(k SUBSEP "p99", field(line, "p99_us"))
    runs_of[sc, run] = 1; one[p, sc, run, "rps"] = field(line, "rps"); one[p, sc, run, "p99"] = field(line, "p99_us")
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
# l7_medians(SUFFIX): the scenario list (desc[]) and the main table; SUFFIX follows the
# name of the direct row.
function l7_medians(suffix,   i, j, k, sc, brps, bp99, rps, p99) {
    for (j = 1; j <= ns; j++) printf "- `%s`: %s\n", S[j], desc[S[j]]
    printf "\n| scenario | proxy | req/s | p50 µs | p99 µs | p99.9 µs | mean µs | req/s ×%s | p99 ×%s |\n", base, base
    printf "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    for (j = 1; j <= ns; j++) {
        sc = S[j]
        brps = median(base SUBSEP sc SUBSEP "rps"); bp99 = median(base SUBSEP sc SUBSEP "p99")
        for (i = 1; i <= np; i++) {
            k = P[i] SUBSEP sc
            rps = median(k SUBSEP "rps"); p99 = median(k SUBSEP "p99")
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", sc, P[i] (P[i] == "direct" ? suffix : ""),
                num(rps, "%.0f"), num(median(k SUBSEP "p50"), "%.0f"), num(p99, "%.0f"),
                num(median(k SUBSEP "p999"), "%.0f"), num(median(k SUBSEP "mean"), "%.0f"),
                ratio(rps, brps), ratio(p99, bp99)
        }
    }
}
function l7_has_floor() { return index(" " proxies " ", " " floor " ") && index(" " proxies " ", " " base " ") && floor != base }
# l7_floors(TITLE): per scenario, the floor row against the baseline: req/s at least, p99 no worse
# The paired columns are the median over rounds of the ratio within each round: the two ran
# in the same round, minutes apart, so drift of a noisy machine between rounds cancels out.
function l7_floors(title,   j, sc, r, l, fr, br, fl, bl) {
    printf "\n%s (%s against %s, medians): req/s at least %s'"'"'s, p99 no worse. Paired = median over\n", title, floor, base, base
    printf "rounds of the ratio within each round (the two ran in the same round), so drift between rounds cancels.\n\n"
    printf "| scenario | req/s ×%s | req/s floor | p99 ×%s | p99 floor | paired req/s | paired p99 |\n", base, base
    printf "| --- | ---: | --- | ---: | --- | ---: | ---: |\n"
    for (j = 1; j <= ns; j++) {
        sc = S[j]
        # Judged on the unrounded medians: 0.996 prints as 1.00 but is below.
        fr = median(floor SUBSEP sc SUBSEP "rps"); br = median(base SUBSEP sc SUBSEP "rps")
        fl = median(floor SUBSEP sc SUBSEP "p99"); bl = median(base SUBSEP sc SUBSEP "p99")
        r = ratio(fr, br, "%.3f"); l = ratio(fl, bl, "%.3f")
        printf "| %s | %s | %s | %s | %s | %s | %s |\n", sc, r, r == "-" ? "-" : (fr + 0 >= br + 0 ? "ok" : "**below**"),
            l, l == "-" ? "-" : (fl + 0 <= bl + 0 ? "ok" : "**worse**"), paired(sc, "rps"), paired(sc, "p99")
    }
}
# paired(SCENARIO, METRIC): median over rounds of floor/base within the round ("-" if none)
function paired(sc, m,   key, a, b, n) {
    n = 0; cnt["paired" SUBSEP sc SUBSEP m] = 0   # a second table starts afresh
    for (key in runs_of) {
        split(key, a, SUBSEP); if (a[1] != sc) continue
        b = one[base, sc, a[2], m]
        if (b == "" || b == 0 || one[floor, sc, a[2], m] == "") continue
        add("paired" SUBSEP sc SUBSEP m, one[floor, sc, a[2], m] / b); n++
    }
    return n ? sprintf("%.3f", median("paired" SUBSEP sc SUBSEP m)) : "-"
}
# l7_cpu(): the proxy CPU µs per request and busy share, a row per proxy (after the prose)
function l7_cpu(   i, j, k) {
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
}
# l7_spread(): min–max over the runs, then the warnings about runs with errors
function l7_spread(   i, j, k) {
    printf "\nSpread (min–max over runs):\n\n"
    printf "| scenario | proxy | req/s | p99 µs |\n| --- | --- | --- | --- |\n"
    for (j = 1; j <= ns; j++)
        for (i = 1; i <= np; i++) {
            k = P[i] SUBSEP S[j]
            printf "| %s | %s | %s | %s |\n", S[j], P[i], spread(k SUBSEP "rps", "%.0f"), spread(k SUBSEP "p99", "%.0f")
        }
    for (i = 1; i <= nwarn; i++) printf "%sWarning: %s\n", i == 1 ? "\n" : "", warn[i]
}
'

print_notes() { # print_notes: NOTES, under the table
    local note
    for note in "${NOTES[@]}"; do printf '\nNote: %s\n' "$note"; done
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; } # loadavg: the 1/5/15 min load averages

print_load() { # print_load START: the load average at START (loadavg's output) and now
    printf 'Load average (1/5/15 min) at start: %s; at end: %s (includes every process on the machine).\n' \
        "$1" "$(loadavg)"
    # The kernel's congestion control shapes large transfers on loopback: under BBR the
    # origin paces its long-lived connections to a proxy (see bench/results-l7.md).
    printf 'TCP congestion control: %s.\n' \
        "$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo unknown)"
}
