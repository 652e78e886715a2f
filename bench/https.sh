#!/usr/bin/env bash
# TLS-termination benchmark: ringway, HAProxy (mode http, `bind ... ssl crt`, http-reuse
# always) and nginx (`listen ... ssl`, upstream keepalive) each terminate HTTPS with the same
# ECDSA P-256 certificate and proxy to a plaintext nginx origin, as bench/http.sh does for
# plain HTTP. The certificate is the `localhost` leaf (SAN DNS:localhost, IP:127.0.0.1) that
# scripts/gen-certs.sh writes into the temp directory.
#
#   bench/https.sh                     # RUNS=3, DURATION=10, prints a Markdown table on stdout
#   PROXIES="haproxy nginx" RUNS=1 DURATION=3 BUILD=0 bench/https.sh   # quick, no ringway
#   RESUME=1 SCENARIOS=handshakes bench/https.sh                      # resumed handshakes
#
# Layout as in http.sh: the proxy on CPU $PROXY_CPU (1), one worker/thread; the origin nginx
# (one worker, plaintext) on $BACKEND_CPU (0); the load generator (one thread) on $LOAD_CPU
# (0). Rounds interleave the proxies; the table shows the median of $RUNS runs:
#   ka50       : wrk -t1 -c50 --latency GET /small for $DURATION s, keep-alive over TLS
#                -> req/s, p50/p99/p99.9 (bench/http/latency.lua)
#   h2load_ka  : h2load --h1 -t1 -c50 -n $H2LOAD_REQUESTS GET /small, keep-alive  -> req/s, mean
#   handshakes : wrk -t1 -c50 -H 'Connection: close' GET /small for $DURATION s: the proxy
#                closes after each response and wrk reconnects, so every request is a new
#                TCP connection and TLS handshake -> handshakes (= requests)/s. wrk's
#                latency clock starts when the request is written, after the handshake, so
#                its percentiles leave the handshake out; the proxy CPU µs/req column is the
#                cost of one accept + handshake + request.
#
# TLS parameters, the same for every proxy: TLS 1.2-1.3 accepted (ringway min_version "1.2";
# HAProxy ssl-min-ver TLSv1.2; nginx ssl_protocols TLSv1.2 TLSv1.3); the clients negotiate
# TLS 1.3 with TLS_AES_128_GCM_SHA256 (TLS 1.2: ECDHE-ECDSA-AES128-GCM-SHA256), ECDSA P-256
# signatures, key exchange X25519 (OpenSSL's first key share). HAProxy and nginx are limited
# to those suites; the clients offer only them too (wrk through an OPENSSL_CONF file, since
# it has no cipher option; h2load with --tls13-ciphers/--ciphers), so ringway negotiates
# them whatever its own preference. Before each proxy's round, `openssl s_client` probes
# what it negotiates (protocol, suite, key exchange, signature, ALPN) and whether it resumes
# sessions; a table under the results shows it.
#
# Session resumption (checked with an nginx access log of $ssl_session_reused: Debian's
# wrk 4.1.0 and h2load 1.52 with OpenSSL 3.0): wrk DOES resume. On a reconnect it calls
# SSL_shutdown + SSL_clear on the same SSL object, which keeps the session (and in TLS 1.3
# the ticket that came with the first response), so every connection after a connection's
# first offers a PSK; h2load resumes too. So with a server that allows resumption, the
# `handshakes` scenario measures almost only resumed (PSK + X25519, no certificate, no ECDSA
# signature) handshakes. By default (RESUME=0) HAProxy (`tune.ssl.cachesize 0`,
# `no-tls-tickets`) and nginx (`ssl_session_cache off`, `ssl_session_tickets off`) refuse
# resumption, so every handshake is a full one; RESUME=1 leaves resumption on (HAProxy's
# defaults; nginx `ssl_session_cache shared:SSL:10m` and tickets); ringway gets
# `resumption: false` or `true` to match. The probe reports whether each proxy resumed, and
# a note says when that does not match RESUME (then its `handshakes` row is not comparable).
#
# wrk sends the literal "127.0.0.1" as SNI (h2load sends none for an IP address); none of
# the servers needs SNI here (one certificate). There is no `direct` row by default: no-TLS
# numbers are no ceiling for TLS work. PROXIES may include `direct` (the plaintext origin
# over http://, no proxy, no TLS) as a reference for what the client core manages without
# TLS. The ringway config is bench/https/ringway.ron with the ports and certificate paths
# filled in. See bench/README.md. Only 127.0.0.1 is used. Every process this script starts
# is stopped by PID (trap on EXIT) and is also wrapped in `timeout`. The process handling,
# origin, proxy configs, clients, parsers and tables it shares with http.sh (and partly
# l4.sh) are in bench/lib.sh.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$ROOT/bench/lib.sh" || exit 1 # the helpers shared with http.sh and l4.sh

