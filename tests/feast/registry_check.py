#!/usr/bin/env python3
"""The real Feast 0.67 uses the registry publish-registry wrote. Run with .venv-feast.

  registry_check.py repo --repo DIR --registry PATH --redis-port P
      writes feature_store.yaml pointing at the registry (no features.py: Feast reads ours)
  registry_check.py lists --repo DIR
      `feast entities list`, `feast feature-views list`, `feast data-sources list` show our objects
  registry_check.py historical --repo DIR --raw FILE --start T --end T [--rows N]
      get_historical_features for N entity rows at chosen times equals the window features
      computed here from the raw transactions, point in time
  registry_check.py online --repo DIR --offline DIR
      get_online_features serves the view (state and intervals as publish-registry left them)
  registry_check.py incremental --repo DIR --expect-start T --end T
      `feast materialize-incremental END` starts from the END publish-registry recorded
  registry_check.py apply --repo DIR --offline DIR
      `feast apply` of a features.py equivalent to features.yaml, on our registry
"""
import argparse, json, math, subprocess, sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

VIEW = "user_transaction_features"
WINDOWS = {  # name: (aggregation, column, window)
    "transaction_count_1h": ("count", None, timedelta(hours=1)),
    "transaction_count_24h": ("count", None, timedelta(hours=24)),
    "avg_transaction_amount_7d": ("mean", "amount", timedelta(days=7)),
    "avg_transaction_amount_30d": ("mean", "amount", timedelta(days=30)),
    "max_transaction_amount_7d": ("max", "amount", timedelta(days=7)),
    "distinct_merchant_count_7d": ("count_distinct", "merchant_id", timedelta(days=7)),
}


def feast(repo, *args):
    r = subprocess.run([str(Path(sys.executable).parent / "feast"), *args], cwd=repo, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"feast {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


def t(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def repo(a):
    Path(a.repo).mkdir(parents=True, exist_ok=True)
    (Path(a.repo) / "feature_store.yaml").write_text(f"""project: fraud_detection
registry: {Path(a.registry).resolve()}
provider: local
online_store:
  type: redis
  connection_string: "127.0.0.1:{a.redis_port}"
offline_store:
  type: file
entity_key_serialization_version: 3
""")


def lists(a):
    for cmd, want in [("entities", "user"), ("feature-views", VIEW), ("data-sources", f"{VIEW}_source")]:
        out = feast(a.repo, cmd, "list")
        if want not in out:
            sys.exit(f"feast {cmd} list does not show {want}:\n{out}")
        print(f"feast {cmd} list: {out.strip().splitlines()[-1]}")


def window_features(events, e):
    """The six features of an event at e from the user's raw events (sorted by time): [e - w, e)."""
    out = {}
    for name, (agg, col, w) in WINDOWS.items():
        inside = [r for r in events if e - w <= r["event_timestamp"] < e]
        if agg == "count":
            out[name] = len(inside)
        elif agg == "count_distinct":
            out[name] = len({r[col] for r in inside if r[col] is not None})
        else:
            vals = [r[col] for r in inside if r[col] is not None and not math.isnan(r[col])]
            out[name] = 0.0 if not vals else (max(vals) if agg == "max" else math.fsum(vals) / len(vals))
    return out


def historical(a):
    import pandas as pd, pyarrow.parquet as pq
    from feast import FeatureStore
    raw = pq.read_table(a.raw).to_pylist()
    start, end = t(a.start), t(a.end)
    by_user = {}
    for r in raw:
        by_user.setdefault(r["user_id"], []).append(r)
    # entity rows: users with events in [start, end), each at a time between two of its events
    rows, expected = [], []
    for u in sorted(by_user):
        evs = sorted(by_user[u], key=lambda r: r["event_timestamp"])
        times = [r["event_timestamp"] for r in evs if start <= r["event_timestamp"] < end]
        if len(times) < 2:
            continue
        e = times[len(times) // 2]
        at = e + timedelta(seconds=1)
        if any(e < x <= at for x in times):
            continue  # another event in between: pick another user
        rows.append({"user_id": u, "event_timestamp": at})
        expected.append(window_features(evs, e))
        if len(rows) >= a.rows:
            break
    assert len(rows) >= min(a.rows, 100), len(rows)
    store = FeatureStore(repo_path=a.repo)
    df = store.get_historical_features(
        entity_df=pd.DataFrame(rows), features=[f"{VIEW}:{f}" for f in WINDOWS]).to_df()
    df = df.set_index(["user_id", "event_timestamp"])
    bad = 0
    for r, want in zip(rows, expected):
        got = df.loc[(r["user_id"], pd.Timestamp(r["event_timestamp"]))]
        for f, w in want.items():
            g = got[f]
            if g is None or (isinstance(g, float) and math.isnan(g)) or abs(float(g) - w) > 1e-9 * max(1, abs(w)):
                bad += 1
                if bad < 10:
                    print(f"user {r['user_id']} at {r['event_timestamp']}: {f} = {g!r}, from the raw data {w!r}")
    print(f"historical: {len(rows)} entity rows, {len(WINDOWS)} features, {bad} differences")
    sys.exit(1 if bad else 0)


def online(a):
    import pyarrow.parquet as pq
    from feast import FeatureStore
    users = sorted(set(pq.read_table(Path(a.offline) / VIEW, columns=["user_id"]).column("user_id").to_pylist()))[:200]
    store = FeatureStore(repo_path=a.repo)
    got = store.get_online_features(features=[f"{VIEW}:{f}" for f in WINDOWS],
                                    entity_rows=[{"user_id": u} for u in users]).to_dict()
    present = sum(v is not None for v in got["transaction_count_24h"])
    print(f"online: {len(users)} entities served, {present} with values")
    sys.exit(0 if present == len(users) else 1)


def incremental(a):
    out = feast(a.repo, "materialize-incremental", a.end)
    want = t(a.expect_start).strftime("%Y-%m-%d %H:%M:%S")
    line = next((l for l in out.splitlines() if VIEW in l and " from " in l), "")
    print(f"incremental: {line.strip()}")
    sys.exit(0 if want in line.split(" from ")[-1].split(" to ")[0] else 1)


def apply(a):
    source = Path(a.offline).resolve() / VIEW
    (Path(a.repo) / "features.py").write_text(f'''from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64, description="A card holder")
source = FileSource(
    name="{VIEW}_source",
    path="{source}",
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Offline rows of feature view {VIEW}, written by compute-windows",
)
{VIEW} = FeatureView(
    name="{VIEW}",
    entities=[user],
    ttl=timedelta(days=30),
    schema=[
        Field(name="transaction_count_1h", dtype=Int64),
        Field(name="transaction_count_24h", dtype=Int64),
        Field(name="avg_transaction_amount_7d", dtype=Float64),
        Field(name="avg_transaction_amount_30d", dtype=Float64),
        Field(name="max_transaction_amount_7d", dtype=Float64),
        Field(name="distinct_merchant_count_7d", dtype=Int64),
    ],
    online=True,
    source=source,
    description="Point-in-time window aggregates of a user's card transactions",
    owner="fraud-ml",
    tags={{"team": "fraud"}},
)
''')
    print(feast(a.repo, "apply").strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["repo", "lists", "historical", "online", "incremental", "apply"])
    ap.add_argument("--repo", required=True)
    for flag in ("--registry", "--raw", "--offline", "--start", "--end", "--expect-start"):
        ap.add_argument(flag)
    ap.add_argument("--redis-port", type=int)
    ap.add_argument("--rows", type=int, default=150)
    a = ap.parse_args()
    globals()[a.phase](a)


if __name__ == "__main__":
    main()
