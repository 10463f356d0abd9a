#!/usr/bin/env python3
"""validate-features' checks written with pandera (polars backend), the peer of the benchmark.

The same contract on the same rows: schema and dtypes, non-null keys and times, finite floats,
non-negative counts, count_1h <= count_24h, mean_7d <= max_7d, every row in [start, end], the
expected row count, freshness; then the profile (count, nulls, min, max, mean, percentiles) and
drift against validate-features' baseline profile (PSI over its bins, null-rate change), with
polars expressions. Prints one JSON line: the failed checks and the PSI per feature.

Usage: validate_pandera.py --input DIR --start T --end T --baseline PROFILE.json [--expected-rows N]
"""
import argparse, json, math, sys, time
from datetime import datetime, timedelta

import pandera.polars as pa
import polars as pl

VIEW = "user_transaction_features"
COUNTS = ["transaction_count_1h", "transaction_count_24h", "distinct_merchant_count_7d"]
FLOATS = ["avg_transaction_amount_7d", "avg_transaction_amount_30d", "max_transaction_amount_7d"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--start", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--expected-rows", type=int)
    ap.add_argument("--max-lag-hours", type=float, default=6)
    a = ap.parse_args()
    start = datetime.fromisoformat(a.start).replace(tzinfo=None)
    end = datetime.fromisoformat(a.end).replace(tzinfo=None)
    df = pl.read_parquet(f"{a.input}/{VIEW}/*.parquet")
    df = df.with_columns(pl.col("event_timestamp").dt.replace_time_zone(None))

    schema = pa.DataFrameSchema(
        {
            "user_id": pa.Column(pl.Int64, nullable=False),
            "event_timestamp": pa.Column(pl.Datetime("us"), nullable=False,
                                         checks=pa.Check.in_range(start, end)),
            "created_timestamp": pa.Column(nullable=True),
            **{c: pa.Column(pl.Int64, checks=pa.Check.ge(0), nullable=True) for c in COUNTS},
            **{c: pa.Column(pl.Float64, nullable=True,
                            checks=pa.Check(lambda d: d.lazyframe.select(pl.col(d.key).is_finite() | pl.col(d.key).is_null()),
                                            name="finite")) for c in FLOATS},
        },
        checks=[
            pa.Check(lambda d: d.lazyframe.select(pl.col("transaction_count_1h") <= pl.col("transaction_count_24h")),
                     name="monotonic"),
            pa.Check(lambda d: d.lazyframe.select(pl.col("avg_transaction_amount_7d") <= pl.col("max_transaction_amount_7d")),
                     name="mean_le_max"),
        ],
    )
    failed = []
    t0 = time.perf_counter()
    try:
        schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as e:
        failed = sorted({str(c) for c in e.failure_cases["check"].to_list()})
    print(f"pandera validate: {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    if a.expected_rows is not None and df.height != a.expected_rows:
        failed.append("rows.expected")
    newest = df["event_timestamp"].max()
    if newest is None or newest < end - timedelta(hours=a.max_lag_hours):
        failed.append("freshness")

    # the profile and drift, as validate-features computes them
    base = json.load(open(a.baseline))["views"][VIEW]["features"]
    psi, null_drift = {}, {}
    for c in COUNTS + FLOATS:
        col = pl.col(c).cast(pl.Float64)
        ok = df.select(col.filter(col.is_finite()).alias(c))
        # percentiles from one sort of the column (101 quantile expressions would sort 101 times)
        values = ok[c].sort()
        n = len(values)
        stats = ok.select(pl.len().alias("n"), col.min().alias("min"), col.max().alias("max"), col.mean().alias("mean"))
        percentiles = values.gather([(k * (n - 1) + 50) // 100 for k in range(101)]).to_list() if n else []
        nulls = df[c].null_count()
        b = base[c]
        edges = b["psi_bins"]["edges"]
        bins = ok.select(pl.sum_horizontal([(col > e).cast(pl.UInt32) for e in edges]).alias("bin")) if edges else \
            ok.select(pl.lit(0).alias("bin"))
        counts = bins.group_by("bin").len().sort("bin")
        got = dict(zip(counts["bin"].to_list(), counts["len"].to_list()))
        total = max(sum(got.values()), 1)
        value = 0.0
        for i, frac in enumerate(b["psi_bins"]["fractions"]):
            cur = max(got.get(i, 0) / total, 1e-4)
            frac = max(frac, 1e-4)
            value += (cur - frac) * math.log(cur / frac)
        psi[c] = round(value, 6)
        null_drift[c] = abs(nulls / max(df.height, 1) - b["null_rate"])
        del stats, percentiles
    failed += [f"drift.psi.{c}" for c, v in psi.items() if v > 0.25]
    failed += [f"drift.null_rate.{c}" for c, v in null_drift.items() if v > 0.1]
    print(json.dumps({"rows": df.height, "failed": failed, "psi": psi}))
    sys.exit(65 if failed else 0)


if __name__ == "__main__":
    main()