RUNS="${RUNS:-3}"
DURATION="${DURATION:-10}"            # seconds per measured wrk run
WARMUP_SECS="${WARMUP_SECS:-2}"       # untimed keep-alive wrk -c50 after each proxy start; 0 = none
CONNS="${CONNS:-50}"                  # connections, every scenario
H2LOAD_REQUESTS="${H2LOAD_REQUESTS:-$((DURATION * 10000))}" # h2load_ka: -n
H2LOAD_MAX_SECS="${H2LOAD_MAX_SECS:-120}" # h2load_ka is killed after this many seconds
WRK_TIMEOUT="${WRK_TIMEOUT:-5s}"      # wrk --timeout: a response slower than this is an error
SCENARIOS="${SCENARIOS:-ka50 h2load_ka handshakes}"
RESUME="${RESUME:-0}"                 # 0: HAProxy and nginx refuse session resumption; 1: allow
PROXY_CPU="${PROXY_CPU:-1}"
LOAD_CPU="${LOAD_CPU:-0}"
BACKEND_CPU="${BACKEND_CPU:-0}"
BACKEND_PORT="${BACKEND_PORT:-23200}" # the plaintext origin nginx
BASE_PORT="${BASE_PORT:-23300}"       # proxy listens on BASE_PORT+k: k = 0 ringway, 10 haproxy, 20 nginx
CLIENT_SLACK="${CLIENT_SLACK:-30}"    # seconds: a wrk run is killed after DURATION + this
PROXY_MAX_SECS="${PROXY_MAX_SECS:-900}" # seconds: hard cap on any proxy process's life
READY_SECS="${READY_SECS:-10}"        # seconds for a proxy to answer GET /small with 200
BASELINE="${BASELINE:-haproxy}"       # the row the ratio columns divide by
FLOOR_PROXY="${FLOOR_PROXY:-ringway}" # the row checked against BASELINE under the table
PROXIES="${PROXIES:-ringway haproxy nginx}"
RINGWAY="${RINGWAY:-$ROOT/target/release/ringway}"
RINGWAY_TEMPLATE="${RINGWAY_TEMPLATE:-$ROOT/bench/https/ringway.ron}"
LUA_SCRIPT="${LUA_SCRIPT:-$ROOT/bench/http/latency.lua}"
GEN_CERTS="${GEN_CERTS:-$ROOT/scripts/gen-certs.sh}"
BUILD="${BUILD:-1}"                   # 1: cargo build --release before running (if ringway is a row)

TLS13_SUITES="TLS_AES_128_GCM_SHA256"
TLS12_CIPHERS="ECDHE-ECDSA-AES128-GCM-SHA256"

TMP="$(mktemp -d /tmp/ringway-https.XXXXXX)"
RESULTS="$TMP/results.tsv"            # proxy <TAB> scenario <TAB> run <TAB> key=value fields
PROBES="$TMP/tls.tsv"                 # proxy <TAB> run <TAB> what s_client saw
OUT="$TMP/out"                        # every client's raw output, one file per run
mkdir -p "$OUT" "$TMP/www"
: >"$RESULTS"
: >"$PROBES"
PIDS=()

