#!/usr/bin/env bash
# Run ringway's whole test suite: unit tests (pure core) and integration tests (the real
# binary on loopback). This is the command the README names and CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# Integration tests start many short-lived proxies and sockets; keep parallelism modest
# on small machines so timing-bounded tests are not starved.
threads="${RINGWAY_TEST_THREADS:-2}"
exec cargo test --locked "$@" -- --test-threads "$threads"
