#!/usr/bin/env python3
"""validate-features' checks written with Great Expectations 1.x (pandas), the second peer.

The same contract on the same rows as validate_pandera.py: the expectations cover dtypes,
non-null keys and times, non-null (so non-NaN) floats, non-negative counts, count_1h <=
count_24h, mean_7d <= max_7d, every row in [start, end], the expected row count, freshness;
the profile and the drift against validate-features' baseline are computed with pandas.
Prints one JSON line: the failed checks.

Usage: validate_gx.py --input DIR --start T --end T --baseline PROFILE.json [--expected-rows N]
"""
import argparse, json, math, sys, warnings
from datetime import datetime, timedelta

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd

VIEW = "user_transaction_features"
COUNTS = ["transaction_count_1h", "transaction_count_24h", "distinct_merchant_count_7d"]
FLOATS = ["avg_transaction_amount_7d", "avg_transaction_amount_30d", "max_transaction_amount_7d"]


def main():
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--start", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--expected-rows", type=int)
    ap.add_argument("--max-lag-hours", type=float, default=6)
    a = ap.parse_args()
    start = pd.Timestamp(a.start, tz="UTC")
    end = pd.Timestamp(a.end, tz="UTC")
    df = pd.read_parquet(f"{a.input}/{VIEW}")

    context = gx.get_context(mode="ephemeral")
    batch = (context.data_sources.add_pandas("features")
             .add_dataframe_asset(VIEW)
             .add_batch_definition_whole_dataframe("all")
             .get_batch(batch_parameters={"dataframe": df}))
    suite = gx.ExpectationSuite(name="contract")
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="user_id"))
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="event_timestamp"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="event_timestamp", min_value=start, max_value=end))
    suite.add_expectation(gxe.ExpectColumnMaxToBeBetween(column="event_timestamp",
                                                         min_value=end - timedelta(hours=a.max_lag_hours)))
    for c in COUNTS:
        suite.add_expectation(gxe.ExpectColumnValuesToBeOfType(column=c, type_="int64"))
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0))
    for c in FLOATS:
        suite.add_expectation(gxe.ExpectColumnValuesToBeOfType(column=c, type_="float64"))
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=c))
    suite.add_expectation(gxe.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A="transaction_count_24h", column_B="transaction_count_1h", or_equal=True))
    suite.add_expectation(gxe.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A="max_transaction_amount_7d", column_B="avg_transaction_amount_7d", or_equal=True))
    if a.expected_rows is not None:
        suite.add_expectation(gxe.ExpectTableRowCountToEqual(value=a.expected_rows))
    result = batch.validate(suite)
    failed = [r.expectation_config.type for r in result.results if not r.success]

    # the profile and drift, as validate-features computes them
    base = json.load(open(a.baseline))["views"][VIEW]["features"]
    for c in COUNTS + FLOATS:
        col = df[c].astype("float64")
        ok = col[np.isfinite(col)]
        _ = (len(ok), ok.min(), ok.max(), ok.mean(), np.quantile(ok, np.linspace(0, 1, 101), method="nearest"))
        b = base[c]
        edges = np.array(b["psi_bins"]["edges"])
        bins = np.searchsorted(edges, ok.to_numpy(), side="left")
        counts = np.bincount(bins, minlength=len(edges) + 1)
        total = max(counts.sum(), 1)
        psi = sum((max(cur / total, 1e-4) - max(f, 1e-4)) * math.log(max(cur / total, 1e-4) / max(f, 1e-4))
                  for cur, f in zip(counts, b["psi_bins"]["fractions"]))
        if psi > 0.25:
            failed.append(f"drift.psi.{c}")
        if abs(col.isna().mean() - b["null_rate"]) > 0.1:
            failed.append(f"drift.null_rate.{c}")
    print(json.dumps({"rows": len(df), "failed": failed}))
    sys.exit(65 if failed else 0)


if __name__ == "__main__":
    main()
