#!/usr/bin/env python3
"""compute-windows peer: Python Polars, tuned (the strong peer).

How it stays exact and fast:
- One global sort key instead of `.over("user_id")`: K = user_index * stride + (t - t_min) in
  integer microseconds, with stride > (t_max - t_min) + 30d. Sorting by K sorts by (user, time),
  and a window [K - w, K) for w <= 30d never reaches another user's keys, so every window is
  one rolling window (or two binary searches) over a single sorted Int64 column. If the keys
  would overflow Int64 (very many users over a long span), users are processed in batches.
- Counts: the window [K - w, K) is the index range [searchsorted_left(K - w), searchsorted_left(K)),
  so a count is a difference of two binary searches. side="left" on K itself excludes the event
  and all its ties at exactly t; side="left" on K - w includes an event at exactly t - w.
- Mean and max: rolling_mean_by / rolling_max_by on K with an integer window ("<w>i") and
  closed="left", i.e. [K - w, K); nulls in amount are skipped by the rolling kernels, an empty
  window (or only nulls) gives null, filled with 0.0.
- Distinct merchants (previous-occurrence trick, made exact for windows that end at t):
  order each (user, merchant)'s events and call prev(j) the key of the one before event j.
  In a window W = [L, t), a merchant with k events in W contributes k events of which k - 1
  have their prev in W, so distinct(W) = count(W) - dup(W), dup(W) = #{j in W : prev(j) >= L}.
  Only pairs with K_j - prev(j) <= w can have both ends in a window of length w (call them
  linked); a linked pair with K_j < t and prev(j) >= L lies in W, and one with K_j < t and
  prev(j) < L cannot end at or after t (it would be longer than w), so
      dup(t) = #{linked j : K_j < t} - #{linked j : prev(j) < t - w},
  two more binary searches into two sorted arrays. Linked pairs never cross users (keys of two
  users are more than 30d apart), so the counts are global and the other users cancel out.
Every feature is a function of (user, t), so the output, written in K order, is deterministic.

Usage: windows_polars.py --input IN --output OUT.parquet --start T --end T
"""

import time
from datetime import datetime, timedelta, timezone

import polars as pl

import peer_common as pc

