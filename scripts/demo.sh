#!/usr/bin/env bash
# The local pipeline on generated data: every external part has a local default.
# Usage: scripts/demo.sh BIN_DIR OUT_DIR ROWS PYTHON   (make demo passes them)
set -euo pipefail
bin=${1:-target/debug}; out=${2:-out/demo}; rows=${3:-1000000}; py=${4:-.venv/bin/python}
rm -rf "$out"; mkdir -p "$out"
export FEATUREKIT_LOG_FORMAT=${FEATUREKIT_LOG_FORMAT:-text} FEATUREKIT_LOG_LEVEL=${FEATUREKIT_LOG_LEVEL:-warn}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { "$py" -c 'import json,sys; s=json.load(open(sys.argv[1])); print("  " + ", ".join(f"{k}={s[k]}" for k in sys.argv[2:] if k in s))' "$@"; }

# 45 days of transactions: 30 days of lookback, then the day the pipeline runs for
start=2025-10-01 day=2025-11-14 next=2025-11-15

step "generate-transactions: $rows synthetic transactions, $start to $next -> $out/raw/"
"$bin/generate-transactions" --output "$out/raw/transactions.parquet" --rows "$rows" \
  --users $((rows / 20 + 1)) --days 45 --start "$start" --summary "$out/generate.json"
show "$out/generate.json" rows_out bytes seconds

step "compute-windows: the features of $day's events, and of every active user as of $next"
"$bin/compute-windows" --spec features.yaml --input "$out/raw/" --output "$out/offline" \
  --start "$day" --end "$next" --summary "$out/compute-windows.json"
show "$out/compute-windows.json" rows_in rows_after_filters rows_out files_written lookback_complete seconds
"$py" - "$out/offline/user_transaction_features" <<'PY'
import sys, pyarrow.dataset as ds
t = ds.dataset(sys.argv[1]).to_table()
print(f"  {t.num_rows} rows in {sys.argv[1]}; a heavy user's last rows:")
top = t.group_by("user_id").aggregate([("user_id", "count")]).sort_by([("user_id_count", "descending")]).column("user_id")[0].as_py()
rows = t.filter(ds.field("user_id") == top).sort_by("event_timestamp")
rows = rows.slice(max(rows.num_rows - 4, 0))
cols = [c for c in rows.column_names if c != "created_timestamp"]
for r in rows.select(cols).to_pylist():
    r["event_timestamp"] = r["event_timestamp"].strftime("%Y-%m-%d %H:%M:%S")
    print("  " + "  ".join(f"{k}={round(v, 2) if isinstance(v, float) else v}" for k, v in r.items()))
PY

step "done: artifacts in $out/"
find "$out" -type f | sort | sed 's/^/  /'
