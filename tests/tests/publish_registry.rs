//! publish-registry from the shell: concurrent publishers on a file and on an S3-compatible
//! server, publishers killed at random moments, corrupt registries, --check and --dry-run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use featurekit::artifact::Location;
use featurekit_tests::{Moto, bin, repo_root};
use prost::Message;
use publish_registry::merge::split;
use publish_registry::proto::{FeatureView, registry};

/// features.yaml with its view renamed, so that each publisher owns a different view.
fn spec_with_view(dir: &Path, view: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo_root().join("features.yaml")).unwrap();
    let path = dir.join(format!("{view}.yaml"));
    std::fs::write(&path, text.replace("user_transaction_features", view)).unwrap();
    path
}

fn publish(spec: &Path, registry: &str, extra: &[&str], env: &[(&'static str, String)]) -> Output {
    Command::new(bin("publish-registry"))
        .arg("--spec")
        .arg(spec)
        .args(["--registry", registry, "--offline-path", "/data/offline"])
        .args(["--log-format", "text", "--log-level", "warn"])
        .args(extra)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Every feature view in the registry: name -> (interval ends in seconds, state).
fn views(bytes: &[u8]) -> std::collections::BTreeMap<String, (Vec<(i64, i64)>, i32)> {
    split(bytes)
        .unwrap()
        .iter()
        .filter(|f| f.number == registry::FEATURE_VIEWS)
        .map(|f| {
            let v = FeatureView::decode(f.payload()).unwrap();
            let meta = v.meta.unwrap_or_default();
            let intervals = meta
                .materialization_intervals
                .iter()
                .map(|i| (i.start_time.unwrap().seconds, i.end_time.unwrap().seconds))
                .collect();
            (v.spec.unwrap().name, (intervals, meta.state))
        })
        .collect()
}

/// Eight publishers at once, each adding its own view and interval.
fn eight_at_once(dir: &Path, registry: &str, env: &[(&'static str, String)]) {
    let children: Vec<_> = (0..8)
        .map(|k| {
            let spec = spec_with_view(dir, &format!("view_{k}"));
            let day = format!("2025-11-{:02}", k + 1);
            Command::new(bin("publish-registry"))
                .arg("--spec")
                .arg(&spec)
                .args(["--registry", registry, "--offline-path", "/data/offline"])
                .args(["--materialized", &day, &format!("{day}T12:00:00Z")])
                .args(["--log-format", "text", "--log-level", "warn"])
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

fn check_all_eight(bytes: &[u8]) {
    let views = views(bytes);
    assert_eq!(views.len(), 8, "{:?}", views.keys());
    for k in 0..8 {
        let (intervals, state) = &views[&format!("view_{k}")];
        let start = 1_761_955_200 + k as i64 * 86_400; // 2025-11-01 + k days
        assert_eq!(intervals, &vec![(start, start + 43_200)], "view_{k}");
        assert_eq!(*state, 4, "AVAILABLE_ONLINE");
    }
}

#[test]
fn eight_concurrent_publishers_on_a_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("data/registry.db");
    eight_at_once(dir.path(), registry.to_str().unwrap(), &[]);
    check_all_eight(&std::fs::read(&registry).unwrap());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn eight_concurrent_publishers_on_s3() {
    let moto = Moto::start();
    moto.create_bucket("registry");
    let dir = tempfile::tempdir().unwrap();
    eight_at_once(dir.path(), "s3://registry/feast/registry.db", &moto.env());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let options: Vec<(&str, String)> = moto.options();
    let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let loc = Location::parse_with("s3://registry/feast/registry.db", &options).unwrap();
    let bytes = rt.block_on(loc.read()).unwrap();
    check_all_eight(&bytes);
}

#[test]
fn a_publisher_killed_at_any_moment_leaves_a_whole_registry() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.db");
    let base = spec_with_view(dir.path(), "base");
    ok(publish(&base, registry.to_str().unwrap(), &[], &[]));
    for k in 0..30u64 {
        let spec = spec_with_view(dir.path(), &format!("v{k}"));
        let mut child = Command::new(bin("publish-registry"))
            .arg("--spec")
            .arg(&spec)
            .args([
                "--registry",
                registry.to_str().unwrap(),
                "--offline-path",
                "/data/offline",
            ])
            .args(["--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(k * 300));
        let _ = child.kill();
        let _ = child.wait();
        // whatever the moment, the registry is a whole one: the old or the new
        let bytes = std::fs::read(&registry).unwrap();
        let views = views(&bytes);
        assert!(views.contains_key("base"), "kill {k}: {views:?}");
    }
}

#[test]
fn a_corrupt_or_truncated_registry_is_an_error_and_stays_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let spec = repo_root().join("features.yaml");
    for (name, bytes) in [
        ("garbage.db", &b"\x0a\xff\xff\xff\x0fnot a registry"[..]),
        ("empty.db", &b""[..]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = publish(&spec, path.to_str().unwrap(), &[], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{stderr}");
        assert!(stderr.contains(name), "names the registry: {stderr}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "never replaced");
    }
}

#[test]
fn check_and_dry_run_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.db");
    let reg = registry.to_str().unwrap();
    let spec = repo_root().join("features.yaml");
    let out = ok(publish(&spec, reg, &["--dry-run"], &[]));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("Created feature view user_transaction_features"),
        "{plan}"
    );
    assert!(!registry.exists(), "a dry run writes nothing");
    let out = publish(&spec, reg, &["--check"], &[]);
    assert_eq!(out.status.code(), Some(65), "a missing registry differs");
    ok(publish(&spec, reg, &["--workflow", "wf-1", "--rows", "10"], &[]));
    let written = std::fs::read(&registry).unwrap();
    ok(publish(&spec, reg, &["--check"], &[]));
    // a rerun of the same spec does not touch the file (lineage aside)
    ok(publish(&spec, reg, &["--workflow", "wf-1", "--rows", "10"], &[]));
    assert_eq!(std::fs::read(&registry).unwrap(), written, "nothing to write");
    // drift: a changed ttl
    let drifted = dir.path().join("drifted.yaml");
    let text = std::fs::read_to_string(&spec).unwrap().replace("ttl: 30d", "ttl: 7d");
    std::fs::write(&drifted, text).unwrap();
    let out = publish(&drifted, reg, &["--check"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(
        stderr.contains("update feature view user_transaction_features"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Updated feature view user_transaction_features: ttl"));
    let out = ok(publish(&drifted, reg, &["--dry-run"], &[]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ttl"));
    assert_eq!(std::fs::read(&registry).unwrap(), written);
}
