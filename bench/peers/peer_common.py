"""Shared plumbing for the compute-windows peers: CLI, time parsing, input discovery, output schema.

Every peer computes, for each event of user u at time t, aggregates over u's events in [t - w, t)
(strictly before t, t - w included). Only events in [start - 30d, end) can matter; rows with
start <= t < end are written. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone

US_PER_SEC = 1_000_000
HOUR_US = 3600 * US_PER_SEC
DAY_US = 24 * HOUR_US

# (name, window in microseconds), in output order.
W_1H = HOUR_US
W_24H = 24 * HOUR_US
W_7D = 7 * DAY_US
W_30D = 30 * DAY_US
LOOKBACK_US = W_30D  # the longest window

FEATURES = [
    ("transaction_count_1h", "int64"),
    ("transaction_count_24h", "int64"),
    ("avg_transaction_amount_7d", "float64"),
    ("avg_transaction_amount_30d", "float64"),
    ("max_transaction_amount_7d", "float64"),
    ("distinct_merchant_count_7d", "int64"),
]
OUTPUT_COLUMNS = ["user_id", "event_timestamp"] + [name for name, _ in FEATURES]

# Parquet writing, as compute-windows writes it by default (--compression snappy).
COMPRESSION = "snappy"
ROW_GROUP_ROWS = 512 * 1024

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_time(s: str) -> datetime:
    """RFC 3339 (any offset), a date (UTC midnight), or a zone-less date-time (UTC), like
    featurekit's cli::parse_time. Returns an aware UTC datetime."""
    s = s.strip()
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        raise SystemExit(f"invalid time `{s}`: expected RFC 3339 (2026-11-01T06:00:00Z) or a date (2026-11-01)")
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc)


def to_us(t: datetime) -> int:
    """Exact microseconds since the Unix epoch."""
    return (t - _EPOCH) // timedelta(microseconds=1)


def us_to_sql_literal(us: int) -> str:
    """A UTC timestamp literal with microseconds, exact."""
    t = _EPOCH + timedelta(microseconds=us)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f") + "+00"


def local_path(url: str) -> str:
    if url.startswith("file://"):
        return url[len("file://"):]
    if "://" in url:
        raise SystemExit(f"only local paths or file:// URLs are supported by the peers: {url}")
    return url


def input_files(url: str) -> list[str]:
    """The Parquet files behind --input: the file itself, or every *.parquet under a directory."""
    path = local_path(url)
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True))
        if not files:
            raise SystemExit(f"no .parquet files under {path}")
        return files
    if not os.path.exists(path):
        raise SystemExit(f"no such input: {path}")
    return [path]


class Args:
    input: str
    output: str
    start: datetime
    end: datetime
    start_us: int
    end_us: int
    lookback_us: int  # start - 30d: the first timestamp that can fall in an emitted row's window


def parse_args(description: str) -> Args:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--input", required=True, help="Parquet file or directory (path or file:// URL)")
    p.add_argument("--output", required=True, help="output Parquet file")
    p.add_argument("--start", required=True, help="first emitted event time (inclusive), UTC")
    p.add_argument("--end", required=True, help="end of emitted event times (exclusive), UTC")
    ns = p.parse_args()
    a = Args()
    a.input = ns.input
    a.output = local_path(ns.output)
    a.start = parse_time(ns.start)
    a.end = parse_time(ns.end)
    a.start_us = to_us(a.start)
    a.end_us = to_us(a.end)
    a.lookback_us = a.start_us - LOOKBACK_US
    if a.end_us < a.start_us:
        raise SystemExit("--end is before --start")
    parent = os.path.dirname(os.path.abspath(a.output))
    os.makedirs(parent, exist_ok=True)
    return a


def report(rows: int, t0: float) -> None:
    """The one line a peer prints: {"rows": N, "seconds": S}."""
    seconds = time.perf_counter() - t0
    sys.stdout.write(json.dumps({"rows": int(rows), "seconds": round(seconds, 4)}) + "\n")
    sys.stdout.flush()
