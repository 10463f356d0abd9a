//! Helpers for the workspace integration tests: the built binaries, free ports,
//! and real servers started on 127.0.0.1 for the length of a test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repo")
        .to_path_buf()
}

/// A binary of the workspace, built in the same profile as this test
/// (`make test` builds every binary first).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` (make test does)",
        path.display()
    );
    path
}

/// A Python tool from the project's virtualenv (`.venv`, made by `make venv`).
pub fn venv_tool(name: &str) -> PathBuf {
    let path = repo_root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make venv` (.ci/run does)",
        path.display()
    );
    path
}

/// Runs a command that must succeed; returns its stdout (the failure message has both streams).
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Writes generated transactions to `raw` (`args`: `--rows`, `--users`, `--days`, ...).
pub fn generate_transactions(raw: &Path, args: &[&str]) {
    run_ok(
        Command::new(bin("generate-transactions"))
            .args(args)
            .args(["--log-level", "warn", "--output"])
            .arg(raw),
    );
}

/// Waits (up to a minute) until the step writing Argo progress to `file` has done more than
/// `rows`; panics naming `what` when it does not.
pub fn wait_for_progress(file: &Path, rows: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.split('/').next()?.parse::<u64>().ok());
        if done.is_some_and(|d| d > rows) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs compute-windows with the repo's features.yaml from `raw` into `out` (`args`:
/// `--start`, `--end`, ...); returns its stdout.
pub fn compute_windows(raw: &Path, out: &Path, args: &[&str]) -> String {
    run_ok(
        Command::new(bin("compute-windows"))
            .arg("--spec")
            .arg(repo_root().join("features.yaml"))
            .arg("--input")
            .arg(raw)
            .arg("--output")
            .arg(out)
            .args(args),
    )
}

/// Runs materialize-redis on `offline` (features.yaml, `[start, end]`) into `redis`; returns stderr.
pub fn materialize_redis(offline: &Path, redis: &str, start: &str, end: &str) -> String {
    run_ok(
        Command::new(bin("materialize-redis"))
            .arg("--spec")
            .arg(repo_root().join("features.yaml"))
            .arg("--input")
            .arg(offline)
            .args(["--redis", redis, "--start", start, "--end", end, "--log-level", "warn"]),
    )
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Waits (at most 30 s) until `child` listens on `port`; panics, naming `what`, if it exits first.
pub fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    wait_for_port_within(port, child, what, Duration::from_secs(30));
}

/// [`wait_for_port`] with its own limit, for a server slow to start on a loaded machine.
pub fn wait_for_port_within(port: u16, child: &mut Child, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A plain HTTP/1.1 request; returns the status code.
pub fn http(port: u16, method: &str, path: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read response");
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code")
}

/// moto's S3-compatible server on 127.0.0.1, stopped on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let mut child = Command::new(venv_tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        wait_for_port(port, &mut child, "moto_server");
        Moto { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn create_bucket(&self, bucket: &str) {
        let status = http(self.port, "PUT", &format!("/{bucket}"));
        assert_eq!(status, 200, "creating bucket {bucket}");
    }

    /// Store options for `Location::parse_with`.
    pub fn options(&self) -> Vec<(&'static str, String)> {
        vec![
            ("aws_endpoint", self.endpoint()),
            ("aws_allow_http", "true".into()),
            ("aws_region", "us-east-1".into()),
            ("aws_access_key_id", "testing".into()),
            ("aws_secret_access_key", "testing".into()),
        ]
    }

    /// The same as environment variables, for the binaries.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file below `dir`, relative to it, sorted.
pub fn files_below(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).expect("below root").display().to_string());
            }
        }
    }
    let mut out = vec![];
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A real `redis-server` on 127.0.0.1 and a free port, stopped on drop. Its data lives in
/// its own directory; with `aof` every write is fsynced to an append-only file, so a killed
/// server comes back with what it had acknowledged.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::with_args(&[])
    }

    pub fn with_aof() -> RedisServer {
        RedisServer::with_args(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    pub fn with_args(extra: &[&str]) -> RedisServer {
        let port = free_port();
        let dir = tempfile::tempdir().expect("redis dir");
        let mut args: Vec<String> = [
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(dir.path().display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            args,
        };
        server.restart();
        server
    }

    /// Starts the server again (after [`kill`](Self::kill)) on the same port and directory.
    pub fn restart(&mut self) {
        let mut child = Command::new("redis-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server; .ci/run does)");
        wait_for_port(self.port, &mut child, "redis-server");
        // ready once it answers (it may still be loading its append-only file)
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.cli(&["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "redis-server not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    /// SIGKILL, as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `redis-cli` against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every hash below Feast's keys (the featurekit markers left out): key -> field -> value.
    pub fn dump(&self) -> std::collections::BTreeMap<Vec<u8>, std::collections::BTreeMap<Vec<u8>, Vec<u8>>> {
        let client = redis::Client::open(self.url()).expect("client");
        let mut conn = client.get_connection().expect("connect");
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut conn).expect("KEYS");
        let keys: Vec<Vec<u8>> = keys.into_iter().filter(|k| !k.starts_with(b"featurekit:")).collect();
        let mut all = std::collections::BTreeMap::new();
        for chunk in keys.chunks(1000) {
            let mut pipe = redis::pipe();
            for k in chunk {
                pipe.cmd("HGETALL").arg(k);
            }
            let hashes: Vec<std::collections::BTreeMap<Vec<u8>, Vec<u8>>> = pipe.query(&mut conn).expect("HGETALL");
            all.extend(chunk.iter().cloned().zip(hashes));
        }
        all
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tool from the Feast virtualenv (`.venv-feast`, `feast[redis]==0.67.0`, made by `make venv`).
pub fn feast_tool(name: &str) -> PathBuf {
    let path = repo_root().join(".venv-feast/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make venv` (.ci/run does)",
        path.display()
    );
    path
}

