#!/usr/bin/env python3
"""compute-windows peer: Python Polars, tuned (the strong peer).

How it stays exact and fast:
- One global sort key instead of `.over("user_id")`: K = user_index * stride + (t - t_min) in
  integer microseconds, with stride > (t_max - t_min) + 30d. Sorting by K sorts by (user, time),
  and a window [K - w, K) for w <= 30d never reaches another user's keys, so every window is
  one rolling window over a single sorted Int64 column, with no per-group overhead. Only K,
  amount and merchant_id are sorted (a random-access gather per column); user_id and the
  timestamp are recomputed from K. If the keys would overflow Int64 (very many users over a
  long span), users are processed in batches.
- Windows: rolling_*_by on K with an integer window ("<w>i") and closed="left", i.e. exactly
  [K - w, K): an event at t - w is in, the event itself and its ties at t are out. Counts are
  rolling sums of 1; mean and max skip nulls in amount, and an empty (or all-null) window gives
  null, filled with 0.0.
- Distinct merchants (previous-occurrence trick, made exact for windows that end at t):
  order each (user, merchant)'s events and call prev(j) the key of the one before event j.
  In a window W = [L, t), a merchant with k events in W contributes k events of which k - 1
  have their prev in W, so distinct(W) = count(W) - dup(W), dup(W) = #{j in W : prev(j) >= L}.
  Only pairs with K_j - prev(j) <= w can have both ends in a window of length w (call them
  linked), so dup(W) = #{linked j : K_j < t, prev(j) >= L}; and a linked j with prev(j) < L
  has K_j <= prev(j) + w < t, so
      dup(t) = #{linked j : K_j < t} - #{linked j : prev(j) < t - w},
  two as-of joins (linear merges of sorted keys; 6x faster here than search_sorted) against
  the sorted K and prev of the linked pairs. Linked pairs never cross users (keys of two users
  are more than 30d apart), so these counts are global and the other users cancel out. The
  linked pairs come from one stable sort by merchant_id of the K-sorted frame.
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


def windows(batch: pl.LazyFrame, user_of: "pl.Series | int", t_min: int, stride: int, start_us: int) -> pl.DataFrame:
    """Features of one batch of whole users. batch has uidx (0-based, monotone in user_id),
    ts (Int64 us), amount and merchant_id; user_of maps uidx back to user_id (an offset, or a
    Series of the sorted distinct user_ids)."""
    # Only K, amount and merchant_id go through the (random-access) sort; user and time are
    # recomputed from K afterwards, which is cheap and sequential.
    df = (
        batch.select(
            (pl.col("uidx").cast(pl.Int64) * stride + (pl.col("ts") - t_min)).alias("K"),
            "amount",
            "merchant_id",
        )
        .sort("K", maintain_order=True)  # stable: ties keep input order, so float sums are reproducible
        .collect()
    )
    df = df.with_columns(pl.col("K").set_sorted(), pl.lit(1, dtype=pl.Int64).alias("one"))
    w7 = pc.W_7D

    # Linked previous occurrences of the same (user, merchant): a stable sort by merchant keeps
    # K order inside each merchant, so consecutive rows of one merchant with K gap <= 7d are the
    # same user's consecutive events of that merchant (two users' keys are > 30d apart).
    linked = (
        df.lazy()
        .select("merchant_id", "K")
        .sort("merchant_id", maintain_order=True)
        .with_columns(P=pl.col("K").shift(1), pm=pl.col("merchant_id").shift(1))
        .filter((pl.col("pm") == pl.col("merchant_id")) & (pl.col("K") - pl.col("P") <= w7))
        .select("K", "P")
        .collect()
    )

    def below(values: pl.Series) -> pl.LazyFrame:
        """(q, n): for each distinct value q, n = how many values are <= q; an as-of join
        backward without exact matches then gives, for a sorted query x, #{values < x} as a
        linear merge instead of a binary search per query."""
        v = values.sort()
        return (
            pl.DataFrame({"q": v, "n": pl.int_range(1, v.len() + 1, dtype=pl.Int64, eager=True)})
            .lazy()
            .filter(pl.col("q").shift(-1).ne_missing(pl.col("q")))  # last of each run of equal q
            .with_columns(pl.col("q").set_sorted())
        )

    def count(w: int) -> pl.Expr:  # events in [K - w, K); ties at K excluded
        return pl.col("one").rolling_sum_by("K", window_size=f"{w}i", closed="left")

    def amount(fn: str, w: int) -> pl.Expr:  # nulls skipped; empty -> null -> 0.0
        return getattr(pl.col("amount"), fn)("K", window_size=f"{w}i", closed="left").fill_null(0.0)

    K = pl.col("K")
    uidx = K // stride
    user_id = (uidx + user_of) if isinstance(user_of, int) else pl.lit(user_of).gather(uidx)
    ts = K - uidx * stride + t_min
    # distinct = count - dup, dup(t) = #{linked j : K_j < t} - #{linked j : prev(j) < t - 7d}
    asof = dict(strategy="backward", allow_exact_matches=False, check_sortedness=False)
    return (
        df.lazy()
        .select(  # the rolling kernels run on the frame sorted by K
            "K",
            (K - w7).alias("K_w7"),
            count(pc.W_1H).alias("transaction_count_1h"),
            count(pc.W_24H).alias("transaction_count_24h"),
            amount("rolling_mean_by", pc.W_7D).alias("avg_transaction_amount_7d"),
            amount("rolling_mean_by", pc.W_30D).alias("avg_transaction_amount_30d"),
            amount("rolling_max_by", pc.W_7D).alias("max_transaction_amount_7d"),
            count(w7).alias("count_7d"),
        )
        .with_columns(pl.col("K").set_sorted(), pl.col("K_w7").set_sorted())
        .join_asof(below(linked["K"]).rename({"n": "n_k"}), left_on="K", right_on="q", **asof)
        .join_asof(below(linked["P"]).rename({"n": "n_p"}), left_on="K_w7", right_on="q", **asof)
        .filter(ts >= start_us)
        .select(
            user_id.cast(pl.Int64).alias("user_id"),
            ts.cast(pl.Datetime("us", "UTC")).alias("event_timestamp"),
            pl.col("transaction_count_1h").cast(pl.Int64),
            pl.col("transaction_count_24h").cast(pl.Int64),
            pl.col("avg_transaction_amount_7d").cast(pl.Float64),
            pl.col("avg_transaction_amount_30d").cast(pl.Float64),
            pl.col("max_transaction_amount_7d").cast(pl.Float64),
            (pl.col("count_7d") - pl.col("n_k").fill_null(0) + pl.col("n_p").fill_null(0))
            .cast(pl.Int64)
            .alias("distinct_merchant_count_7d"),
        )
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
    df = (
        lf.filter(
            (ts_col >= us_datetime(a.lookback_us)) & (ts_col < us_datetime(a.end_us))
        )
        .select(
            pl.col("user_id").cast(pl.Int64),
            ts_col.dt.epoch("us").alias("ts"),
            pl.col("amount").cast(pl.Float64),
            pl.col("merchant_id").cast(pl.Int64),
        )
        .collect()
    )

    if df.height == 0:
        result = pl.DataFrame(
            schema={"user_id": pl.Int64, "event_timestamp": pl.Datetime("us", "UTC")}
            | {name: (pl.Int64 if dtype == "int64" else pl.Float64) for name, dtype in pc.FEATURES}
        )
    else:
        t_min, t_max = df["ts"].min(), df["ts"].max()
        # keys of consecutive users are more than the longest window apart
        stride = (t_max - t_min) + pc.W_30D + 1
        per_batch = INT64_MAX // stride  # users per key space
        u_min, u_max = df["user_id"].min(), df["user_id"].max()
        if u_max - u_min < per_batch:  # the usual case: user_id - u_min is the user index
            user_of = u_min
            df = df.with_columns(uidx=pl.col("user_id") - u_min)
            n_users = u_max - u_min + 1
        else:
            user_of = df["user_id"].unique().sort()
            df = df.with_columns(uidx=pl.col("user_id").rank("dense").cast(pl.Int64) - 1)
            n_users = user_of.len()
        if n_users <= per_batch:
            result = windows(df.lazy(), user_of, t_min, stride, a.start_us)
        else:  # rare: too many users for one Int64 key space; whole users per batch
            parts = []
            for lo in range(0, n_users, per_batch):
                part = df.lazy().filter((pl.col("uidx") >= lo) & (pl.col("uidx") < lo + per_batch))
                part = part.with_columns(uidx=pl.col("uidx") - lo)
                parts.append(windows(part, user_of[lo : lo + per_batch], t_min, stride, a.start_us))
            result = pl.concat(parts)

    result.write_parquet(
        a.output,
        compression=pc.COMPRESSION,
        row_group_size=pc.ROW_GROUP_ROWS,
    )
    pc.report(result.height, t0)


if __name__ == "__main__":
    main()