cleanup() {
    stop_all
    if [[ -n "${RAW_OUT:-}" && -s "$RESULTS" ]]; then cp "$RESULTS" "$RAW_OUT"; fi
    # Keep the raw results (results.tsv, tls.tsv and each client's output); drop the
    # configs, logs, keys and the served file.
    prune_tmp "$RESULTS, $PROBES and $OUT/" results.tsv tls.tsv out
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------------------
# Tools

NOTES=()   # printed under the table
l7_tools h2load_ka openssl # openssl: the certificates
[[ "$RESUME" == 0 || "$RESUME" == 1 ]] || { log "RESUME must be 0 or 1"; exit 1; }

RINGWAY_OK=1
if [[ " $PROXIES " == *" ringway "* ]]; then
    ringway_binary 1
    [[ -f "$RINGWAY_TEMPLATE" ]] || { log "no ringway config template at $RINGWAY_TEMPLATE"; RINGWAY_OK=0; }
    [[ "$RINGWAY_OK" == 1 ]] || NOTES+=("ringway rows are empty: no ringway binary or config template.")
fi

[[ "$(nproc)" -ge 2 ]] || log "warning: fewer than 2 CPUs; CPU $PROXY_CPU may not exist"

# ------------------------------------------------------------------------------------------
# Certificate: one ECDSA P-256 leaf for every proxy. HAProxy's `crt` wants the certificate
# and its key in one file.

if ! timeout 60 "$GEN_CERTS" "$TMP/certs" >"$TMP/gen-certs.log" 2>&1; then
    log "$GEN_CERTS failed:"
    cat "$TMP/gen-certs.log" >&2
    exit 1
fi
CERT="$TMP/certs/localhost.pem"
KEY="$TMP/certs/localhost.key"
HAPROXY_CRT="$TMP/certs/localhost.haproxy.pem"
cat "$CERT" "$KEY" >"$HAPROXY_CRT"

# The clients' OpenSSL settings: wrk has no cipher option, but OpenSSL reads OPENSSL_CONF
# when it initialises, so this file limits what wrk (and s_client) offer. h2load sets its
# own suites, so it also gets --tls13-ciphers/--ciphers.
CLIENT_CNF="$TMP/client-openssl.cnf"
cat >"$CLIENT_CNF" <<EOF
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_module
[ssl_module]
system_default = tls_client
[tls_client]
MinProtocol = TLSv1.2
MaxProtocol = TLSv1.3
CipherString = $TLS12_CIPHERS
Ciphersuites = $TLS13_SUITES
EOF

# ------------------------------------------------------------------------------------------
# Origin: one plaintext nginx worker serving /small, up for the whole run.

printf 'hello\n' >"$TMP/www/small"

# The origin lives as long as the whole run may take at worst (every client hitting its
# timeout), and not longer.
NPROXIES=$(wc -w <<<"$PROXIES")
NSCEN=$(wc -w <<<"$SCENARIOS")
BACKEND_SECS=$((RUNS * NPROXIES * ((NSCEN + 1) * (DURATION + CLIENT_SLACK + 5) + H2LOAD_MAX_SECS + 2 * READY_SECS + 30) + 60))
start_origin "$BACKEND_SECS" '/small: "hello\n" (6 bytes)'
if ! wait_ready http "$BACKEND_PORT" "$ORIGIN_PID"; then
    log "origin nginx did not serve /small on 127.0.0.1:$BACKEND_PORT; its output:"
    tail -n 20 "$TMP/origin.log" "$TMP/origin-error.log" >&2
    exit 1
fi

# ------------------------------------------------------------------------------------------
# Proxies: http.sh's configs (bench/lib.sh) with TLS added

write_ringway() { # write_ringway FILE PORT: the template with ports and certificate filled in
    sed -e "s|@PORT@|$2|g" -e "s|@BACKEND_PORT@|$BACKEND_PORT|g" \
        -e "s|@CERT@|$CERT|g" -e "s|@KEY@|$KEY|g" \
        -e "s|@RESUMPTION@|$([[ "$RESUME" == 1 ]] && echo true || echo false)|g" \
        "$RINGWAY_TEMPLATE" >"$1"
}

write_haproxy() { # write_haproxy FILE PORT
    local resume_global="" resume_bind=""
    if [[ "$RESUME" == 0 ]]; then
        resume_global="tune.ssl.cachesize 0           # no session cache: no resumption by session ID"
        resume_bind=" no-tls-tickets"
    fi
    write_haproxy_http "$1" "$2" " ssl crt $HAPROXY_CRT alpn http/1.1" \
        "ssl-default-bind-ciphers $TLS12_CIPHERS" \
        "ssl-default-bind-ciphersuites $TLS13_SUITES" \
        "ssl-default-bind-options ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3$resume_bind" \
        "$resume_global"
}

write_nginx() { # write_nginx FILE PORT
    local cache="off" tickets="off"
    [[ "$RESUME" == 1 ]] && { cache="shared:SSL:10m"; tickets="on"; }
    write_nginx_http "$1" "$2" " ssl" "
ssl_protocols TLSv1.2 TLSv1.3;      # nginx 1.22's default leaves TLS 1.3 out
ssl_ciphers $TLS12_CIPHERS;
ssl_conf_command Ciphersuites $TLS13_SUITES;
ssl_session_cache $cache;
ssl_session_tickets $tickets;
" "
ssl_certificate $CERT;
ssl_certificate_key $KEY;
"
}

# start_proxy NAME INDEX: starts it pinned to PROXY_CPU; sets PROXY_PID, PROXY_PROC, PORT, SCHEME
start_proxy() {
    SCHEME=https
    launch_http_proxy "$1" "$2" || return 1
    if [[ "$1" == direct ]]; then # the plaintext origin itself: no proxy, no TLS
        SCHEME=http
        return 0
    fi
    if ! wait_ready https "$PORT" "$PROXY_PID"; then
        proxy_not_ready "$1" "did not answer GET https://127.0.0.1:$PORT/small with 200"
        return 1
    fi
    proxy_child
}

# tls_probe PROXY RUN PORT: two `openssl s_client` connections with the clients' settings,
# each sending GET /small with `Connection: close`; the second offers the session (ticket)
# the first got. Appends what was negotiated to $PROBES, whether the session was resumed,
# and whether the proxy closed the connection after the response (if it did not, s_client
# waits for the close until `timeout` ends it, and the `handshakes` scenario would not make
# one handshake per request).
tls_probe() {
    local proxy="$1" run="$2" port="$3" p1="$TMP/probe-$1-1.txt" p2="$TMP/probe-$1-2.txt"
    local req='GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'
    local s_client=(env OPENSSL_CONF="$CLIENT_CNF" timeout 3 openssl s_client -connect "127.0.0.1:$port"
        -alpn http/1.1 -ign_eof -CAfile "$TMP/certs/ca.pem" -verify_ip 127.0.0.1)
    local closes=yes rcs
    rm -f "$TMP/probe.sess"
    printf '%b' "$req" | "${s_client[@]}" -sess_out "$TMP/probe.sess" >"$p1" 2>&1
    rcs=("${PIPESTATUS[@]}")
    [[ "${rcs[1]:-}" == 124 ]] && closes=no
    # A server that issues no ticket (resumption off, TLS 1.3) leaves no session to
    # offer: the second connection then offers none, and is a new session.
    local offer=()
    [[ -s "$TMP/probe.sess" ]] && offer=(-sess_in "$TMP/probe.sess")
    printf '%b' "$req" | "${s_client[@]}" "${offer[@]}" >"$p2" 2>&1
    local line
    line=$(awk -v second="$p2" -v closes="$closes" '
        /^(New|Reused), / { sub(/,$/, "", $2); proto = $2; cipher = $NF }
        /^Server Temp Key: / { sub(/^Server Temp Key: /, ""); sub(/,.*/, ""); kx = $0 }
        /^Negotiated TLS1.3 group: / { kx = $NF }
        /^Peer signature type: / { sig = $NF }
        /^Peer signing digest: / { dig = $NF }
        /^ALPN protocol: / { alpn = $NF }
        /^No ALPN negotiated/ { alpn = "none" }
        /^Verification: OK/ { ver = "ok" }
        /^HTTP\/1\.[01] / && status == "" { status = $2 }
        END {
            while ((getline l < second) > 0) {
                if (l ~ /^Reused, /) resumed = "yes"
                else if (l ~ /^New, /) resumed = "no"
                if (l ~ /^HTTP\/1\.[01] 200/) s2 = "200"
            }
            if (resumed == "") resumed = "?"
            if (s2 == "") resumed = resumed ",second-GET-failed"
            printf "proto=%s cipher=%s kx=%s sig=%s+%s alpn=%s cert_verify=%s status=%s resumed=%s closes=%s\n",
                proto == "" ? "?" : proto, cipher == "" ? "?" : cipher, kx == "" ? "?" : kx,
                sig == "" ? "?" : sig, dig == "" ? "?" : dig, alpn == "" ? "?" : alpn,
                ver == "" ? "failed" : ver, status == "" ? "?" : status, resumed, closes
        }' "$p1")
    printf '%s\t%s\t%s\n' "$proxy" "$run" "$line" >>"$PROBES"
    log "  $proxy TLS: $line"
}

client() { # client SECS CMD ARGS...: the load generator pinned to the load CPU, time-bounded,
    # with the clients' OpenSSL settings
    OPENSSL_CONF="$CLIENT_CNF" run_client "$@"
}

scenario_client() { # scenario_client SCENARIO PORT: run_scenario's client run; sets PARSER
    local url="$SCHEME://127.0.0.1:$2/small" wrk_secs=$((DURATION + CLIENT_SLACK))
    local wrk=(wrk -t1 -c "$CONNS" --latency --timeout "$WRK_TIMEOUT" -d "${DURATION}s" -s "$LUA_SCRIPT")
    case "$1" in
    ka50) client "$wrk_secs" "${wrk[@]}" "$url" ;;
    handshakes) client "$wrk_secs" "${wrk[@]}" -H 'Connection: close' "$url" ;;
    h2load_ka)
        PARSER=parse_h2load
        client "$H2LOAD_MAX_SECS" h2load --h1 -t1 -c "$CONNS" -n "$H2LOAD_REQUESTS" \
            --tls13-ciphers="$TLS13_SUITES" --ciphers="$TLS12_CIPHERS" "$url"
        ;;
    *) log "unknown scenario $1"; return 1 ;;
    esac
}

