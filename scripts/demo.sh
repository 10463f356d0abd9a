#!/usr/bin/env bash
# The local pipeline on generated data: every external part has a local default.
# Usage: scripts/demo.sh BIN_DIR OUT_DIR ROWS   (make demo passes them)
set -euo pipefail
bin=${1:-target/bench-fast}; out=${2:-out/demo}; rows=${3:-1000000}
rm -rf "$out"; mkdir -p "$out"
export FEATUREKIT_LOG_FORMAT=${FEATUREKIT_LOG_FORMAT:-text}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("  " + ", ".join(f"{k}={s[k]}" for k in sys.argv[2:] if k in s))' "$@"; }

step "generate-transactions: $rows synthetic transactions -> $out/raw/"
"$bin/generate-transactions" --output "$out/raw/transactions.parquet" --rows "$rows" \
  --users $((rows / 20 + 1)) --days 45 --start 2025-10-01 --summary "$out/generate.json"
show "$out/generate.json" rows_out bytes seconds

step "done: artifacts in $out/"
ls -l "$out" "$out"/raw
