//! The step images (images/Dockerfile, built by images/build.sh around the static binaries of
//! `make image-bins`) against a real Docker engine: each builds, is small, holds one layer and
//! no shell, runs as uid 65532 on a read-only root without capabilities; the whole pipeline runs
//! one container per step and the real Feast 0.67 reads what the containers wrote; `docker stop`
//! mid-run exits 143 and leaves nothing; every image survives a push to a real registry and a
//! pull by digest.
//!
//! Where no Docker engine answers these tests say so in one line and pass; under `CI=true` a
//! missing engine, `docker-registry` or `skopeo` fails them.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use featurekit_tests::{
    BigQueryEmulator, RedisServer, feast_tool, files_below, free_port, generate_transactions, http, repo_root, run_ok,
    wait_for_progress,
};
use serde_json::Value;

/// An image's uncompressed size may not exceed this, 25 MiB (the usual python:3.11-slim image with pandas
/// and Feast is about 1 GB).
const MAX_IMAGE_BYTES: u64 = 25 << 20;
/// Every step's image runs as this user and group.
const NONROOT: &str = "65532:65532";
/// The steps share the workspace's version; `--version` and the label must say it.
const VERSION: &str = env!("CARGO_PKG_VERSION");
const SPEC: &str = "/spec/features.yaml";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A line the test harness does not capture (skips and sizes must be seen in `make test`).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Whether a Docker engine answers; outside CI a missing one is said once and skips the tests.
fn engine() -> bool {
    static ANSWERS: OnceLock<bool> = OnceLock::new();
    *ANSWERS.get_or_init(|| {
        let why = match Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output()
        {
            Ok(out) if out.status.success() => return true,
            Ok(out) => String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
            Err(e) => format!("docker: {e}"),
        };
        assert!(!ci(), "CI=true and no Docker engine answers (`docker info`: {why})");
        say(&format!(
            "images: skipped the image tests: no Docker engine answers (`docker info`: {why})"
        ));
        false
    })
}

/// A tool the push test needs (Debian packages `docker-registry`, `skopeo`); outside CI a
/// missing one skips that test.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            !ci(),
            "CI=true and {name} is missing (apt-get install {name}; .ci/run does)"
        );
        say(&format!(
            "images: skipped the push test: {name} is missing (apt-get install {name})"
        ));
    }
    found
}

/// The images as images/build.sh tagged them: built once for every test here.
struct Images {
    steps: Vec<String>,
    /// `:<git short sha>`, with `-dirty` when tracked files differ from HEAD, as build.sh tags
    sha_tag: String,
    revision: String,
}

impl Images {
    fn image(step: &str) -> String {
        format!("featurekit/{step}:{VERSION}")
    }
}

fn git(args: &[&str]) -> String {
    run_ok(Command::new("git").arg("-C").arg(repo_root()).args(args))
        .trim()
        .to_string()
}

fn images() -> Option<&'static Images> {
    static BUILT: OnceLock<Images> = OnceLock::new();
    if !engine() {
        return None;
    }
    Some(BUILT.get_or_init(|| {
        let root = repo_root();
        // the Makefile's list (IMAGE_STEPS) is the one place that says which steps have an image
        let steps: Vec<String> = serde_json::from_str(&run_ok(
            Command::new("make").args(["-s", "image-steps"]).current_dir(&root),
        ))
        .expect("make image-steps prints a JSON list");
        assert!(steps.contains(&"compute-windows".to_string()), "{steps:?}");
        let bin_dir = root.join(format!("target/{}-unknown-linux-gnu/release", std::env::consts::ARCH));
        for step in &steps {
            assert!(
                bin_dir.join(step).exists(),
                "{} is not built: run `make image-bins` (make test and make images-test do)",
                bin_dir.join(step).display()
            );
        }
        let dirty = !Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(["diff", "--quiet", "HEAD"])
            .status()
            .expect("git diff")
            .success();
        let suffix = if dirty { "-dirty" } else { "" };
        let said = run_ok(Command::new(root.join("images/build.sh")).arg(&bin_dir).args(&steps));
        say(&format!("images: built by images/build.sh\n{said}"));
        Images {
            sha_tag: format!("{}{suffix}", git(&["rev-parse", "--short", "HEAD"])),
            revision: format!("{}{suffix}", git(&["rev-parse", "HEAD"])),
            steps,
        }
    }))
}

