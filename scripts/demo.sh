#!/usr/bin/env bash
# The local pipeline on generated data: every external part has a local default.
# Usage: scripts/demo.sh BIN_DIR OUT_DIR ROWS PYTHON [FEAST_PYTHON [BIGQUERY_PYTHON]]   (make demo passes them)
# The raw events come from a local BigQuery (bqemulator, started on a free port), loaded by
# Google's official client.
# REDIS=redis://host:port uses that Redis; by default a local redis-server is started on a free port.
set -euo pipefail
bin=${1:-target/debug}; out=${2:-out/demo}; rows=${3:-1000000}; py=${4:-.venv/bin/python}
feast_py=${5:-.venv-feast/bin/python} bq_py=${6:-.venv-bq/bin/python}
rm -rf "$out"; mkdir -p "$out"
export FEATUREKIT_LOG_FORMAT=${FEATUREKIT_LOG_FORMAT:-text} FEATUREKIT_LOG_LEVEL=${FEATUREKIT_LOG_LEVEL:-warn}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { "$py" -c 'import json,sys; s=json.load(open(sys.argv[1])); print("  " + ", ".join(f"{k}={s[k]}" for k in sys.argv[2:] if k in s))' "$@"; }

# 45 days of transactions: 30 days of lookback, then the day the pipeline runs for
start=2025-10-01 day=2025-11-14 next=2025-11-15

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

step "generate-transactions: $rows synthetic transactions, $start to $next, loaded into a local BigQuery"
"$bin/generate-transactions" --output "$out/source/transactions.parquet" --rows "$rows" \
  --users $((rows / 20 + 1)) --days 45 --start "$start" --summary "$out/generate.json"
show "$out/generate.json" rows_out bytes seconds
bq_port=$(free_port)
"$bq_py" tests/bigquery/serve.py --home "$out/bigquery" --rest-port "$bq_port" --grpc-port "$(free_port)" \
  >"$out/bigquery.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$bq_port/bigquery/v2/projects/demo/datasets" >/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$out/bigquery.log"; echo "bqemulator did not start" >&2; exit 1; }
  sleep 0.2
done
"$bq_py" tests/bigquery/load.py --endpoint "http://127.0.0.1:$bq_port" --project demo \
  --table raw.transactions "$out/source/transactions.parquet" | sed 's/^/  /'
cat >"$out/transactions.sql" <<'SQL'
SELECT user_id, event_timestamp, amount, merchant_id
FROM `demo.raw.transactions`
WHERE event_timestamp >= @start AND event_timestamp < @end
SQL

step "extract-bigquery: the events of the 30-day lookback of 2025-11-13 and $day, one file per day -> $out/raw/"
extract() {
  "$bin/extract-bigquery" --spec features.yaml --project demo --anonymous \
    --endpoint "http://127.0.0.1:$bq_port/bigquery/v2" --query-file "$out/transactions.sql" \
    --output "$out/raw" --label step=extract-bigquery "$@"
}
extract --start 2025-11-13 --end "$next" --summary "$out/extract-bigquery.json"
show "$out/extract-bigquery.json" rows_out days_needed queries seconds
echo "  the next day's run: only the new day is queried, the 30 before it are kept"
extract --start "$next" --end 2025-11-16 --summary "$out/extract-bigquery-next.json" --log-level warn
show "$out/extract-bigquery-next.json" days_fetched rows_out seconds

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

step "validate-features: the contract, against the profile of the day before"
# the day before, as yesterday's run left it: its rows, its as-of rows at $day, its profile (the baseline)
"$bin/compute-windows" --spec features.yaml --input "$out/raw/" --output "$out/offline" \
  --start 2025-11-13 --end "$day" --created-at 2025-11-14T01:00:00Z --log-level error
"$bin/validate-features" --spec features.yaml --input "$out/offline" --start 2025-11-13 --end "$day" \
  --no-baseline --profile-out "$out/validate/baseline.json" --log-level error
rows_out=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["rows_out"])' "$out/compute-windows.json")
"$bin/validate-features" --spec features.yaml --input "$out/offline" --start "$day" --end "$next" \
  --baseline "$out/validate/baseline.json" --expected-rows "$rows_out" \
  --report "$out/validate/report" --profile-out "$out/validate/profile.json" --summary "$out/validate-features.json"
show "$out/validate-features.json" status rows_in seconds
grep -E '^## |^\| `(rows|freshness|drift.psi.avg)' "$out/validate/report/report.md" | sed 's/^/  /'
echo "  the full report: $out/validate/report/report.html (and report.md, report.json)"