round() { # round PROXY RUN: the TLS probe, a warm-up, then every scenario against PORT
    local scen
    [[ "$SCHEME" == https ]] && tls_probe "$1" "$2" "$PORT"
    if [[ "$WARMUP_SECS" != 0 ]]; then
        client $((WARMUP_SECS + CLIENT_SLACK)) wrk -t1 -c "$CONNS" -d "${WARMUP_SECS}s" \
            "$SCHEME://127.0.0.1:$PORT/small" >"$TMP/warmup.log" 2>&1 || log "  $1: warm-up failed"
    fi
    for scen in $SCENARIOS; do
        run_scenario scenario_client "$1" "$scen" "$2" "$PORT"
    done
}

# ------------------------------------------------------------------------------------------
# Runs

LOAD_START="$(loadavg)"
log "tmp=$TMP runs=$RUNS duration=${DURATION}s proxies=($PROXIES) scenarios=($SCENARIOS) resume=$RESUME"
log "cpus: proxy=$PROXY_CPU load=$LOAD_CPU origin=$BACKEND_CPU; origin 127.0.0.1:$BACKEND_PORT"
rounds round 1

# ------------------------------------------------------------------------------------------
# Tables: medians and ratios to BASELINE, the floor check, CPU cost, the spread, then what
# each proxy negotiated.

