#!/usr/bin/env python3
"""validate-features against compute-windows' time and against the same checks written with
pandera (polars backend) and Great Expectations (pandas), side by side on the same rows.

Usage: bench/validate_features.py BIN_DIR [--rows 10000000]

1. generate --rows transactions and run compute-windows over them (timed: the 25% budget);
2. validate-features without a baseline, writing the profile; then with it (timed: the figure);
3. bench/peers/validate_pandera.py and bench/peers/validate_gx.py on the same rows, with the same
   baseline and expected row count; every engine must reach the same verdict (pass).
Prints a table and writes out/bench/validate-features.json.
"""
import argparse, json, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from compute_windows import measure  # noqa: E402

OUT = ROOT / "out" / "bench" / "validate-features"
PY = sys.executable
START, END = "2025-11-01", "2025-12-31"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin_dir", type=Path)
    ap.add_argument("--rows", type=int, default=10_000_000)
    a = ap.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    raw, offline = OUT / "raw.parquet", OUT / "offline"
    print(f"validate-features: {a.rows:,} feature rows of compute-windows, the six seed features")
    subprocess.run([str(a.bin_dir / "generate-transactions"), "--output", str(raw), "--rows", str(a.rows),
                    "--users", str(max(a.rows // 20, 100)), "--days", "60", "--start", START, "--log-level", "warn"],
                   check=True)
    cw = measure("compute-windows", [str(a.bin_dir / "compute-windows"), "--spec", str(ROOT / "features.yaml"),
                                     "--input", str(raw), "--output", str(offline), "--start", START, "--end", END,
                                     "--no-as-of", "--log-level", "error", "--summary", str(OUT / "cw.json")],
                 OUT / "compute-windows.log")
    rows = json.loads((OUT / "cw.json").read_text())["rows_out"]
    common = ["--spec", str(ROOT / "features.yaml"), "--input", str(offline), "--start", START, "--end", END,
              "--expected-rows", str(rows), "--log-level", "warn"]
    first = measure("validate-features, first run", [str(a.bin_dir / "validate-features"), *common, "--no-baseline",
                                                      "--profile-out", str(OUT / "baseline.json"),
                                                      "--report", str(OUT / "report-first")], OUT / "first.log")
    ours = measure("validate-features", [str(a.bin_dir / "validate-features"), *common,
                                         "--baseline", str(OUT / "baseline.json"),
                                         "--report", str(OUT / "report")], OUT / "validate.log")
    peer_args = ["--input", str(offline), "--start", START, "--end", END, "--baseline", str(OUT / "baseline.json"),
                 "--expected-rows", str(rows)]
    pandera = measure("pandera (polars)", [PY, str(ROOT / "bench/peers/validate_pandera.py"), *peer_args],
                      OUT / "pandera.log")
    gx = measure("Great Expectations (pandas)", [PY, str(ROOT / "bench/peers/validate_gx.py"), *peer_args],
                 OUT / "gx.log")
    verdict = json.loads((OUT / "report" / "report.json").read_text())["status"]
    print(f"  verdicts: validate-features {verdict}; pandera and Great Expectations exit 0 (pass)")

    results = [cw, first, ours, pandera, gx]
    print(f"\n{'run':<32}{'rows':>12}{'seconds':>9}{'rows/s':>13}{'peak RSS':>11}{'cores':>7}")
    for r in results:
        r["rows"] = rows
        r["rows_per_s"] = round(rows / r["seconds"])
        print(f"{r['name']:<32}{rows:>12,}{r['seconds']:>9.2f}{r['rows_per_s']:>13,}{r['rss_mib']:>8} MiB{r['cores']:>7}")
    ratios = {
        "share_of_compute_windows": round(ours["seconds"] / cw["seconds"], 3),
        "pandera_over_ours": round(pandera["seconds"] / ours["seconds"], 1),
        "great_expectations_over_ours": round(gx["seconds"] / ours["seconds"], 1),
    }
    print("\nratios (targets: <= 0.25 of compute-windows, >= 10x the peers):")
    for k, v in ratios.items():
        print(f"  {k}: {v}")
    (OUT.parent / "validate-features.json").write_text(json.dumps({"runs": results, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
