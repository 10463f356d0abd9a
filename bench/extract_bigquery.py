#!/usr/bin/env python3
"""extract-bigquery against Google's official Python client and against the pages' own ceiling,
side by side on one stub of BigQuery's REST API serving the same result pages from memory.

Usage: bench/extract_bigquery.py BIN_DIR [--rows 1000000] [--days 1] [--repeat 3] [--skip-python]
(run by .venv-bq's Python: google-cloud-bigquery, pyarrow, numpy)

The stub (a child process: this script with --serve) generates --rows events of the spec's source
(user_id INT64, event_timestamp TIMESTAMP, amount FLOAT64, merchant_id INT64; about 1% nulls in
amount and merchant_id; every event in 2025-11-01 UTC, or spread over --days days from it), renders
them ONCE as BigQuery's JSON result pages of about 10 MB (its page cap: TIMESTAMP as integer
microseconds, every value a string) and serves them over HTTP/1.1 with keep-alive: jobs.query (the
first page), jobs.getQueryResults by pageToken, jobs.get, and what else Google's client asks for.
Then, on that stub, the engines taking turns:

1. ceiling: one curl fetching every page in sequence over one connection, to /dev/null;
2. Google's Python client (REST): query_and_wait(...).to_arrow(create_bqstorage_client=False)
   then pyarrow.parquet.write_table;
3. extract-bigquery --read rest (BIN_DIR/extract-bigquery), one file per UTC day.

The ceiling and ours run --repeat times (reported by the median, fastest and slowest beside it),
the Python client once unless --python-repeat says otherwise. Both outputs are checked against
the rows the stub generated (sorted, the four columns compared). --read storage is not measured:
the stub serves REST only (no gRPC Storage Read API yet); the output says so. Prints a table and writes out/bench/extract-bigquery.json.
"""
import argparse, json, os, shutil, socket, statistics, subprocess, sys, threading, time
from pathlib import Path
from urllib.parse import urlsplit, parse_qs

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "bench" / "extract-bigquery"
PROJECT, DATASET, TABLE, JOB = "bench-project", "raw", "transactions", "bench-job"
DAY0 = "2025-11-01"
DAY0_US = 1_761_955_200 * 1_000_000  # 2025-11-01T00:00:00Z
DAY_US = 86_400 * 1_000_000
PAGE_BYTES = 10_000_000  # BigQuery's page cap is about 10 MB
SQL = (f"SELECT user_id, event_timestamp, amount, merchant_id\nFROM `{PROJECT}.{DATASET}.{TABLE}`\n"
       "WHERE event_timestamp >= @start AND event_timestamp < @end\n")
FIELDS = [("user_id", "INTEGER"), ("event_timestamp", "TIMESTAMP"), ("amount", "FLOAT"), ("merchant_id", "INTEGER")]


# ---------------------------------------------------------------------------------------------
# the data and its pages

def generate(n, days, seed=7):
    """The source table: n events of max(n/20, 100) users over `days` UTC days from DAY0."""
    import numpy as np, pyarrow as pa
    rng = np.random.default_rng(seed)
    users = max(n // 20, 100)
    return pa.table({
        "user_id": pa.array(rng.integers(1, users + 1, n, dtype=np.int64)),
        "event_timestamp": pa.array(DAY0_US + rng.integers(0, days * DAY_US, n, dtype=np.int64),
                                    pa.timestamp("us", tz="UTC")),
        "amount": pa.array(np.round(rng.lognormal(3, 1, n), 2), mask=rng.random(n) < 0.01),
        "merchant_id": pa.array(rng.integers(1, 5001, n, dtype=np.int64), mask=rng.random(n) < 0.01),
    })


def render_rows(table):
    """Every row as BigQuery's JSON, `{"f":[{"v":"1"},...]},` (a comma after each), in one
    Arrow string buffer: the pages are slices of it."""
    import pyarrow as pa, pyarrow.compute as pc
    lit = lambda s: pa.scalar(s, pa.large_string())
    cells = []
    for name, _ in FIELDS:
        col = table[name]
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        text = pc.binary_join_element_wise(lit('{"v":"'), col.cast(pa.large_string()), lit('"}'), lit(""))
        cells.append(pc.fill_null(text, lit('{"v":null}')))
    rows = pc.binary_join_element_wise(lit('{"f":['), cells[0], lit(","), cells[1], lit(","), cells[2], lit(","),
                                       cells[3], lit("]},"), lit(""))
    return rows.combine_chunks() if hasattr(rows, "combine_chunks") else rows


def pages_of(table):
    """The result pages: about PAGE_BYTES of rows each, the schema on every page (as BigQuery
    sends it), a pageToken on all but the last."""
    import numpy as np
    n = table.num_rows
    rows = render_rows(table)
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)[rows.offset:rows.offset + n + 1]
    data = rows.buffers()[2]
    bounds = [0]
    while bounds[-1] < n:
        at = int(np.searchsorted(offsets, offsets[bounds[-1]] + PAGE_BYTES, side="right")) - 1
        bounds.append(min(max(at, bounds[-1] + 1), n))
    schema = json.dumps({"fields": [{"name": f, "type": t, "mode": "NULLABLE"} for f, t in FIELDS]},
                        separators=(",", ":"))
    head = ('{"kind":"bigquery#queryResponse","jobReference":{"projectId":"%s","jobId":"%s","location":"US"},'
            '"jobComplete":true,"schema":%s,"totalRows":"%d",' % (PROJECT, JOB, schema, n)).encode()
    pages = []
    for k in range(len(bounds) - 1):
        a, b = int(offsets[bounds[k]]), int(offsets[bounds[k + 1]])
        body = data[a:b - 1].to_pybytes() if b > a else b""  # the last row's comma dropped
        token = ',"pageToken":"%d"' % (k + 1) if k + 2 < len(bounds) else ""
        pages.append(head + b'"rows":[' + body + b"]" + token.encode() + b"}")
    if not pages:
        pages.append(head + b'"rows":[]}')
    return pages