fn inspect(what: &str, name: &str) -> Value {
    let out = run_ok(Command::new("docker").args([what, "inspect", name]));
    let all: Value = serde_json::from_str(&out).expect("docker inspect JSON");
    all[0].clone()
}

/// The description Cargo.toml gives the step's crate (the image's description label).
fn crate_description(step: &str) -> String {
    let manifest = std::fs::read_to_string(repo_root().join("steps").join(step).join("Cargo.toml")).unwrap();
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("description = \"")?.strip_suffix('"'))
        .expect("a description in the step's Cargo.toml")
        .to_string()
}

fn check_labels(step: &str, labels: &Value, revision: &str) {
    let label = |k: &str| {
        labels[format!("org.opencontainers.image.{k}")]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(label("version"), VERSION, "{step}: {labels}");
    assert_eq!(label("revision"), revision, "{step}: {labels}");
    assert_eq!(label("licenses"), "Apache-2.0", "{step}: {labels}");
    assert_eq!(label("description"), crate_description(step), "{step}: {labels}");
    assert!(
        label("source").starts_with("https://") || label("source").starts_with("file:///"),
        "{step}: {labels}"
    );
}

#[test]
fn every_image_is_small_labelled_one_layer_and_has_no_shell() {
    let Some(images) = images() else { return };
    for step in &images.steps {
        let image = Images::image(step);
        let info = inspect("image", &image);
        let bytes = info["Size"].as_u64().expect("Size");
        say(&format!(
            "images: {image} is {:.1} MB ({bytes} bytes)",
            bytes as f64 / 1e6
        ));
        assert!(
            bytes <= MAX_IMAGE_BYTES,
            "{image} is {bytes} bytes, over {MAX_IMAGE_BYTES}"
        );
        let config = &info["Config"];
        assert_eq!(config["User"], NONROOT, "{image}");
        assert_eq!(config["Entrypoint"], serde_json::json!([format!("/{step}")]), "{image}");
        assert_eq!(
            info["RootFS"]["Layers"].as_array().map(Vec::len),
            Some(1),
            "{image}: one layer"
        );
        check_labels(step, &config["Labels"], &images.revision);
        let by_sha = inspect("image", &format!("featurekit/{step}:{}", images.sha_tag));
        assert_eq!(by_sha["Id"], info["Id"], "{step}: the sha tag names the same image");
        // no shell, nothing but the binary to run
        let out = Command::new("docker")
            .args([
                "run",
                "--rm",
                "--network",
                "none",
                "--entrypoint",
                "/bin/sh",
                &image,
                "-c",
                "true",
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{image} has a shell");
        assert_eq!(out.status.code(), Some(127), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// `docker run` as Argo's pods should run a step: read-only root, no capabilities, no privilege
/// gain, a tmpfs for scratch; the image's own user (65532).
fn docker_run() -> Command {
    let mut cmd = Command::new("docker");
    cmd.args([
        "run",
        "--rm",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--tmpfs",
        "/tmp:rw,size=64m",
        "-e",
        "FEATUREKIT_LOG_LEVEL=warn",
    ]);
    cmd
}

#[test]
fn every_image_runs_help_and_version_locked_down() {
    let Some(images) = images() else { return };
    for step in &images.steps {
        let image = Images::image(step);
        let help = run_ok(docker_run().args(["--network", "none", &image, "--help"]));
        assert!(help.contains(&format!("Usage: {step}")), "{image} --help: {help}");
        assert!(
            help.contains("FEATUREKIT_"),
            "{image} --help names the env twins: {help}"
        );
        let version = run_ok(docker_run().args(["--network", "none", &image, "--version"]));
        assert_eq!(version.trim(), format!("{step} {VERSION}"), "{image} --version");
    }
}

/// A work directory the containers (uid 65532) can write and the host can read.
fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// A step's container over the work directory (`/artifacts`) and the repo's spec (`/spec`);
/// `docker` are further `docker run` options (the network, a name).
fn step(step: &str, work: &Path, docker: &[&str]) -> Command {
    let mut cmd = docker_run();
    cmd.args(docker)
        .arg("-v")
        .arg(format!("{}:/artifacts", work.display()))
        .arg("-v")
        .arg(format!("{}:{SPEC}:ro", repo_root().join("features.yaml").display()))
        .arg(Images::image(step));
    cmd
}

fn summary(work: &Path, name: &str) -> Value {
    let path = work.join(name);
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(s["exit_code"], 0, "{}: {s}", path.display());
    s
}

#[test]
fn the_pipeline_runs_one_container_per_step_and_feast_reads_it() {
    let Some(_) = images() else { return };
    let dir = shared_dir();
    let work = dir.path();
    // the demo's days (scripts/demo.sh): 30 days of lookback, then the day the pipeline runs for
    let (start, day, next) = ("2025-10-01", "2025-11-14", "2025-11-15");
    let source = work.join("source/transactions.parquet");
    generate_transactions(
        &source,
        &["--rows", "100000", "--users", "5001", "--days", "45", "--start", start],
    );
    // the raw events come from BigQuery: a local emulator on the host's loopback
    let bigquery = BigQueryEmulator::start();
    bigquery.load("raw.transactions", &source);
    std::fs::write(
        work.join("transactions.sql"),
        "SELECT user_id, event_timestamp, amount, merchant_id FROM `demo.raw.transactions`\n\
         WHERE event_timestamp >= @start AND event_timestamp < @end\n",
    )
    .unwrap();
    let endpoint = bigquery.endpoint();
    run_ok(step("extract-bigquery", work, &["--network", "host"]).args([
        "--spec",
        SPEC,
        "--project",
        BigQueryEmulator::PROJECT,
        "--anonymous",
        "--endpoint",
        &endpoint,
        "--query-file",
        "/artifacts/transactions.sql",
        "--start",
        day,
        "--end",
        next,
        "--output",
        "/artifacts/raw",
        "--summary",
        "/artifacts/extract-bigquery.json",
    ]));
    let extracted = summary(work, "extract-bigquery.json");
    assert_eq!(
        extracted["days_fetched"].as_array().map(Vec::len),
        Some(31),
        "{extracted}"
    );

    let none = ["--network", "none"];
    run_ok(step("compute-windows", work, &none).args([
        "--spec",
        SPEC,
        "--input",
        "/artifacts/raw/",
        "--output",
        "/artifacts/offline",
        "--start",
        day,
        "--end",
        next,
        "--summary",
        "/artifacts/compute-windows.json",
    ]));
    let computed = summary(work, "compute-windows.json");
    let rows_out = computed["rows_out"].as_u64().unwrap();
    assert!(rows_out > 1000, "{computed}");
    // the files are the container user's: the step ran as 65532
    let files = files_below(&work.join("offline"));
    assert!(!files.is_empty());
    for f in &files {
        let meta = std::fs::metadata(work.join("offline").join(f)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65532, 65532), "{f}");
    }

    // the day before, as yesterday's run left it, and its profile: the baseline
    run_ok(step("compute-windows", work, &none).args([
        "--spec",
        SPEC,
        "--input",
        "/artifacts/raw/",
        "--output",
        "/artifacts/offline",
        "--start",
        "2025-11-13",
        "--end",
        day,
        "--created-at",
        "2025-11-14T01:00:00Z",
    ]));
    run_ok(step("validate-features", work, &none).args([
        "--spec",
        SPEC,
        "--input",
        "/artifacts/offline",
        "--start",
        "2025-11-13",
        "--end",
        day,
        "--no-baseline",
        "--profile-out",
        "/artifacts/validate/baseline.json",
    ]));
    let rows = rows_out.to_string();
    run_ok(step("validate-features", work, &none).args([
        "--spec",
        SPEC,
        "--input",
        "/artifacts/offline",
        "--start",
        day,
        "--end",
        next,
        "--baseline",
        "/artifacts/validate/baseline.json",
        "--expected-rows",
        &rows,
        "--report",
        "/artifacts/validate/report",
        "--profile-out",
        "/artifacts/validate/profile.json",
        "--summary",
        "/artifacts/validate-features.json",
    ]));
    let validated = summary(work, "validate-features.json");
    assert_eq!(validated["status"], "pass", "{validated}");
    assert!(work.join("validate/report/report.html").exists());

    // Redis on the host's loopback: the one container that needs a network gets the host's
    let redis = RedisServer::start();
    let materialize = |name: &str| {
        let summary_path = format!("/artifacts/{name}");
        run_ok(step("materialize-redis", work, &["--network", "host"]).args([
            "--spec",
            SPEC,
            "--input",
            "/artifacts/offline",
            "--redis",
            &redis.url(),
            "--start",
            day,
            "--end",
            next,
            "--summary",
            &summary_path,
        ]));
        summary(work, name)
    };
    let first = materialize("materialize-redis.json");
    let written = first["entities_written"].as_u64().unwrap();
    assert!(written > 1000, "{first}");
    let rerun = materialize("materialize-redis-rerun.json");
    assert_eq!(rerun["entities_written"], 0, "a rerun writes nothing: {rerun}");

    std::fs::create_dir_all(work.join("feast")).unwrap();
    std::fs::set_permissions(work.join("feast"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let plan = run_ok(step("publish-registry", work, &none).args([
        "--spec",
        SPEC,
        "--registry",
        "/artifacts/feast/registry.db",
        "--offline-path",
        "/artifacts/offline",
        "--materialized",
        day,
        next,
        "--summary",
        "/artifacts/publish-registry.json",
    ]));
    assert!(plan.contains("user_transaction_features"), "{plan}");
    summary(work, "publish-registry.json");

    // the real Feast, on the host, over what the containers wrote
    let repo = work.join("repo");
    let registry_check = repo_root().join("tests/feast/registry_check.py");
    let port = redis.port.to_string();
    run_ok(
        Command::new(feast_tool("python"))
            .arg(&registry_check)
            .args(["repo", "--repo"])
            .arg(&repo)
            .arg("--registry")
            .arg(work.join("feast/registry.db"))
            .args(["--redis-port", &port]),
    );
    let listed = run_ok(
        Command::new(feast_tool("python"))
            .arg(&registry_check)
            .args(["lists", "--repo"])
            .arg(&repo),
    );
    assert!(listed.contains("user_transaction_features"), "{listed}");
    let said = run_ok(
        Command::new(feast_tool("python"))
            .arg(repo_root().join("tests/feast/online_check.py"))
            .args(["check", "--repo"])
            .arg(&repo)
            .arg("--offline")
            .arg(work.join("offline"))
            .args([
                "--start",
                &format!("{day}T00:00:00Z"),
                "--end",
                &format!("{next}T00:00:00Z"),
            ])
            .args(["--entities", "1000"]),
    );
    println!("{said}");
    assert!(
        said.contains("1000 entities (") && said.contains(" 0 differences"),
        "{said}"
    );
}

#[test]
fn docker_stop_mid_run_exits_143_and_leaves_no_output() {
    let Some(_) = images() else { return };
    let dir = shared_dir();
    let work = dir.path();
    generate_transactions(
        &work.join("raw/transactions.parquet"),
        &["--rows", "8000000", "--users", "400000", "--days", "40"],
    );
    let name = format!("featurekit-test-stop-{}", std::process::id());
    let docker = [
        "--network",
        "none",
        "--name",
        &name,
        "-e",
        "ARGO_PROGRESS_FILE=/artifacts/progress",
    ];
    let child = step("compute-windows", work, &docker)
        .args([
            "--spec",
            SPEC,
            "--input",
            "/artifacts/raw/",
            "--output",
            "/artifacts/offline",
            "--start",
            "2025-11-01",
            "--end",
            "2025-12-10",
            "--summary",
            "/artifacts/summary.json",
            // one worker: the signal comes after its first partition, with most rows to go
            "--threads",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_progress(&work.join("progress"), 0, "compute-windows in its container");
    run_ok(Command::new("docker").args(["stop", "--time", "30", &name]));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let progress = std::fs::read_to_string(work.join("progress")).unwrap_or_default();
    let (done, total) = progress.trim().split_once('/').expect("N/M progress");
    assert!(
        done.parse::<u64>().unwrap() < total.parse::<u64>().unwrap(),
        "stopped too late: {progress}"
    );
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    let s: Value = serde_json::from_str(&std::fs::read_to_string(work.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        (s["status"].as_str(), s["exit_code"].as_i64()),
        (Some("interrupted"), Some(143)),
        "{s}"
    );
    // not a file, not even a hidden temporary one
    assert_eq!(files_below(&work.join("offline")), Vec::<String>::new(), "left behind");
}

/// Debian's `docker-registry` (the CNCF distribution registry) on a free loopback port, stopped
/// on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(binary: &Path) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        featurekit_tests::wait_for_port(port, &mut child, "docker-registry");
        assert_eq!(http(port, "GET", "/v2/"), 200, "the registry's API answers");
        Registry { child, port, _dir: dir }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes the tags a test gave images, whatever happens.
struct Untag(Vec<String>);

impl Drop for Untag {
    fn drop(&mut self) {
        for tag in &self.0 {
            let _ = Command::new("docker").args(["rmi", tag]).output();
        }
    }
}

#[test]
fn every_image_is_pushed_pulled_by_digest_and_inspected_by_skopeo() {
    let Some(images) = images() else { return };
    let (Some(registry_bin), Some(skopeo)) = (tool("docker-registry"), tool("skopeo")) else {
        return;
    };
    let registry = Registry::start(&registry_bin);
    let host = format!("127.0.0.1:{}", registry.port);
    let mut untag = Untag(vec![]);
    for step in &images.steps {
        let local = Images::image(step);
        let remote = format!("{host}/featurekit/{step}:{VERSION}");
        run_ok(Command::new("docker").args(["tag", &local, &remote]));
        untag.0.push(remote.clone());
        run_ok(Command::new("docker").args(["push", &remote]));
        let pushed = inspect("image", &remote);
        let repo_digest = pushed["RepoDigests"]
            .as_array()
            .and_then(|ds| ds.iter().filter_map(Value::as_str).find(|d| d.starts_with(&host)))
            .unwrap_or_else(|| panic!("no digest from {host} for {remote}: {pushed}"))
            .to_string();
        let digest = repo_digest.split_once('@').unwrap().1.to_string();

        // pulled back by digest: the same image
        run_ok(Command::new("docker").args(["rmi", &remote]));
        untag.0.pop();
        run_ok(Command::new("docker").args(["pull", &repo_digest]));
        untag.0.push(repo_digest.clone());
        assert_eq!(
            inspect("image", &repo_digest)["Id"],
            inspect("image", &local)["Id"],
            "{repo_digest}"
        );

        let at = format!("docker://{repo_digest}");
        let manifest: Value = serde_json::from_str(&run_ok(Command::new(&skopeo).args([
            "inspect",
            "--tls-verify=false",
            &at,
        ])))
        .unwrap();
        assert_eq!(manifest["Digest"], digest.as_str(), "{manifest}");
        check_labels(step, &manifest["Labels"], &images.revision);
        let layers = manifest["Layers"].as_array().expect("Layers");
        assert_eq!(layers.len(), 1, "{step}: one layer: {manifest}");
        let config: Value = serde_json::from_str(&run_ok(Command::new(&skopeo).args([
            "inspect",
            "--config",
            "--tls-verify=false",
            &at,
        ])))
        .unwrap();
        assert_eq!(config["config"]["User"], NONROOT, "{config}");
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!([format!("/{step}")]),
            "{config}"
        );

        // the layer holds the binary, the CA bundle and the user, nothing else
        let copy = tempfile::tempdir().unwrap();
        let dest = format!("dir:{}", copy.path().join("image").display());
        run_ok(Command::new(&skopeo).args(["copy", "--src-tls-verify=false", &at, &dest]));
        let layer = copy
            .path()
            .join("image")
            .join(layers[0].as_str().unwrap().trim_start_matches("sha256:"));
        let listing = run_ok(Command::new("tar").arg("-tvzf").arg(&layer));
        let files: BTreeMap<String, String> = listing
            .lines()
            .filter(|l| !l.starts_with('d'))
            .map(|l| {
                let name = l
                    .split_whitespace()
                    .last()
                    .unwrap()
                    .trim_start_matches("./")
                    .to_string();
                (name, l[..10].to_string())
            })
            .collect();
        let names: Vec<&str> = files.keys().map(String::as_str).collect();
        let mut want = vec![
            "etc/group",
            "etc/passwd",
            "etc/ssl/certs/ca-certificates.crt",
            step.as_str(),
        ];
        want.sort_unstable();
        assert_eq!(names, want, "{step}: {listing}");
        let executable: Vec<&str> = files
            .iter()
            .filter(|(_, mode)| mode.contains('x'))
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(executable, [step.as_str()], "{step}: one executable: {listing}");
        say(&format!(
            "images: pushed, pulled by digest and inspected {repo_digest} (1 layer, user {NONROOT})"
        ));
    }
}
