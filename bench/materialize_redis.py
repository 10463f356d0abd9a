#!/usr/bin/env python3
"""materialize-redis against the Redis server's own ceiling and against `feast materialize`,
side by side on one local redis-server, the same generated feature rows, one run each.

Usage: bench/materialize_redis.py BIN_DIR [--entities 1000000] [--feast-entities 200000] [--skip-feast]

1. ceiling: `redis-cli --pipe` of a pre-built protocol file holding exactly the HSETs we write
   (built here in Python from Feast's documented encoding, not by our binary);
2. materialize-redis on the same rows into the emptied server; the dataset digests of 1. and 2.
   must be equal (DEBUG DIGEST);
3. reruns of unchanged data: as the pipeline reruns (the fingerprint check), and with the
   fingerprint removed, so that every entity's stored `_ts` is read and nothing is written;
4. `feast materialize` (Feast 0.67, .venv-feast, over publish-registry's registry) of --feast-entities rows, then ours on the same
   rows; both digests must be equal, byte for byte;
5. validate-features --online (the audit) of --audit-entities entities against materialize-redis
   writing the same entities into the emptied server: the audit must find no mismatch and take at
   most a fifth of the write's time.
Prints a table and writes out/bench/materialize-redis.json.
"""
import argparse, json, os, shutil, socket, struct, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "bench" / "materialize-redis"
VIEW = "user_transaction_features"
PROJECT = b"fraud_detection"
# (name, kind, murmur3 x86_32 of "view:name" little-endian: the golden hashes Feast wrote)
FEATURES = [
    ("transaction_count_1h", "int", "48ebbaa1"),
    ("transaction_count_24h", "int", "559c8b59"),
    ("avg_transaction_amount_7d", "float", "dc18cbbf"),
    ("avg_transaction_amount_30d", "float", "81290f41"),
    ("max_transaction_amount_7d", "float", "c5a97b00"),
    ("distinct_merchant_count_7d", "int", "38dfa013"),
]
START, END = "2025-11-01T00:00:00", "2025-11-15T00:00:00"
T0 = 1_761_955_200  # 2025-11-01 UTC, seconds


def generate(path, n, seed):
    """n entities, one row each, with nulls and NaNs, as compute-windows would write them."""
    import numpy as np, pyarrow as pa, pyarrow.parquet as pq
    rng = np.random.default_rng(seed)
    ts = T0 * 1_000_000 + rng.integers(0, 14 * 86_400, n) * 1_000_000 + rng.integers(0, 1_000_000, n)
    cols = {"user_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
            "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC"))}
    for name, kind, _ in FEATURES:
        if kind == "int":
            v = rng.integers(0, 500, n)
            cols[name] = pa.array(v, mask=rng.random(n) < 0.02)
        else:
            v = rng.lognormal(3, 1, n)
            v[rng.random(n) < 0.01] = np.nan
            cols[name] = pa.array(v, mask=rng.random(n) < 0.02)
    cols["created_timestamp"] = pa.array(np.full(n, (T0 + 15 * 86_400) * 1_000_000), pa.timestamp("us", tz="UTC"))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path, row_group_size=256 * 1024)