# ---------------------------------------------------------------------------------------------
# the stub: HTTP/1.1 keep-alive, one thread per connection, the pages sent from memory

def job_resource(n, page_bytes):
    return {"kind": "bigquery#job", "id": f"{PROJECT}:US.{JOB}",
            "jobReference": {"projectId": PROJECT, "jobId": JOB, "location": "US"},
            "status": {"state": "DONE"},
            "configuration": {"jobType": "QUERY", "query": {
                "query": SQL, "useLegacySql": False,
                "destinationTable": {"projectId": PROJECT, "datasetId": "_anon", "tableId": "bench_result"}}},
            "statistics": {"creationTime": "1761955200000", "startTime": "1761955200000", "endTime": "1761955201000",
                           "totalBytesProcessed": str(n * 32),
                           "query": {"totalBytesProcessed": str(n * 32), "totalBytesBilled": str(n * 32),
                                     "totalRows": str(n), "cacheHit": False, "statementType": "SELECT"}}}


def serve(n, days, log_path, source_path):
    table = generate(n, days)
    import pyarrow.parquet as pq
    pq.write_table(table, source_path)
    pages = pages_of(table)
    del table
    job = json.dumps(job_resource(n, sum(map(len, pages)))).encode()
    schema = {"fields": [{"name": f, "type": t, "mode": "NULLABLE"} for f, t in FIELDS]}
    table_resource = json.dumps({"kind": "bigquery#table", "tableReference": {
        "projectId": PROJECT, "datasetId": "_anon", "tableId": "bench_result"},
        "schema": schema, "numRows": str(n), "type": "TABLE", "location": "US"}).encode()
    log = open(log_path, "a", buffering=1)
    lock = threading.Lock()

    def route(method, target, body):
        url = urlsplit(target.decode())
        parts = url.path.strip("/").split("/")
        q = parse_qs(url.query)
        page = lambda: pages[int(q.get("pageToken", ["0"])[0])]
        if parts[:4] != ["bigquery", "v2", "projects", PROJECT]:
            return 404, None
        rest = parts[4:]
        if method == b"POST" and rest == ["queries"]:
            req = json.loads(body or b"{}")
            params = {p["name"]: p["parameterValue"]["value"] for p in req.get("queryParameters", [])}
            with lock:
                log.write(f"  jobs.query parameters {params}\n")
            return 200, pages[0]
        if method == b"GET" and len(rest) == 2 and rest[0] == "queries":
            return 200, page()
        if method == b"POST" and rest == ["jobs"]:
            return 200, job
        if method == b"GET" and len(rest) == 2 and rest[0] == "jobs":
            return 200, job
        if method == b"GET" and len(rest) == 4 and rest[0] == "datasets" and rest[2] == "tables":
            return 200, table_resource
        if method == b"GET" and len(rest) == 5 and rest[0] == "datasets" and rest[4] == "data":
            return 200, page()
        return 404, None

    def handle(conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = conn.makefile("rb", buffering=65536)
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                method, target, _ = line.split(b" ", 2)
                length, close = 0, False
                while True:
                    h = f.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.partition(b":")
                    k = k.strip().lower()
                    if k == b"content-length":
                        length = int(v)
                    elif k == b"connection" and v.strip().lower() == b"close":
                        close = True
                body = f.read(length) if length else b""
                status, payload = route(method, target, body)
                with lock:
                    log.write(f"{method.decode()} {target.decode()} -> {status}\n")
                if payload is None:
                    payload = json.dumps({"error": {"code": status, "message": f"stub: no {target.decode()}",
                                                    "errors": [{"reason": "notFound"}]}}).encode()
                reason = b"OK" if status == 200 else b"Not Found"
                conn.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=UTF-8\r\n"
                             b"Content-Length: %d\r\n\r\n" % (status, reason, len(payload)))
                conn.sendall(payload)
                if close:
                    return
        except (ConnectionError, ValueError):
            pass
        finally:
            f.close()
            conn.close()

    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    print(json.dumps({"port": lsock.getsockname()[1], "pages": len(pages), "bytes": sum(map(len, pages))}), flush=True)
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


