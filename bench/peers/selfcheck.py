#!/usr/bin/env python3
"""Hand-made case with numbers worked out by hand; runs every peer on it and checks them.

Covers: ties at one timestamp, an event exactly at t - 1h / 24h / 7d / 30d (included), a fully
duplicated row (kept, one output row each), null amounts (skipped; only nulls -> 0.0), lookback
rows (used, not emitted), a row before start - 30d and a row at end (neither used nor emitted),
an RFC 3339 --start with an offset, and a directory of two Parquet files as input.

Usage: selfcheck.py   (exit 0 when every peer gives exactly the expected rows)
"""

import os
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = ["windows_duckdb.py", "windows_polars.py", "windows_pandas_seed.py"]

S = datetime(2025, 11, 10, tzinfo=timezone.utc)  # --start
END = datetime(2025, 12, 20, tzinfo=timezone.utc)  # --end
h = timedelta(hours=1)
d = timedelta(days=1)
us = timedelta(microseconds=1)

# name: (user_id, time, amount, merchant_id)
EVENTS = {
    "a": (1, S - 30 * d, 100.0, 1),  # lookback, exactly start - 30d: in c's 30d window only
    "b": (1, S - 30 * d - us, 1000.0, 9),  # before start - 30d: never used
    "c": (1, S, 10.0, 1),  # exactly at start: emitted
    "d": (1, S + h, None, 2),  # null amount
    "e": (1, S + h, 20.0, 1),  # tie with d
    "f": (1, S + 2 * h, 5.0, 3),  # exactly 1h after d and e
    "f2": (1, S + 2 * h, 5.0, 3),  # duplicate of f
    "g": (1, S + 2 * h, 7.0, 1),  # tie with f
    "h": (1, S + 3 * h, 1.0, 4),
    "i": (1, S + 2 * h + 7 * d, 2.0, 5),  # exactly 7d after f, f2, g
    "j": (1, S + h + 30 * d, 3.0, 1),  # exactly 30d after d, e
    "k": (1, END, 50.0, 6),  # at end: not emitted, never in a window of an emitted row
    "p": (2, S + 5 * h, None, 7),  # user 2
    "q": (2, S + 6 * h, 4.0, 7),  # window holds only p (null amount)
    "r": (2, S + 6 * h, 6.0, 8),  # tie with q
    "s": (3, S + 10 * h, 1.5, 1),  # user 3
    "t": (3, S + 34 * h, 2.5, 1),  # exactly 24h after s
}

# name: (count_1h, count_24h, avg_7d, avg_30d, max_7d, distinct_7d), worked out by hand
EXPECTED = {
    "c": (0, 0, 0.0, 100.0, 0.0, 0),  # 30d: a (b is out)
    "d": (1, 1, 10.0, 10.0, 10.0, 1),  # c (a, at S - 30d, is before d's t - 30d)
    "e": (1, 1, 10.0, 10.0, 10.0, 1),
    "f": (2, 3, 15.0, 15.0, 20.0, 2),  # 1h: d, e (t - 1h); 7d, 30d: 10, null, 20; merchants 1, 2
    "f2": (2, 3, 15.0, 15.0, 20.0, 2),
    "g": (2, 3, 15.0, 15.0, 20.0, 2),
    "h": (3, 6, 9.4, 9.4, 20.0, 3),  # 1h: f, f2, g; 7d, 30d: 47 / 5; merchants 1, 2, 3
    "i": (0, 0, 4.5, 8.0, 7.0, 3),  # 7d: f, f2, g (t - 7d), h; 30d: c..h = 48 / 6; merchants 3, 1, 4
    "j": (0, 0, 0.0, 40.0 / 6, 0.0, 0),  # 30d: d, e (t - 30d), f, f2, g, h, i = 40 / 6
    "p": (0, 0, 0.0, 0.0, 0.0, 0),
    "q": (1, 1, 0.0, 0.0, 0.0, 1),  # only a null amount in the window
    "r": (1, 1, 0.0, 0.0, 0.0, 1),
    "s": (0, 0, 0.0, 0.0, 0.0, 0),
    "t": (0, 1, 1.5, 1.5, 1.5, 1),  # 24h: s (t - 24h)
}

SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("amount", pa.float64()),
        ("merchant_id", pa.int64()),
    ]
)


def write_input(folder: str) -> None:
    names = list(EVENTS)
    # shuffled order, split over two files
    order = names[7:] + names[:7][::-1]
    for part, chunk in enumerate([order[:8], order[8:]]):
        cols = list(zip(*(EVENTS[n] for n in chunk)))
        pq.write_table(pa.table([pa.array(c, t) for c, t in zip(cols, SCHEMA.types)], schema=SCHEMA),
                       os.path.join(folder, f"part-{part}.parquet"))


def expected_rows() -> list[tuple]:
    rows = []
    for name, feats in EXPECTED.items():
        user, t, _, _ = EVENTS[name]
        rows.append((user, t) + feats)
    return sorted(rows)


def check(peer: str, path: str) -> list[str]:
    t = pq.read_table(path)
    errors = []
    want_types = [pa.int64(), pa.timestamp("us", tz="UTC"), pa.int64(), pa.int64(),
                  pa.float64(), pa.float64(), pa.float64(), pa.int64()]
    if t.schema.types != want_types:
        errors.append(f"{peer}: schema {t.schema}")
    got = sorted(zip(*[t.column(i).to_pylist() for i in range(t.num_columns)]))
    want = expected_rows()
    if len(got) != len(want):
        errors.append(f"{peer}: {len(got)} rows, want {len(want)}")
    for g, w in zip(got, want):
        same = all(
            (abs(x - y) <= 1e-12 * max(1.0, abs(y))) if isinstance(y, float) else x == y
            for x, y in zip(g, w)
        )
        if not same:
            errors.append(f"{peer}: got {g}, want {w}")
    return errors


def main() -> None:
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "in")
        os.makedirs(folder)
        write_input(folder)
        outs = []
        for peer in PEERS:
            out = os.path.join(tmp, peer.replace(".py", ".parquet"))
            r = subprocess.run(
                [sys.executable, os.path.join(HERE, peer), "--input", folder, "--output", out,
                 "--start", "2025-11-10T01:00:00+01:00", "--end", "2025-12-20"],
                capture_output=True, text=True,
            )
            if r.returncode != 0:
                errors.append(f"{peer}: exit {r.returncode}: {r.stderr.strip()}")
                continue
            lines = r.stdout.strip().splitlines()
            if len(lines) != 1 or not lines[0].startswith('{"rows": 14,'):
                errors.append(f"{peer}: stdout {r.stdout!r}")
            errors += check(peer, out)
            outs.append(out)
        for other in outs[1:]:
            r = subprocess.run([sys.executable, os.path.join(HERE, "compare.py"), outs[0], other],
                               capture_output=True, text=True)
            if r.returncode != 0:
                errors.append(f"compare: {r.stdout.strip()}")
    for e in errors:
        print(e)
    print(f"selfcheck: {'FAILED' if errors else 'OK'} ({len(PEERS)} peers, {len(EXPECTED)} hand-checked rows)")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