if [ -z "${REDIS:-}" ]; then
  port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$out/redis"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --dir "$out/redis" --daemonize yes \
    --pidfile "$PWD/$out/redis/redis.pid" --logfile "$PWD/$out/redis/redis.log"
  REDIS=redis://127.0.0.1:$port
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
  pids+=("$(cat "$out/redis/redis.pid")")
fi

step "materialize-redis: each user's latest row up to $next into Feast's online store at $REDIS"
"$bin/materialize-redis" --spec features.yaml --input "$out/offline" --redis "$REDIS" \
  --start "$day" --end "$next" --summary "$out/materialize-redis.json"
show "$out/materialize-redis.json" rows_in entities_written entities_skipped_not_newer seconds
echo "  again, unchanged: the rerun is recognised"
"$bin/materialize-redis" --spec features.yaml --input "$out/offline" --redis "$REDIS" \
  --start "$day" --end "$next" --summary "$out/materialize-redis-rerun.json"
show "$out/materialize-redis-rerun.json" entities_written user_transaction_features_unchanged seconds

step "validate-features --online: does Redis serve each sampled user's latest row of the day, value for value?"
"$bin/validate-features" --spec features.yaml --input "$out/offline" --online "$REDIS" \
  --start "$day" --end "$next" --sample 10000 --report "$out/audit/report" --summary "$out/audit.json" \
  --sample-out "$out/audit/served.jsonl"
show "$out/audit.json" status online_checked online_mismatch_rate online_staleness_seconds seconds
grep -E '^\| (checked|matched|missing|stale|wrong|mismatch)' "$out/audit/report/report.md" | sed 's/^/  /'
echo "  now one user's transaction_count_24h set to 999 by hand (redis-cli HSET), and the audit again:"
# the sample's first user, its Redis key (entity key v3 + project) and the
# feature's field (murmur3 of user_transaction_features:transaction_count_24h), escaped for redis-cli
"$py" - "$out/audit/served.jsonl" <<'PY' | redis-cli -u "$REDIS" >/dev/null
import json, struct, sys
user = json.loads(open(sys.argv[1]).readline())["entity"]["user_id"]
key = struct.pack("<III", 1, 2, 7) + b"user_id" + struct.pack("<IIq", 4, 8, user) + b"fraud_detection"
esc = lambda b: '"' + "".join(f"\\x{c:02x}" for c in b) + '"'
print("HSET", esc(key), esc(bytes.fromhex("559c8b59")), esc(bytes.fromhex("20e707")))
PY
if "$bin/validate-features" --spec features.yaml --input "$out/offline" --online "$REDIS" \
  --start "$day" --end "$next" --sample 10000 --report "$out/audit/corrupted" --summary "$out/audit-corrupted.json" 2>"$out/audit-corrupted.log"; then
  echo "  the audit missed it"; exit 1
else
  code=$?
  echo "  exit $code (65: the online store breaks the contract):"
  grep -o 'the online store .*' "$out/audit-corrupted.log" | head -1 | sed 's/^/    /'
  grep -E '^\| user_id=' "$out/audit/corrupted/report.md" | sed 's/^/    /'
fi

step "read back with Feast's own key and value encoding (feast.infra.key_encoding_utils)"
users=$("$py" -c 'import sys, pyarrow.dataset as ds
t = ds.dataset(sys.argv[1]).to_table(columns=["user_id"])
top = t.group_by("user_id").aggregate([("user_id", "count")]).sort_by([("user_id_count", "descending")])
print(" ".join(str(u) for u in top.column("user_id").to_pylist()[:3]))' "$out/offline/user_transaction_features")
"$feast_py" scripts/online_features.py "$REDIS" $users 0

step "publish-registry: the Feast registry of features.yaml, with the materialized interval"
mkdir -p "$out/feast"
offline_abs=$(cd "$out/offline" && pwd)
"$bin/publish-registry" --spec features.yaml --registry "$out/feast/registry.db" \
  --offline-path "$offline_abs" --materialized "$day" "$next" --summary "$out/publish-registry.json" | sed 's/^/  /'
cat > "$out/feast/feature_store.yaml" <<YAML
project: fraud_detection
registry: $(cd "$out/feast" && pwd)/registry.db
provider: local
online_store:
  type: redis
  connection_string: "${REDIS#redis://}"
offline_store:
  type: file
entity_key_serialization_version: 3
YAML
echo "  Feast's own CLI on it (feast feature-views list, in $out/feast):"
feast_cli="$(cd "$(dirname "$feast_py")" && pwd)/feast"
(cd "$out/feast" && "$feast_cli" feature-views list 2>/dev/null | sed 's/^/    /')

step "done: artifacts in $out/"
find "$out" -type f | sort | sed 's/^/  /'