def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def protocol(parquet, path):
    """The RESP commands of a clean first run: one HSET per entity, as Feast's byte layout says."""
    import pyarrow.parquet as pq, math
    t = pq.read_table(parquet).to_pydict()
    prefix = struct.pack("<III", 1, 2, 7) + b"user_id"
    fields = [bytes.fromhex(h) for _, _, h in FEATURES]
    ts_field = b"_ts:" + VIEW.encode()
    with open(path, "wb") as out:
        for i, user in enumerate(t["user_id"]):
            key = prefix + struct.pack("<IIq", 4, 8, user) + PROJECT
            args = [b"HSET", key]
            for (name, kind, _), field in zip(FEATURES, fields):
                v = t[name][i]
                if v is None or (kind == "float" and math.isnan(v)):
                    val = b""
                elif kind == "int":
                    val = b"\x20" + varint(v)
                else:
                    val = b"\x29" + struct.pack("<d", v)
                args += [field, val]
            ts = t["event_timestamp"][i]
            us = int(ts.timestamp()) * 1_000_000 + ts.microsecond
            sec, nanos = divmod(us, 1_000_000)
            tsv = b"\x08" + varint(sec) + (b"\x10" + varint(nanos * 1000) if nanos else b"")
            args += [ts_field, tsv]
            out.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self):
        self.port = free_port()
        self.dir = OUT / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir), "--enable-debug-command", "yes"],
                                     stdout=subprocess.DEVNULL)
        for _ in range(100):
            if self.cli("PING") == "PONG":
                return
            time.sleep(0.1)
        sys.exit("redis-server did not start")

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True)
        return r.stdout.strip()

    def digest(self):
        """DEBUG DIGEST of the Feast keys (our fingerprint markers removed first)."""
        for k in self.cli("--scan", "--pattern", "featurekit:*").split():
            self.cli("DEL", k)
        return self.cli("DEBUG", "DIGEST"), int(self.cli("DBSIZE"))

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def measure(name, cmd, log, stdin=None, cwd=None):
    start = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=err, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{name} failed ({code}), see {log}")
    return {"name": name, "seconds": round(wall, 3), "rss_mib": round(usage.ru_maxrss / 1024),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2)}


def ours(bin_dir, redis, offline, label, *extra):
    return measure(label, [str(bin_dir / "materialize-redis"), "--spec", str(ROOT / "features.yaml"),
                           "--input", str(offline), "--redis", f"redis://127.0.0.1:{redis.port}",
                           "--start", START, "--end", END, "--log-level", "warn", *extra], OUT / f"{label}.log")


