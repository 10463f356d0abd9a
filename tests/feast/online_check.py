#!/usr/bin/env python3
"""The real Feast 0.67 reads what materialize-redis wrote.

Run with the Feast virtualenv (.venv-feast, made by `make venv`):

  online_check.py nulls --offline DIR --end T
      adds rows with nulls and NaNs to the offline Parquet (see add_nulls);
  online_check.py check --repo DIR --offline DIR --start T --end T [--entities N]
      computes each entity's latest row in [start, end] straight from the Parquet (pyarrow),
      then asks Feast for the same entities through FeatureStore.get_online_features and
      through `feast serve`'s POST /get-online-features, and fails on any difference;
  online_check.py served --repo DIR --served FILE
      reads what validate-features --online decoded for its sampled entities (--sample-out,
      JSON lines) and asks Feast's get_online_features for the same entities: every value must
      be equal, nulls included.
"""
import argparse, json, math, os, socket, subprocess, sys, time, urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

VIEW = "user_transaction_features"
FEATURES = {
    "transaction_count_1h": "Int64",
    "transaction_count_24h": "Int64",
    "avg_transaction_amount_7d": "Float64",
    "avg_transaction_amount_30d": "Float64",
    "max_transaction_amount_7d": "Float64",
    "distinct_merchant_count_7d": "Int64",
}


def feast_bin():
    return str(Path(sys.executable).parent / "feast")


def add_nulls(a):
    """Adds a file of rows with nulls and NaNs: for every 7th entity, a row at --end that ties
    with its latest row on event time and wins on created_timestamp."""
    import pyarrow as pa, pyarrow.parquet as pq
    t = pq.read_table(Path(a.offline) / VIEW)
    end = datetime.fromisoformat(a.end.replace("Z", "+00:00"))
    users = sorted(set(t.column("user_id").to_pylist()))[::7]
    n = len(users)
    cols = {"user_id": users, "event_timestamp": [end] * n}
    for i, (f, kind) in enumerate(FEATURES.items()):
        if kind == "Int64":
            cols[f] = [None if (j + i) % 3 else j for j in range(n)]
        else:
            cols[f] = [float("nan") if (j + i) % 3 == 1 else None if (j + i) % 3 == 2 else j * 0.25 for j in range(n)]
    newest = max(t.column("created_timestamp").to_pylist())
    cols["created_timestamp"] = [newest.replace(microsecond=0) + timedelta(seconds=1)] * n
    schema = pa.schema([f.with_nullable(True) for f in t.schema])
    extra = pa.table({c: cols[c] for c in t.schema.names}).cast(schema)
    pq.write_table(extra, Path(a.offline) / VIEW / "nulls.parquet")


def expected(a):
    """Each entity's latest row in [start, end]: event time, then created time, decide."""
    import pyarrow.parquet as pq
    t = pq.read_table(Path(a.offline) / VIEW).to_pandas()
    start = datetime.fromisoformat(a.start.replace("Z", "+00:00"))
    end = datetime.fromisoformat(a.end.replace("Z", "+00:00"))
    t = t[(t.event_timestamp >= start) & (t.event_timestamp <= end)]
    t = t.sort_values(["user_id", "event_timestamp", "created_timestamp"]).groupby("user_id").tail(1)
    return t.set_index("user_id")


def same(x, y):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return y is None or (isinstance(y, float) and math.isnan(y))
    return y is not None and float(x) == float(y)


