#!/usr/bin/env bash
# Generate a private test CA and certificates signed by it, for local use and tests only
# (never for anything reachable from outside: the CA key sits next to the certificates).
#
#   scripts/gen-certs.sh                 # into conf/certs/ (of the repository; git-ignored)
#   scripts/gen-certs.sh /tmp/certs      # into another directory (created if missing)
#   scripts/gen-certs.sh --force [DIR]   # regenerate everything, overwriting
#
# Writes, all ECDSA P-256 (prime256v1) with SHA-256 signatures, keys as PKCS#8 PEM
# ("BEGIN PRIVATE KEY", mode 600):
#   ca.pem / ca.key                      self-signed CA "ringway test CA", 10 years,
#                                        basicConstraints CA:TRUE, keyUsage keyCertSign,cRLSign
#   example.com.pem / .key               SAN DNS:example.com, DNS:www.example.com
#   api.example.com.pem / .key           SAN DNS:api.example.com
#   localhost.pem / .key                 SAN DNS:localhost, IP:127.0.0.1
#   client.pem / client.key              CN=ringway-client, O=ringway; EKU clientAuth
#   <name>.chain.pem                     for each of the four leaves: leaf + CA
# Server leaves: 825 days, EKU serverAuth, keyUsage digitalSignature, CA:FALSE. A leaf's
# <name>.pem holds the leaf certificate only.
#
# Idempotent: files that exist are kept (a leaf is only checked: it must match its key and
# verify against ca.pem) unless --force is given; the script prints what it wrote and what
# it kept. A missing leaf is signed by the existing CA. If a kept leaf no longer verifies
# (for example the CA was replaced by hand) it stops and says to rerun with --force.
# Every leaf is verified at the end with `openssl verify -CAfile ca.pem`.
# Needs the openssl CLI (1.1.1 or 3.x; tested with OpenSSL 3.0 on Debian 12).
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

FORCE=0
DIR=""
while (($#)); do
    case "$1" in
    --force | -f) FORCE=1 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; DIR="${1:-}"; break ;;
    -*) echo "gen-certs.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *)
        [[ -z "$DIR" ]] || { echo "gen-certs.sh: one directory only (see --help)" >&2; exit 2; }
        DIR="$1"
        ;;
    esac
    shift
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${DIR:-$ROOT/conf/certs}"

command -v openssl >/dev/null || { echo "gen-certs.sh: needs the openssl command" >&2; exit 1; }
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gen-certs.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# One self-contained OpenSSL config, so the system's openssl.cnf (its default extensions
# and policies) has no say in what is issued.
CNF="$WORK/openssl.cnf"
cat >"$CNF" <<'EOF'
[ req ]
distinguished_name = dn
prompt             = no
utf8               = yes
string_mask        = utf8only

[ dn ]
CN = unused