def feast_repo(bin_dir, repo, offline, port):
    """A Feast repo over the same Parquet: publish-registry's registry and a feature_store.yaml."""
    registry = repo / "data" / "registry.db"
    subprocess.run([str(bin_dir / "publish-registry"), "--spec", str(ROOT / "features.yaml"), "--registry", str(registry),
                    "--offline-path", str(offline.resolve()), "--log-level", "warn"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([str(ROOT / ".venv-feast/bin/python"), str(ROOT / "tests/feast/registry_check.py"), "repo",
                    "--repo", str(repo), "--registry", str(registry), "--redis-port", str(port)], check=True)


def prepare(*args):
    """Runs generate/protocol in a child: this driver stays small, so that the peak RSS a
    measured child inherits at fork (before exec) is not the data's."""
    subprocess.run([sys.executable, __file__, "--prepare", *map(str, args)], check=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--prepare":
        what, path, *rest = sys.argv[2:]
        return generate(Path(path), int(rest[0]), int(rest[1])) if what == "generate" else protocol(Path(path), Path(rest[0]))
    ap = argparse.ArgumentParser()
    ap.add_argument("bin_dir", type=Path)
    ap.add_argument("--entities", type=int, default=1_000_000)
    ap.add_argument("--feast-entities", type=int, default=200_000)
    ap.add_argument("--skip-feast", action="store_true")
    ap.add_argument("--audit-entities", type=int, default=100_000)
    a = ap.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    results = []
    n = a.entities
    offline = OUT / "offline"
    print(f"materialize-redis: {n:,} entities, six features plus _ts, one local redis-server")
    prepare("generate", offline / VIEW / "part.parquet", n, 1)
    proto = OUT / "commands.resp"
    prepare("protocol", offline / VIEW / "part.parquet", proto)
    redis = Redis()
    try:
        with open(proto, "rb") as f:
            ceiling = measure("redis-cli --pipe", ["redis-cli", "-p", str(redis.port), "--pipe"], OUT / "pipe.log", stdin=f)
        want = redis.digest()
        redis.cli("FLUSHALL")
        first = ours(a.bin_dir, redis, offline, "materialize-redis")
        rerun = ours(a.bin_dir, redis, offline, "materialize-redis rerun")
        got = redis.digest()  # removes the fingerprint: the next rerun reads every _ts
        rerun_read = ours(a.bin_dir, redis, offline, "materialize-redis rerun, no fingerprint")
        print(f"  digests: redis-cli --pipe {want}, materialize-redis {got}")
        if got != want:
            sys.exit("materialize-redis wrote other bytes than the protocol file")
        for r in (ceiling, first, rerun, rerun_read):
            r["entities"] = n
        results += [ceiling, first, rerun, rerun_read]

        if not a.skip_feast:
            m = a.feast_entities
            small = OUT / "offline-feast"
            prepare("generate", small / VIEW / "part.parquet", m, 2)
            repo = OUT / "feast-repo"
            feast_repo(a.bin_dir, repo, small, redis.port)
            redis.cli("FLUSHALL")
            feast = measure("feast materialize", [str(ROOT / ".venv-feast/bin/feast"), "materialize", START, END],
                            OUT / "feast.log", cwd=repo)
            feast_digest = redis.digest()
            redis.cli("FLUSHALL")
            mine = ours(a.bin_dir, redis, small, "materialize-redis@feast")
            mine_digest = redis.digest()
            print(f"  digests: feast materialize {feast_digest}, materialize-redis {mine_digest}")
            if feast_digest != mine_digest:
                sys.exit("materialize-redis and feast materialize wrote different bytes")
            feast["entities"] = mine["entities"] = m
            results += [feast, mine]

        k = a.audit_entities
        small = OUT / "offline-audit"
        prepare("generate", small / VIEW / "part.parquet", k, 3)
        redis.cli("FLUSHALL")
        written = ours(a.bin_dir, redis, small, "materialize-redis@audit")
        summary = OUT / "audit.json"
        audited = measure("validate-features --online", [
            str(a.bin_dir / "validate-features"), "--spec", str(ROOT / "features.yaml"), "--input", str(small),
            "--online", f"redis://127.0.0.1:{redis.port}", "--start", START, "--end", END,
            "--sample", str(k), "--summary", str(summary), "--log-level", "warn"], OUT / "audit.log")
        s = json.loads(summary.read_text())
        print(f"  audit: {s['online_checked']:,} entities checked, mismatch rate {s['online_mismatch_rate']}")
        if s["online_checked"] != k or s["online_mismatch_rate"] != 0:
            sys.exit("the audit did not check every entity clean")
        written["entities"] = audited["entities"] = k
        results += [written, audited]
    finally:
        redis.stop()

    by = {r["name"]: r for r in results}
    print(f"\n{'run':<42}{'entities':>10}{'seconds':>9}{'entities/s':>12}{'peak RSS':>11}{'CPU s':>7}")
    for r in results:
        r["entities_per_s"] = round(r["entities"] / r["seconds"])
        print(f"{r['name']:<42}{r['entities']:>10,}{r['seconds']:>9.2f}{r['entities_per_s']:>12,}"
              f"{r['rss_mib']:>8} MiB{r['cpu_s']:>7}")
    ratios = {
        "of_redis_cli_pipe": round(ceiling["seconds"] / first["seconds"], 2),
        "first_run_over_rerun": round(first["seconds"] / rerun["seconds"], 1),
        "first_run_over_rerun_without_fingerprint": round(first["seconds"] / rerun_read["seconds"], 1),
        "peak_rss_mib": first["rss_mib"],
    }
    ratios["audit_over_materialize_same_entities"] = round(
        by["validate-features --online"]["seconds"] / by["materialize-redis@audit"]["seconds"], 2)
    if "feast materialize" in by:
        ratios["feast_materialize_over_ours"] = round(by["feast materialize"]["seconds"] / by["materialize-redis@feast"]["seconds"], 1)
    print("\nratios (targets: >= 0.6 of redis-cli --pipe, >= 20x feast, rerun >= 10x, <= 300 MiB, audit <= 0.2):")
    for k, v in ratios.items():
        print(f"  {k}: {v}")
    (OUT.parent / "materialize-redis.json").write_text(json.dumps({"runs": results, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
