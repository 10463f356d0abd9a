#!/usr/bin/env python3
"""compute-windows "seed": the per-row pandas loop that featurekit replaces.

For every event, filter that user's rows by each window [t - w, t) and aggregate them: quadratic
per user. Deliberately the usual recipe, not tuned; run it on 10k-100k rows only.

Usage: windows_pandas_seed.py --input IN --output OUT.parquet --start T --end T
"""

import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import peer_common as pc


def main() -> None:
    a = pc.parse_args(__doc__.splitlines()[0])
    t0 = time.perf_counter()
    files = pc.input_files(a.input)

    df = pd.concat(
        [pd.read_parquet(f, columns=["user_id", "event_timestamp", "amount", "merchant_id"]) for f in files],
        ignore_index=True,
    )
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True).astype("datetime64[us, UTC]")
    lookback = pd.Timestamp(a.start - pd.Timedelta(days=30))
    start, end = pd.Timestamp(a.start), pd.Timestamp(a.end)
    df = df[(df["event_timestamp"] >= lookback) & (df["event_timestamp"] < end)]

    one_hour = pd.Timedelta(hours=1)
    one_day = pd.Timedelta(hours=24)
    seven_days = pd.Timedelta(days=7)
    thirty_days = pd.Timedelta(days=30)

    rows = []
    for user_id, events in df.groupby("user_id", sort=True):
        events = events.sort_values("event_timestamp", kind="stable")
        for _, event in events.iterrows():
            t = event["event_timestamp"]
            if t < start:
                continue  # lookback only
            before = events[events["event_timestamp"] < t]
            last_1h = before[before["event_timestamp"] >= t - one_hour]
            last_24h = before[before["event_timestamp"] >= t - one_day]
            last_7d = before[before["event_timestamp"] >= t - seven_days]
            last_30d = before[before["event_timestamp"] >= t - thirty_days]
            avg_7d = last_7d["amount"].mean()  # skips nulls; NaN when nothing is left
            avg_30d = last_30d["amount"].mean()
            max_7d = last_7d["amount"].max()
            rows.append(
                {
                    "user_id": user_id,
                    "event_timestamp": t,
                    "transaction_count_1h": len(last_1h),
                    "transaction_count_24h": len(last_24h),
                    "avg_transaction_amount_7d": 0.0 if pd.isna(avg_7d) else float(avg_7d),
                    "avg_transaction_amount_30d": 0.0 if pd.isna(avg_30d) else float(avg_30d),
                    "max_transaction_amount_7d": 0.0 if pd.isna(max_7d) else float(max_7d),
                    "distinct_merchant_count_7d": last_7d["merchant_id"].nunique(),
                }
            )

    schema = pa.schema(
        [
            ("user_id", pa.int64()),
            ("event_timestamp", pa.timestamp("us", tz="UTC")),
            ("transaction_count_1h", pa.int64()),
            ("transaction_count_24h", pa.int64()),
            ("avg_transaction_amount_7d", pa.float64()),
            ("avg_transaction_amount_30d", pa.float64()),
            ("max_transaction_amount_7d", pa.float64()),
            ("distinct_merchant_count_7d", pa.int64()),
        ]
    )
    out = pd.DataFrame(rows, columns=schema.names)
    table = pa.Table.from_pandas(out, schema=schema, preserve_index=False)
    pq.write_table(
        table, a.output, compression=pc.COMPRESSION, row_group_size=pc.ROW_GROUP_ROWS
    )
    pc.report(table.num_rows, t0)


if __name__ == "__main__":
    main()