[ v3_ca ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash

[ v3_server ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
subjectAltName         = $ENV::RINGWAY_SAN

[ v3_client ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
export RINGWAY_SAN="DNS:unused" # read by the v3_server section (set per leaf below)

LEAVES=(example.com api.example.com localhost client)

ossl() { # ossl ARGS...: openssl, its chatter hidden unless it fails
    if ! openssl "$@" 2>"$WORK/stderr"; then
        echo "gen-certs.sh: openssl $1 failed:" >&2
        cat "$WORK/stderr" >&2
        exit 1
    fi
}

newkey() { # newkey FILE: an ECDSA P-256 private key, PKCS#8 PEM, mode 600
    (umask 077 && ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -pkeyopt ec_param_enc:named_curve -out "$1")
}

serial() { echo "0x$(openssl rand -hex 16)"; } # 128 random bits

# pubkey_matches CERT KEY: true if CERT carries KEY's public key
pubkey_matches() {
    [[ "$(openssl x509 -in "$1" -noout -pubkey 2>/dev/null)" == "$(openssl pkey -in "$2" -pubout 2>/dev/null)" ]]
}

# present NAME: true if NAME.pem and NAME.key both exist and are to be kept. Exactly one of
# the two existing (without --force) is an error: the script will not overwrite it.
present() {
    local name="$1" pem="$DIR/$1.pem" key="$DIR/$1.key"
    ((FORCE)) && return 1
    if [[ -e "$pem" && -e "$key" ]]; then
        pubkey_matches "$pem" "$key" || {
            echo "gen-certs.sh: $pem does not match $key; rerun with --force to regenerate" >&2
            exit 1
        }
        return 0
    fi
    if [[ -e "$pem" || -e "$key" ]]; then
        echo "gen-certs.sh: only one of $name.pem / $name.key exists in $DIR; rerun with --force to regenerate both" >&2
        exit 1
    fi
    return 1
}

PENDING=() # files made in $WORK, moved into $DIR together at the end
stage() { PENDING+=("$@"); }

kept() { # kept FILE...: say so
    local f
    for f in "$@"; do echo "kept  $DIR/$f (exists; --force to regenerate)"; done
}

# ---- CA ---------------------------------------------------------------------------------
if present ca; then
    kept ca.pem ca.key
else
    if ((!FORCE)); then # a new CA would not have signed the leaves that are already here
        for name in "${LEAVES[@]}"; do
            if [[ -e "$DIR/$name.pem" ]]; then
                echo "gen-certs.sh: no ca.pem/ca.key in $DIR but $name.pem exists (signed by a CA that is gone);" \
                    "rerun with --force to regenerate everything" >&2
                exit 1
            fi
        done
    fi
    newkey "$WORK/ca.key"
    ossl req -config "$CNF" -new -x509 -key "$WORK/ca.key" -sha256 -days 3650 \
        -set_serial "$(serial)" -subj "/CN=ringway test CA/O=ringway" \
        -extensions v3_ca -out "$WORK/ca.pem"
    stage ca.pem ca.key
fi
CA="$DIR"                      # where the signing CA is now
[[ -e "$WORK/ca.pem" ]] && CA="$WORK"

# ---- leaves -----------------------------------------------------------------------------
# leaf NAME KIND SUBJECT [SAN]: KIND is server (825 days, serverAuth, SAN) or client
leaf() {
    local name="$1" kind="$2" subj="$3" san="${4:-}"
    if present "$name"; then
        if ! openssl verify -CAfile "$CA/ca.pem" "$DIR/$name.pem" >/dev/null 2>&1; then
            echo "gen-certs.sh: $DIR/$name.pem does not verify against ca.pem; rerun with --force" >&2
            exit 1
        fi
        kept "$name.pem" "$name.key"
        if [[ ! -e "$DIR/$name.chain.pem" ]]; then
            cat "$DIR/$name.pem" "$DIR/ca.pem" >"$WORK/$name.chain.pem"
            stage "$name.chain.pem"
        else
            kept "$name.chain.pem"
        fi
        return 0
    fi
    newkey "$WORK/$name.key"
    ossl req -config "$CNF" -new -key "$WORK/$name.key" -subj "$subj" -out "$WORK/$name.csr"
    RINGWAY_SAN="${san:-DNS:unused}" ossl x509 -req -in "$WORK/$name.csr" \
        -CA "$CA/ca.pem" -CAkey "$CA/ca.key" -set_serial "$(serial)" -sha256 -days 825 \
        -extfile "$CNF" -extensions "v3_$kind" -out "$WORK/$name.pem"
    cat "$WORK/$name.pem" "$CA/ca.pem" >"$WORK/$name.chain.pem"
    stage "$name.pem" "$name.key" "$name.chain.pem"
}

leaf example.com server "/CN=example.com/O=ringway" "DNS:example.com,DNS:www.example.com"
leaf api.example.com server "/CN=api.example.com/O=ringway" "DNS:api.example.com"
leaf localhost server "/CN=localhost/O=ringway" "DNS:localhost,IP:127.0.0.1"
leaf client client "/CN=ringway-client/O=ringway"

# ---- install (all moves first, so an interrupted run rarely leaves a mix), verify -------
for f in "${PENDING[@]}"; do mv -f "$WORK/$f" "$DIR/$f"; done
for f in "${PENDING[@]}"; do echo "wrote $DIR/$f"; done

status=0
for name in "${LEAVES[@]}"; do
    purpose=sslserver
    [[ "$name" == client ]] && purpose=sslclient
    if out=$(openssl verify -CAfile "$DIR/ca.pem" -purpose "$purpose" "$DIR/$name.pem" 2>&1); then
        echo "verify: $out ($purpose)"
    else
        echo "verify FAILED: $out" >&2
        status=1
    fi
done
exit "$status"
