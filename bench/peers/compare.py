#!/usr/bin/env python3
"""Checks two compute-windows outputs are equal as multisets of rows.

Usage: compare.py A.parquet B.parquet   (each a Parquet file or a directory of them)

Same columns (names, order and types, nullability aside), same row count, and, after sorting both by
all columns, integer and timestamp columns equal exactly and float columns within 1e-9 relative
(or 1e-12 absolute near zero); nulls must match. Prints a one-line verdict; exit 0 equal, 1 not.
"""

import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

REL_TOL = 1e-9
ABS_TOL = 1e-12


def load(path: str) -> pa.Table:
    if path.startswith("file://"):
        path = path[len("file://"):]
    table = ds.dataset(path, format="parquet").to_table()
    # when a row was made is not what it holds: compute-windows stamps created_timestamp, peers do not
    if "created_timestamp" in table.column_names:
        table = table.drop_columns(["created_timestamp"])
    return table


def fail(msg: str) -> None:
    print(f"MISMATCH: {msg}")
    sys.exit(1)


def show(v) -> str:
    return "null" if v is None else repr(v)


def main() -> None:
    if len(sys.argv) != 3:
        print("usage: compare.py A.parquet B.parquet", file=sys.stderr)
        sys.exit(2)
    a_path, b_path = sys.argv[1], sys.argv[2]
    a, b = load(a_path), load(b_path)

    if a.schema.names != b.schema.names:
        fail(f"columns differ: {a.schema.names} vs {b.schema.names}")
    for f in a.schema:
        g = b.schema.field(f.name)
        if f.type != g.type:
            fail(f"column {f.name}: type {f.type} vs {g.type}")
    if a.num_rows != b.num_rows:
        fail(f"row count {a.num_rows} vs {b.num_rows}")

    keys = [(name, "ascending") for name in a.schema.names]
    a = a.take(pc.sort_indices(a, sort_keys=keys))
    b = b.take(pc.sort_indices(b, sort_keys=keys))

    first = None  # (row, column)
    bad_total = 0
    for col in a.schema.names:
        ca, cb = a.column(col).combine_chunks(), b.column(col).combine_chunks()
        na = ca.is_null().to_numpy(zero_copy_only=False)
        nb = cb.is_null().to_numpy(zero_copy_only=False)
        typ = ca.type
        if pa.types.is_floating(typ):
            xa = ca.fill_null(0.0).to_numpy(zero_copy_only=False).astype(np.float64)
            xb = cb.fill_null(0.0).to_numpy(zero_copy_only=False).astype(np.float64)
            with np.errstate(invalid="ignore"):
                close = np.abs(xa - xb) <= np.maximum(REL_TOL * np.maximum(np.abs(xa), np.abs(xb)), ABS_TOL)
            close |= (xa == xb) | (np.isnan(xa) & np.isnan(xb))
        else:
            if pa.types.is_timestamp(typ):
                ca, cb = ca.cast(pa.int64()), cb.cast(pa.int64())
            xa = ca.fill_null(0).to_numpy(zero_copy_only=False)
            xb = cb.fill_null(0).to_numpy(zero_copy_only=False)
            close = xa == xb
        ok = (na == nb) & (close | (na & nb))
        bad = np.flatnonzero(~ok)
        bad_total += len(bad)
        if len(bad) and (first is None or bad[0] < first[0]):
            first = (int(bad[0]), col)

    if first is not None:
        row, col = first
        ra = {k: v[0] for k, v in a.slice(row, 1).to_pydict().items()}
        rb = {k: v[0] for k, v in b.slice(row, 1).to_pydict().items()}
        fail(
            f"{bad_total} differing values; first at sorted row {row}, column {col}: "
            f"{show(ra[col])} vs {show(rb[col])}; row A={ra} row B={rb}"
        )
    print(f"OK: {a.num_rows} rows equal ({a_path} vs {b_path})")


if __name__ == "__main__":
    main()