awk -F'\t' -v proxies="$PROXIES" -v scens="$SCENARIOS" -v base="$BASELINE" -v floor="$FLOOR_PROXY" \
    -v runs="$RUNS" -v dur="$DURATION" -v c="$CONNS" -v nreq="$H2LOAD_REQUESTS" -v resume="$RESUME" \
    "$AWK_STATS$AWK_L7"'
END {
    np = split(proxies, P, " "); ns = split(scens, S, " ")
    desc["ka50"] = sprintf("wrk -c%d GET /small (6 B), keep-alive over TLS", c)
    desc["h2load_ka"] = sprintf("h2load --h1 -c%d -n %d GET /small, keep-alive over TLS", c, nreq)
    desc["handshakes"] = sprintf("wrk -c%d GET /small with `Connection: close`: one TLS handshake per request, %s (req/s = handshakes/s; latency excludes the handshake)",
        c, resume == 1 ? "resumption allowed (RESUME=1)" : "full handshakes (HAProxy and nginx refuse resumption)")
    printf "Median of %d runs, %d s each (h2load_ka: a fixed request count). Latencies in µs; ", runs, dur
    printf "p50/p99/p99.9 from wrk'"'"'s histogram (h2load gives no percentiles: mean only). "
    printf "×%s = ratio to the %s row (req/s: higher is better; p99: lower is better).\n\n", base, base
    l7_medians(" (plaintext)")
    if (l7_has_floor()) {
        r = ratio(median(floor SUBSEP "ka50" SUBSEP "rps"), median(base SUBSEP "ka50" SUBSEP "rps"))
        printf "\nFloor: %s keep-alive req/s (ka50) >= %s'"'"'s: %s\n", floor, base,
            r == "-" ? "not measured" : (r + 0 >= 1 ? "ok (×" r ")" : "**below** (×" r ")")
        l7_floors("All floors")
    } else {
        printf "\nFloor: %s keep-alive req/s (ka50) >= %s'"'"'s: not measured (PROXIES lacks one of them)\n", floor, base
    }
    printf "\nProxy CPU cost (median; the proxy process'"'"'s own CPU time during each scenario, so less\n"
    printf "sensitive to the machine'"'"'s load than req/s; for `handshakes` it is per accepted\n"
    printf "connection + handshake + request). busy = proxy CPU time / scenario wall time:\n"
    printf "near 100%% the proxy'"'"'s core is the bottleneck, well below it the load generator or origin is.\n\n"
    l7_cpu()
    l7_spread()
}' "$RESULTS"

