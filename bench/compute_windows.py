#!/usr/bin/env python3
"""compute-windows against its peers, side by side on the same generated data.

Usage: bench/compute_windows.py BIN_DIR [--rows 10000000] [--repeat 3] [--skip-duckdb] [--skip-seed]
On the large input every engine runs --repeat times, the engines taking turns (in alternating
order, so none always runs first); each is reported by its median run, with the fastest and
slowest beside it: single runs on a shared virtual machine vary by a fifth or more. The seed's
pandas loop and our runs on the small inputs run once. Prints a table (seconds, rows/s, peak RSS,
CPU use, ratio) and writes out/bench/compute-windows.json. Every peer's output is cross-checked
against ours with bench/peers/compare.py.
"""
import argparse, json, os, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "bench"
PY = sys.executable


def measure(name, cmd, log, output):
    """Runs cmd, returns wall seconds, peak RSS (MiB) and CPU use (cores busy on average).
    Every engine writes to a fresh path: a previous bench's output there is removed first, and
    what is left is flushed to disk, so no run pays for another's files (replacing a file on
    ext4 flushes the new one's data on the spot: about 0.2 s for our 120 files)."""
    shutil.rmtree(output, ignore_errors=True)
    if os.path.isfile(output):
        os.remove(output)
    os.sync()
    start = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{name} failed ({os.waitstatus_to_exitcode(status)}), see {log}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"name": name, "seconds": round(wall, 3), "rss_mib": round(usage.ru_maxrss / 1024), "cores": round(cpu / wall, 2)}


def check(ours, theirs, label):
    r = subprocess.run([PY, str(ROOT / "bench/peers/compare.py"), str(ours), str(theirs)], capture_output=True, text=True)
    print(f"  cross-check {label}: {(r.stdout or r.stderr).strip()}")
    if r.returncode != 0:
        sys.exit(f"cross-check {label} failed")


def generate(bin_dir, path, rows, days):
    users = max(rows // 20, 100)
    subprocess.run([str(bin_dir / "generate-transactions"), "--output", str(path), "--rows", str(rows),
                    "--users", str(users), "--days", str(days), "--start", "2025-11-01", "--log-level", "warn"], check=True)


def ours(bin_dir, raw, out, end, label):
    return measure(label, [str(bin_dir / "compute-windows"), "--spec", str(ROOT / "features.yaml"), "--input", str(raw),
                           "--output", str(out), "--start", "2025-11-01", "--end", end, "--no-as-of",
                           "--log-level", "warn"], OUT / f"{label}.log", out)


def peer(script, raw, out, end, label):
    return measure(label, [PY, str(ROOT / "bench/peers" / script), "--input", str(raw), "--output", str(out),
                           "--start", "2025-11-01", "--end", end], OUT / f"{label}.log", out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin_dir", type=Path)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each engine on the large input")
    ap.add_argument("--skip-duckdb", action="store_true")
    ap.add_argument("--skip-seed", action="store_true", help="no runs of the seed's pandas loop (minutes)")
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results = []

    days, end = 60, "2025-12-31"
    raw = OUT / "raw.parquet"
    print(f"compute-windows: {a.rows:,} transactions, {days} days, six seed features")
    generate(a.bin_dir, raw, a.rows, days)
    view = "user_transaction_features"
    engines = [("compute-windows", lambda: ours(a.bin_dir, raw, OUT / "ours", end, "compute-windows"))]
    peers = [("windows_polars.py", "python-polars")]
    if not a.skip_duckdb:
        peers.append(("windows_duckdb.py", "duckdb"))
    for script, label in peers:
        engines.append((label, lambda script=script, label=label: peer(script, raw, OUT / f"{label}.parquet", end, label)))
    runs = {name: [] for name, _ in engines}
    for i in range(max(a.repeat, 1)):
        for name, run in engines if i % 2 == 0 else engines[::-1]:
            r = run()
            print(f"  run {i + 1}: {name} {r['seconds']:.2f} s", flush=True)
            runs[name].append(r)
    for name, _ in engines:
        done = sorted(runs[name], key=lambda r: r["seconds"])
        median = dict(done[(len(done) - 1) // 2])  # of an even number of runs, the lower middle
        median["runs"] = [r["seconds"] for r in runs[name]]
        results.append(median)
    for _, label in peers:
        check(OUT / "ours" / view, OUT / f"{label}.parquet", label)

    # the seed's per-row pandas loop, on small inputs only
    for rows in () if a.skip_seed else (10_000, 100_000):
        small = OUT / f"raw-{rows}.parquet"
        generate(a.bin_dir, small, rows, days)
        mine = ours(a.bin_dir, small, OUT / f"ours-{rows}", end, f"compute-windows@{rows}")
        seed = peer("windows_pandas_seed.py", small, OUT / f"seed-{rows}.parquet", end, f"pandas-seed@{rows}")
        check(OUT / f"ours-{rows}" / view, OUT / f"seed-{rows}.parquet", f"pandas-seed@{rows}")
        results += [mine, seed]

    base = {r["name"]: r for r in results}
    print(f"\n{'engine':<24}{'rows':>12}{'seconds':>10}{'runs':>18}{'rows/s':>14}{'peak RSS':>11}{'cores':>7}{'ours x faster':>15}")
    for r in results:
        rows = int(r["name"].split("@")[1]) if "@" in r["name"] else a.rows
        mine = base["compute-windows" + (f"@{rows}" if "@" in r["name"] else "")]
        ratio = r["seconds"] / mine["seconds"]
        r.update(rows=rows, rows_per_s=round(rows / r["seconds"]), ratio=round(ratio, 1))
        spread = f"{min(r['runs']):.2f}-{max(r['runs']):.2f}" if len(r.get("runs", [])) > 1 else ""
        print(f"{r['name']:<24}{rows:>12,}{r['seconds']:>10.2f}{spread:>18}{r['rows_per_s']:>14,}{r['rss_mib']:>8} MiB{r['cores']:>7}{ratio:>14.1f}x")
    (OUT / "compute-windows.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
