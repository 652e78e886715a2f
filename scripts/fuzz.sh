#!/usr/bin/env bash
# Run every cargo-fuzz target for SECONDS each (default 60); exits non-zero on a crash.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Needs `cargo install cargo-fuzz`. The stable toolchain is used with RUSTC_BOOTSTRAP=1 for
# the sanitizer-coverage flags cargo-fuzz passes; no sanitizer runtime is linked (`-s none`),
# the targets' own assertions are the oracle. New inputs go to a scratch corpus, so the
# committed seed corpus under fuzz/corpus/ only changes when someone adds seeds on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build -s none
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target" "fuzz/corpus/$target"
  dict=()
  if [ -f "fuzz/dict/$target.dict" ]; then dict=("-dict=fuzz/dict/$target.dict"); fi
  echo "== fuzz $target for ${seconds}s"
  status=0
  cargo fuzz run -s none "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
    >"$scratch/$target.log" 2>&1 || status=$?
  grep -E '^(Done |stat::number_of_executed_units)' "$scratch/$target.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$scratch/$target.log" >&2
    echo "fuzz target $target failed (exit $status); reproducer in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no crash"