# What each proxy negotiated with `openssl s_client` using the clients' settings (first
# round; later rounds are in tls.tsv). A mismatch between proxies is a note.
if [[ -s "$PROBES" ]]; then
    printf '\nTLS as negotiated (openssl s_client with the clients'"'"' settings, before the first round;\n'
    printf 'resumed = a second connection offering the first one'"'"'s session was resumed; closes = the\n'
    # shellcheck disable=SC2016 # backquotes are Markdown
    printf 'proxy closed the connection after answering a request with `Connection: close`):\n\n'
    printf '| proxy | protocol | cipher suite | key exchange | signature | ALPN | GET | resumed | closes |\n'
    printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
    for proxy in $PROXIES; do
        line=$(awk -F'\t' -v p="$proxy" '$1 == p { print $3; exit }' "$PROBES")
        [[ -n "$line" ]] || continue
        read -r proto cipher kx sig alpn status resumed closes < <(awk '{
            for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
            print f["proto"], f["cipher"], f["kx"], f["sig"], f["alpn"], f["status"], f["resumed"], f["closes"] }' <<<"$line")
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
            "$proxy" "$proto" "$cipher" "$kx" "$sig" "$alpn" "$status" "$resumed" "$closes"
        if [[ "$closes" != yes ]]; then
            NOTES+=("$proxy kept the connection open after a \`Connection: close\` request: its handshakes row is not one handshake per request.")
        fi
        if [[ "$proto" != TLSv1.3 || "$cipher" != "$TLS13_SUITES" ]]; then
            NOTES+=("$proxy negotiated $proto $cipher, not TLSv1.3 $TLS13_SUITES like the others should: its rows are not like for like.")
        fi
        want=no
        [[ "$RESUME" == 1 ]] && want=yes
        if [[ "$resumed" != "$want" ]]; then
            NOTES+=("$proxy: session resumption is '$resumed', RESUME=$RESUME expects '$want': its handshakes row measures $([[ "$resumed" == yes ]] && echo "resumed" || echo "full") handshakes, not like the others.")
        fi
    done
fi

print_notes

versions="$(wrk --version 2>&1 | head -1 | awk '{ print "wrk " $2 }')"
command -v h2load >/dev/null && versions+=", $(h2load --version 2>&1 | head -1)"
command -v haproxy >/dev/null && versions+=", $(haproxy -vv 2>&1 | awk '
    NR == 1 { v = $3 } /^Running on OpenSSL version/ { o = " (OpenSSL " $7 ")" } END { print "HAProxy " v o }')"
versions+=", $(nginx -V 2>&1 | awk '/^nginx version/ { sub(/^nginx version: /, ""); v = $0 }
    /^built with OpenSSL/ { o = " (OpenSSL " ($0 ~ /running with/ ? $(NF - 3) : $4) ")" } END { print v o }')"
versions+=", $(openssl version | awk '{ print $1 " " $2 }') (clients)"
printf '\nTools: %s.\n' "$versions"
print_load "$LOAD_START"
if [[ "${KEEP_TMP:-0}" == 1 ]]; then
    printf 'Raw results: %s (configs and logs in %s)\n' "$RESULTS" "$TMP"
else
    printf 'Raw results: %s, %s (each client'"'"'s output in %s/)\n' "$RESULTS" "$PROBES" "$OUT"
fi