def check(a):
    from feast import FeatureStore
    want = expected(a)
    users = sorted(int(u) for u in want.index)
    # the entities with nulls first, then the rest, up to --entities
    nulls = [u for u in users if want.loc[u, list(FEATURES)].isna().any()]
    picked = set(nulls[: a.entities // 4])
    picked = sorted(picked | set([u for u in users if u not in picked][: a.entities - len(picked)]))
    assert len(picked) >= min(a.entities, len(users)), (len(picked), len(users))
    refs = [f"{VIEW}:{f}" for f in FEATURES]
    store = FeatureStore(repo_path=a.repo)
    got = store.get_online_features(features=refs, entity_rows=[{"user_id": u} for u in picked]).to_dict()
    bad = 0
    for f in FEATURES:
        for u, v in zip(got["user_id"], got[f]):
            w = want.loc[u, f]
            w = None if (w is None or (isinstance(w, float) and math.isnan(w))) else w
            if not same(w, v):
                bad += 1
                if bad < 10:
                    print(f"SDK: user {u} {f}: Feast read {v!r}, the latest row has {w!r}")
    # an entity absent from Redis reads as nulls
    absent = store.get_online_features(features=refs, entity_rows=[{"user_id": -424242}]).to_dict()
    assert all(absent[f] == [None] for f in FEATURES), absent
    print(f"SDK: {len(picked)} entities ({len([u for u in picked if u in nulls])} with nulls), "
          f"{len(FEATURES)} features, {bad} differences")

    # feast serve: the same entities over HTTP
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(Path(a.repo) / "serve.log", "w")
    server = subprocess.Popen([feast_bin(), "serve", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=a.repo, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except Exception:
                if server.poll() is not None or time.time() > deadline:
                    sys.exit(f"feast serve did not come up, see {log.name}")
                time.sleep(0.5)
        body = json.dumps({"features": refs, "entities": {"user_id": picked}}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", data=body,
                                     headers={"Content-Type": "application/json"})
        resp = json.load(urllib.request.urlopen(req, timeout=60))
    finally:
        server.terminate()
        server.wait(timeout=30)
    names = resp["metadata"]["feature_names"]
    served = 0
    for name, result in zip(names, resp["results"]):
        if name == "user_id":
            assert result["values"] == picked
            continue
        for u, v, ts in zip(picked, result["values"], result["event_timestamps"]):
            w = want.loc[u, name]
            w = None if (w is None or (isinstance(w, float) and math.isnan(w))) else w
            if not same(w, v):
                bad += 1
                if bad < 20:
                    print(f"serve: user {u} {name}: served {v!r}, the latest row has {w!r}")
            t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
            if t != want.loc[u, "event_timestamp"].to_pydatetime():
                bad += 1
                if bad < 20:
                    print(f"serve: user {u} {name}: event_timestamp {ts}, the latest row's is {want.loc[u, 'event_timestamp']}")
            served += 1
    print(f"serve: {served} values with their event timestamps, {bad} differences in all")
    sys.exit(1 if bad else 0)


def served(a):
    from feast import FeatureStore
    rows = [json.loads(l) for l in open(a.served) if l.strip()]
    rows = [r for r in rows if r["event_timestamp"] is not None]
    assert rows, "the audit decoded no entity"
    refs = [f"{VIEW}:{f}" for f in FEATURES]
    users = [r["entity"]["user_id"] for r in rows]
    got = FeatureStore(repo_path=a.repo).get_online_features(
        features=refs, entity_rows=[{"user_id": u} for u in users]).to_dict()
    bad = nulls = 0
    for i, r in enumerate(rows):
        assert got["user_id"][i] == users[i]
        for f in FEATURES:
            ours, feast = r["features"][f], got[f][i]
            nulls += ours is None
            # exact: Feast's Python float of the stored value against the audit's decoding
            if (ours is None) != (feast is None) or (ours is not None and float(ours) != float(feast)):
                bad += 1
                if bad < 10:
                    print(f"user {users[i]} {f}: the audit decoded {ours!r}, Feast served {feast!r}")
    print(f"served: {len(rows)} entities, {len(FEATURES)} features, {nulls} nulls, {bad} differences")
    sys.exit(1 if bad else 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["nulls", "check", "served"])
    ap.add_argument("--repo")
    ap.add_argument("--offline")
    ap.add_argument("--served")
    ap.add_argument("--start")
    ap.add_argument("--end")
    ap.add_argument("--entities", type=int, default=1200)
    a = ap.parse_args()
    os.environ.setdefault("FEAST_USAGE", "False")
    {"nulls": add_nulls, "check": check, "served": served}[a.phase](a)


if __name__ == "__main__":
    main()
