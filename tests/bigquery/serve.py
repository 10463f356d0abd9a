"""Starts bqemulator, a local BigQuery (REST and gRPC), on loopback, offline:

    serve.py --home DIR --rest-port N --grpc-port N [--project demo]

The emulator needs DuckDB's spatial extension and would download it at start; it is copied
from the duckdb-extension-spatial wheel into DIR/.duckdb first, and the emulator runs with
HOME=DIR (so nothing outside DIR is touched). Used by the tests and `make demo`.
"""
import argparse
import os
import pathlib
import shutil
import sys

import duckdb
import duckdb_extension_spatial


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--home", required=True)
    p.add_argument("--rest-port", required=True)
    p.add_argument("--grpc-port", required=True)
    p.add_argument("--project", default="demo")
    a = p.parse_args()
    version = duckdb.__version__
    wheel = pathlib.Path(duckdb_extension_spatial.__file__).parent / "extensions" / f"v{version}"
    found = list(wheel.rglob("spatial.duckdb_extension"))
    if not found:
        sys.exit(f"serve.py: no spatial extension for DuckDB {version} below {wheel}")
    platform = duckdb.sql("PRAGMA platform").fetchone()[0]
    target = pathlib.Path(a.home) / ".duckdb" / "extensions" / f"v{version}" / platform
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(found[0], target / found[0].name)
    env = dict(os.environ, HOME=a.home, OTEL_SDK_DISABLED="true")
    exe = pathlib.Path(sys.executable).parent / "bqemulator"
    os.execve(exe, [str(exe), "start", "--rest-host", "127.0.0.1", "--rest-port", a.rest_port,
                    "--grpc-host", "127.0.0.1", "--grpc-port", a.grpc_port, "--project", a.project,
                    "--log-level", "warning"], env)


if __name__ == "__main__":
    main()