INT64_MAX = 2**63 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def us_datetime(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def windows(df: pl.DataFrame, start_us: int) -> pl.DataFrame:
    """Features of one batch of whole users. df has user_id, event_timestamp, ts (Int64 us),
    amount, merchant_id and uidx (0-based, monotone in user_id)."""
    t_min = df["ts"].min()
    t_max = df["ts"].max()
    stride = (t_max - t_min) + pc.W_30D + 1
    n_users = df["uidx"].max() + 1
    assert n_users * stride <= INT64_MAX

    df = df.with_columns(K=pl.col("uidx").cast(pl.Int64) * stride + (pl.col("ts") - t_min)).sort("K")
    df = df.with_columns(pl.col("K").set_sorted())

    # Linked previous occurrences of the same (user, merchant): a stable sort by merchant keeps
    # K order inside each merchant, so consecutive rows of one merchant with K gap <= 7d are the
    # same user's consecutive events of that merchant (two users' keys are > 30d apart).
    w7 = pc.W_7D
    m = (
        df.lazy()
        .select("merchant_id", "K")
        .sort("merchant_id", maintain_order=True)
        .with_columns(P=pl.col("K").shift(1), pm=pl.col("merchant_id").shift(1))
        .filter((pl.col("pm") == pl.col("merchant_id")) & (pl.col("K") - pl.col("P") <= w7))
        .select(pl.col("K").sort().alias("linked_k"), pl.col("P").sort().alias("linked_prev"))
        .collect()
    )
    linked_k = m["linked_k"].set_sorted()
    linked_prev = m["linked_prev"].set_sorted()

    K = pl.col("K")
    first_tie = K.search_sorted(K, side="left")

    def count(w: int) -> pl.Expr:
        return first_tie - K.search_sorted(K - w, side="left")

    def rolling(fn: str, w: int) -> pl.Expr:
        return getattr(pl.col("amount"), fn)("K", window_size=f"{w}i", closed="left").fill_null(0.0)

    dup = pl.lit(linked_k).search_sorted(K, side="left") - pl.lit(linked_prev).search_sorted(K - w7, side="left")

    return (
        df.lazy()
        .select(
            "user_id",
            "event_timestamp",
            "ts",
            count(pc.W_1H).cast(pl.Int64).alias("transaction_count_1h"),
            count(pc.W_24H).cast(pl.Int64).alias("transaction_count_24h"),
            rolling("rolling_mean_by", pc.W_7D).cast(pl.Float64).alias("avg_transaction_amount_7d"),
            rolling("rolling_mean_by", pc.W_30D).cast(pl.Float64).alias("avg_transaction_amount_30d"),
            rolling("rolling_max_by", pc.W_7D).cast(pl.Float64).alias("max_transaction_amount_7d"),
            (count(w7).cast(pl.Int64) - dup.cast(pl.Int64)).alias("distinct_merchant_count_7d"),
        )
        .filter(pl.col("ts") >= start_us)
        .drop("ts")
        .collect()
    )


def main() -> None:
    a = pc.parse_args(__doc__.splitlines()[0])
    t0 = time.perf_counter()
    files = pc.input_files(a.input)

    lf = pl.scan_parquet(files)
    ts_type = lf.collect_schema()["event_timestamp"]
    ts_col = pl.col("event_timestamp")
    if getattr(ts_type, "time_zone", None) is None:  # zone-less: UTC, as featurekit reads it
        ts_col = ts_col.dt.replace_time_zone("UTC")
    elif ts_type.time_zone != "UTC":
        ts_col = ts_col.dt.convert_time_zone("UTC")
    if getattr(ts_type, "time_unit", "us") != "us":
        ts_col = ts_col.dt.cast_time_unit("us")
    df = (
        lf.select(
            pl.col("user_id").cast(pl.Int64),
            ts_col,
            pl.col("amount").cast(pl.Float64),
            pl.col("merchant_id").cast(pl.Int64),
        )
        .filter(
            (pl.col("event_timestamp") >= us_datetime(a.lookback_us))
            & (pl.col("event_timestamp") < us_datetime(a.end_us))
        )
        .with_columns(ts=pl.col("event_timestamp").dt.epoch("us"))
        .collect()
    )

    if df.height == 0:
        out = [windows_empty(df)]
    else:
        span = df["ts"].max() - df["ts"].min()
        stride = span + pc.W_30D + 1
        u_min, u_max = df["user_id"].min(), df["user_id"].max()
        if u_max - u_min < INT64_MAX // stride:
            df = df.with_columns(uidx=pl.col("user_id") - u_min)
            n_users = u_max - u_min + 1
        else:
            df = df.with_columns(uidx=pl.col("user_id").rank("dense").cast(pl.Int64) - 1)
            n_users = df["uidx"].max() + 1
        per_batch = INT64_MAX // stride
        if n_users <= per_batch:
            out = [windows(df, a.start_us)]
        else:  # rare: too many users for one key space; whole users per batch
            out = []
            for lo in range(0, n_users, per_batch):
                part = df.filter((pl.col("uidx") >= lo) & (pl.col("uidx") < lo + per_batch))
                if part.height:
                    out.append(windows(part.with_columns(uidx=pl.col("uidx") - lo), a.start_us))
    result = pl.concat(out) if len(out) > 1 else out[0]

    result.write_parquet(
        a.output,
        compression="zstd",
        compression_level=pc.ZSTD_LEVEL,
        row_group_size=pc.ROW_GROUP_ROWS,
    )
    pc.report(result.height, t0)


def windows_empty(df: pl.DataFrame) -> pl.DataFrame:
    cols = {"user_id": df["user_id"], "event_timestamp": df["event_timestamp"]}
    for name, dtype in pc.FEATURES:
        cols[name] = pl.Series(name, [], dtype=pl.Int64 if dtype == "int64" else pl.Float64)
    return pl.DataFrame(cols)


if __name__ == "__main__":
    main()