/// A local BigQuery (bqemulator, from `.venv-bq`: REST and the Storage Read API over DuckDB)
/// on free loopback ports, started through `tests/bigquery/serve.py` and stopped on drop.
pub struct BigQueryEmulator {
    child: Child,
    pub rest_port: u16,
    pub grpc_port: u16,
    _home: tempfile::TempDir,
}

impl BigQueryEmulator {
    /// The emulator's project.
    pub const PROJECT: &'static str = "demo";

    pub fn start() -> BigQueryEmulator {
        let home = tempfile::tempdir().expect("the emulator's home");
        let (rest_port, grpc_port) = (free_port(), free_port());
        let mut child = Command::new(bigquery_python())
            .arg(repo_root().join("tests/bigquery/serve.py"))
            .arg("--home")
            .arg(home.path())
            .args([
                "--rest-port",
                &rest_port.to_string(),
                "--grpc-port",
                &grpc_port.to_string(),
            ])
            .args(["--project", Self::PROJECT])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bqemulator");
        // the emulator takes about 10 s to start (DuckDB, its SQL translator), longer under load
        wait_for_port_within(rest_port, &mut child, "bqemulator", Duration::from_secs(120));
        wait_for_port_within(grpc_port, &mut child, "bqemulator's gRPC", Duration::from_secs(30));
        BigQueryEmulator {
            child,
            rest_port,
            grpc_port,
            _home: home,
        }
    }

    /// The REST root, extract-bigquery's `--endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/bigquery/v2", self.rest_port)
    }

    /// The Storage Read API's root (gRPC without TLS), extract-bigquery's `--storage-endpoint`.
    pub fn storage_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// Creates a dataset with Google's official client.
    pub fn create_dataset(&self, dataset: &str) {
        self.client(&format!("client.create_dataset({dataset:?}, exists_ok=True)"));
    }

    /// The tables of a dataset.
    pub fn tables(&self, dataset: &str) -> Vec<String> {
        let out = self.client(&format!(
            "print('\\n'.join(t.table_id for t in client.list_tables({dataset:?})))"
        ));
        out.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
    }

    /// Runs Python `code` with `client`, Google's client connected to the emulator; its stdout.
    fn client(&self, code: &str) -> String {
        let script = format!(
            "from google.api_core.client_options import ClientOptions\n\
             from google.auth.credentials import AnonymousCredentials\n\
             from google.cloud import bigquery\n\
             client = bigquery.Client(project={:?}, credentials=AnonymousCredentials(), \
             client_options=ClientOptions(api_endpoint='http://127.0.0.1:{}'))\n{code}\n",
            Self::PROJECT,
            self.rest_port
        );
        run_ok(Command::new(bigquery_python()).args(["-c", &script]))
    }

    /// Loads a Parquet file into `dataset.table` (replaced) with Google's official client.
    pub fn load(&self, table: &str, parquet: &Path) {
        run_ok(
            Command::new(bigquery_python())
                .arg(repo_root().join("tests/bigquery/load.py"))
                .args(["--endpoint", &format!("http://127.0.0.1:{}", self.rest_port)])
                .args(["--project", Self::PROJECT, "--table", table])
                .arg(parquet),
        );
    }
}

impl Drop for BigQueryEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python of `.venv-bq` (bqemulator, google-cloud-bigquery), made by `make venv`.
pub fn bigquery_python() -> PathBuf {
    let path = repo_root().join(".venv-bq/bin/python");
    assert!(
        path.exists(),
        "{} is missing: run `make venv` (.ci/run does)",
        path.display()
    );
    path
}