# ---------------------------------------------------------------------------------------------
# Google's Python client, the peer (a child process: this script with --python)

def python_client(port, out):
    from datetime import datetime, timedelta, timezone
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery
    import pyarrow.parquet as pq
    client = bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=f"http://127.0.0.1:{port}"))
    start = datetime(2025, 11, 1, tzinfo=timezone.utc)
    days = int(os.environ.get("BENCH_DAYS", "1"))
    config = bigquery.QueryJobConfig(query_parameters=[
        bigquery.ScalarQueryParameter("start", "TIMESTAMP", start),
        bigquery.ScalarQueryParameter("end", "TIMESTAMP", start + timedelta(days=days))])
    table = client.query_and_wait(SQL, job_config=config).to_arrow(create_bqstorage_client=False)
    pq.write_table(table, out)


# ---------------------------------------------------------------------------------------------
# the driver: it stays small, so that a measured child's peak RSS (inherited at fork) is its own

def measure(name, cmd, log, env=None):
    start = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{name} failed ({code}), see {log}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"seconds": wall, "rss_mib": usage.ru_maxrss / 1024, "cpu_s": cpu}


def summarise(name, runs, rows):
    by = sorted(runs, key=lambda r: r["seconds"])
    mid = by[len(by) // 2] if len(by) % 2 else by[len(by) // 2 - 1]
    return {"name": name, "rows": rows, "runs": len(runs),
            "seconds": round(statistics.median(r["seconds"] for r in runs), 3),
            "fastest": round(by[0]["seconds"], 3), "slowest": round(by[-1]["seconds"], 3),
            "rss_mib": round(max(r["rss_mib"] for r in runs), 1),
            "cpu_s": round(mid["cpu_s"], 2)}


def check(label, path, source):
    """The rows of `path` (a file or a directory of day files) equal the source's, sorted."""
    import pyarrow as pa, pyarrow.dataset as ds
    names = [f for f, _ in FIELDS]
    keys = [(c, "ascending") for c in names]

    def norm(t):
        t = t.select(names)
        return pa.table({c: (t[c].cast(pa.int64()) if pa.types.is_timestamp(t[c].type) else t[c]).combine_chunks()
                         for c in names}).sort_by(keys)
    got = ds.dataset(str(path), format="parquet", partitioning="hive" if path.is_dir() else None).to_table()
    ok = got.num_rows == source.num_rows and norm(got).equals(norm(source))
    print(f"  check {label}: {got.num_rows:,} rows, {'the same rows as the source' if ok else 'NOT the source rows'}")
    return ok


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        return serve(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    if len(sys.argv) > 1 and sys.argv[1] == "--python":
        return python_client(int(sys.argv[2]), sys.argv[3])
    ap = argparse.ArgumentParser()
    ap.add_argument("bin_dir", type=Path)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=1, help="UTC days the events spread over, from 2025-11-01")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the ceiling and of ours (median reported)")
    ap.add_argument("--python-repeat", type=int, default=1)
    ap.add_argument("--skip-python", action="store_true")
    a = ap.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    n = a.rows
    binary = a.bin_dir.resolve() / "extract-bigquery"
    if not binary.exists():
        sys.exit(f"{binary} is not built")
    print(f"extract-bigquery: {n:,} rows of the spec's source over {a.days} UTC day(s), one local stub of "
          f"BigQuery's REST API serving the same ~10 MB JSON pages from memory")
    source_path = OUT / "source.parquet"
    stub = subprocess.Popen([sys.executable, __file__, "--serve", str(n), str(a.days), str(OUT / "stub.log"),
                             str(source_path)], stdout=subprocess.PIPE, text=True)
    try:
        ready = json.loads(stub.stdout.readline() or "null") or sys.exit("the stub did not start")
        port = ready["port"]
        base = f"http://127.0.0.1:{port}/bigquery/v2/projects/{PROJECT}"
        print(f"  stub on port {port}: {ready['pages']} pages, {ready['bytes'] / 1e6:,.1f} MB of JSON "
              f"({ready['bytes'] / max(n, 1):.0f} bytes a row)")
        urls = [f"{base}/queries/{JOB}?location=US"] + [f"{base}/queries/{JOB}?location=US&pageToken={k}"
                                                         for k in range(1, ready["pages"])]
        (OUT / "query.sql").write_text(SQL)
        end_day = time.strftime("%Y-%m-%d", time.gmtime(DAY0_US // 1_000_000 + a.days * 86_400))
        ours_out = OUT / "ours"
        ours_cmd = [str(binary), "--anonymous", "--endpoint", f"http://127.0.0.1:{port}/bigquery/v2",
                    "--project", PROJECT, "--spec", str(ROOT / "features.yaml"), "--query-file", str(OUT / "query.sql"),
                    "--start", DAY0, "--end", end_day, "--lookback", "none", "--output", str(ours_out),
                    "--summary", str(OUT / "ours-summary.json"), "--log-level", "warn", "--log-format", "text"]
        curl_cmd = ["curl", "-s", "--fail", *urls]
        python_out = OUT / "python.parquet"
        python_cmd = [sys.executable, __file__, "--python", str(port), str(python_out)]
        env = dict(os.environ, BENCH_DAYS=str(a.days))

        measure("warm-up", curl_cmd, OUT / "curl.log")  # the stub's pages paged in, the connection path warm
        runs = {"ceiling": [], "ours": [], "python": []}
        for i in range(max(a.repeat, a.python_repeat if not a.skip_python else 0)):
            order = ["ceiling", "ours", "python"] if i % 2 == 0 else ["python", "ours", "ceiling"]
            for who in order:
                if who == "ceiling" and i < a.repeat:
                    runs[who].append(measure("curl", curl_cmd, OUT / "curl.log"))
                elif who == "ours" and i < a.repeat:
                    shutil.rmtree(ours_out, ignore_errors=True)
                    runs[who].append(measure("extract-bigquery", ours_cmd, OUT / "ours.log"))
                elif who == "python" and not a.skip_python and i < a.python_repeat:
                    runs[who].append(measure("python client", python_cmd, OUT / "python.log", env=env))
        summary = json.loads((OUT / "ours-summary.json").read_text())
        if summary.get("rows_in") != n:
            sys.exit(f"extract-bigquery read {summary.get('rows_in')} rows, not {n}")
    finally:
        stub.terminate()
        stub.wait()
    import pyarrow.parquet as pq
    source = pq.read_table(source_path)
    ok = check("extract-bigquery", ours_out, source)
    if not a.skip_python:
        ok = check("python client", python_out, source) and ok

    results = [summarise("ceiling: curl of the pages to /dev/null", runs["ceiling"], n),
               summarise("extract-bigquery --read rest", runs["ours"], n)]
    if not a.skip_python:
        results.append(summarise("python client REST + write_table", runs["python"], n))
    print(f"\n{'run':<40}{'rows':>12}{'seconds':>9}{'(min-max)':>15}{'rows/s':>13}{'peak RSS':>12}{'CPU s':>7}")
    for r in results:
        r["rows_per_s"] = round(n / r["seconds"])
        spread = f"{r['fastest']:.2f}-{r['slowest']:.2f}" if r["runs"] > 1 else ""
        print(f"{r['name']:<40}{n:>12,}{r['seconds']:>9.2f}{spread:>15}{r['rows_per_s']:>13,}"
              f"{r['rss_mib']:>8.0f} MiB{r['cpu_s']:>7}")
    print(f"{'extract-bigquery --read storage':<40}  not measured: the stub serves no Storage Read API (gRPC) yet")
    ceiling, ours = results[0], results[1]
    ratios = {"ours_of_ceiling": round(ceiling["seconds"] / ours["seconds"], 3)}
    print(f"\n  extract-bigquery at {ratios['ours_of_ceiling']:.0%} of the ceiling's rows/s (target: at least 60%)")
    if not a.skip_python:
        ratios["speedup_vs_python"] = round(results[2]["seconds"] / ours["seconds"], 2)
        print(f"  extract-bigquery {ratios['speedup_vs_python']:.1f}x the Python client's speed (target: at least 5x)")
    rss_mb = ours["rss_mib"] * 1.048576
    print(f"  extract-bigquery peak RSS {rss_mb:.0f} MB (target: at most 200 MB)")
    (OUT.parent / "extract-bigquery.json").write_text(json.dumps(
        {"rows": n, "days": a.days, "pages": ready["pages"], "page_bytes": ready["bytes"], "results": results,
         "ratios": ratios, "rows_checked": ok, "read_storage": "not measured"}, indent=2))
    if not ok:
        sys.exit("an output does not hold the source's rows")


if __name__ == "__main__":
    main()
