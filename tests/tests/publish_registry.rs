//! publish-registry from the shell: concurrent publishers on a file and on an S3-compatible
//! server, publishers killed at random moments, corrupt registries, --check and --dry-run, and
//! fields a newer Feast added inside our objects.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use featurekit::artifact::Location;
use featurekit_tests::{Moto, bin, feast_tool, repo_root, run_ok};
use prost::Message;
use publish_registry::merge::{Field, split};
use publish_registry::proto::{DataSource, Entity, FeatureView, registry};

/// features.yaml with its view renamed, so that each publisher owns a different view.
fn spec_with_view(dir: &Path, view: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo_root().join("features.yaml")).unwrap();
    let path = dir.join(format!("{view}.yaml"));
    std::fs::write(&path, text.replace("user_transaction_features", view)).unwrap();
    path
}

fn publish(spec: &Path, registry: &str, extra: &[&str], env: &[(&'static str, String)]) -> Output {
    publish_over(spec, registry, "/data/offline", extra, env)
}

fn publish_over(spec: &Path, registry: &str, offline: &str, extra: &[&str], env: &[(&'static str, String)]) -> Output {
    Command::new(bin("publish-registry"))
        .arg("--spec")
        .arg(spec)
        .args(["--registry", registry, "--offline-path", offline])
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

/// A newer Feast, played by Feast 0.67's own generated protos: `add REGISTRY TAG PATH...` parses
/// the registry, adds to each message at PATH a length-delimited field 4242 and a varint field
/// 4243 (numbers no Feast message has, so they are unknown fields to every reader), writes it
/// back and prints what it added; `check REPO REGISTRY ADDED` parses the registry, finds those
/// unknown fields at each PATH, and reads our objects with Feast's SDK from the repo REPO.
/// A PATH is `kind/name`, then attributes; `attr=NAME` picks an element by name, `attr#I` by
/// index.
const NEWER_FEAST: &str = r##"
import json, sys
from pathlib import Path
from feast.protos.feast.core.Registry_pb2 import Registry
from google.protobuf.unknown_fields import UnknownFieldSet

MARK = 4242

def varint(n):
    out = b""
    while n > 0x7F:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])

def marks(tag, path, k):
    return {(MARK, 2, f"{tag} {path}".encode()), (MARK + 1, 0, k)}

def encode(fields):
    raw = b""
    for number, wire, data in sorted(fields):
        raw += varint(number << 3 | wire)
        raw += varint(len(data)) + data if wire == 2 else varint(data)
    return raw

def message_at(reg, path):
    kind, name, *attrs = path.split("/")
    named = lambda o: o.name if kind == "data_sources" else o.spec.name
    m = next(o for o in getattr(reg, kind) if named(o) == name)
    for a in attrs:
        field, _, key = a.partition("=")
        field, _, index = field.partition("#")
        m = getattr(m, field)
        m = next(x for x in m if x.name == key) if key else m[int(index)] if index else m
    return m

def unknown(m):
    return {(f.field_number, f.wire_type, f.data) for f in UnknownFieldSet(m)}

def read(path):
    reg = Registry()
    reg.ParseFromString(Path(path).read_bytes())
    return reg

def add(registry, tag, *paths):
    reg, added = read(registry), []
    for k, path in enumerate(paths):
        m, fields = message_at(reg, path), marks(tag, path, k)
        m.MergeFromString(encode(fields))
        assert unknown(m) >= fields, path
        added.append({"path": path, "tag": tag, "k": k, "raw": encode(fields).hex()})
    Path(registry).write_bytes(reg.SerializeToString())
    print(json.dumps(added))

def check(repo, registry, added):
    from feast import FeatureStore
    reg = read(registry)
    for a in json.loads(added):
        got = unknown(message_at(reg, a["path"]))
        if not got >= marks(a["tag"], a["path"], a["k"]):
            sys.exit(f"{a['path']}: the fields added there are gone: {got}")
    store = FeatureStore(repo_path=repo)
    view = store.get_feature_view("user_transaction_features")
    entity, source = store.get_entity("user"), store.get_data_source("user_transaction_features_source")
    store.get_entity("user_id"), store.get_data_source("user_transactions_source")  # Feast's own
    print(f"Feast reads {view.name} ({len(view.features)} features), {entity.name}, {source.path}")

globals()[sys.argv[1]](*sys.argv[2:])
"##;

fn newer_feast(args: &[&str]) -> String {
    run_ok(Command::new(feast_tool("python")).arg("-c").arg(NEWER_FEAST).args(args))
}

/// Each path `newer_feast add` reported adding fields at, with their raw bytes.
fn added_fields(json: &str) -> Vec<(String, Vec<u8>)> {
    let added: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
    let bytes = |hex: &str| {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    };
    added
        .iter()
        .map(|a| (a["path"].to_string(), bytes(a["raw"].as_str().unwrap())))
        .collect()
}

/// The raw fields of our entity and data source (not Feast's `user_id` and
/// `user_transactions_source`).
fn our_entity_and_source(bytes: &[u8]) -> Vec<Vec<u8>> {
    let ours = |f: &Field| match f.number {
        registry::ENTITIES => Entity::decode(f.payload()).unwrap().spec.unwrap().name == "user",
        registry::DATA_SOURCES => DataSource::decode(f.payload()).unwrap().name == "user_transaction_features_source",
        _ => false,
    };
    split(bytes).unwrap().into_iter().filter(ours).map(|f| f.raw).collect()
}

#[test]
fn fields_a_newer_feast_added_inside_our_objects_survive_a_merge() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.db");
    let reg = registry.to_str().unwrap();
    let fixture = repo_root().join("tests/fixtures/feast-0.67/registry_after_materialize.db");
    std::fs::copy(fixture, &registry).unwrap();
    let view = "feature_views/user_transaction_features";
    let (entity, source) = ("entities/user", "data_sources/user_transaction_features_source");
    // inside the view Feast wrote, which the first publish takes over, and Feast's own objects
    let mut added = vec![newer_feast(&[
        "add",
        reg,
        "feast",
        view,
        &format!("{view}/spec"),
        &format!("{view}/spec/features=transaction_count_1h"),
        &format!("{view}/spec/entity_columns=user_id"),
        &format!("{view}/spec/ttl"),
        &format!("{view}/meta"),
        &format!("{view}/meta/materialization_intervals#0"),
        "entities/user_id/spec",
        "data_sources/user_transactions_source/file_options",
    ])];
    let spec = repo_root().join("features.yaml");
    ok(publish(
        &spec,
        reg,
        &["--materialized", "2025-11-01", "2025-11-02"],
        &[],
    ));
    // inside the entity, the data source and the view's source publish-registry wrote
    added.push(newer_feast(&[
        "add",
        reg,
        "ours",
        entity,
        &format!("{entity}/spec"),
        &format!("{entity}/meta"),
        source,
        &format!("{source}/file_options"),
        &format!("{source}/meta"),
        &format!("{view}/spec/batch_source"),
        &format!("{view}/spec/batch_source/file_options"),
        &format!("{view}/meta/materialization_intervals#1"),
    ]));
    // a spec that changes all three: the entity's description, the sources' path, the intervals
    let changed = dir.path().join("changed.yaml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&changed, text.replace("A card holder", "A card holder, renamed")).unwrap();
    let out = ok(publish_over(
        &changed,
        reg,
        "/data/elsewhere",
        &["--materialized", "2025-11-05", "2025-11-06"],
        &[],
    ));
    let plan = String::from_utf8_lossy(&out.stdout);
    for object in [
        "entity user",
        "data source user_transaction_features_source",
        "feature view",
    ] {
        assert!(plan.contains(&format!("Updated {object}")), "{plan}");
    }
    let merged = std::fs::read(&registry).unwrap();
    for (path, raw) in added.iter().flat_map(|json| added_fields(json)) {
        let kept = merged.windows(raw.len()).any(|w| w == raw);
        assert!(kept, "the fields added at {path} are gone");
    }
    // each where it was, and the real Feast reads the registry
    let repo = dir.path().join("repo");
    run_ok(
        Command::new(feast_tool("python"))
            .arg(repo_root().join("tests/feast/registry_check.py"))
            .args(["repo", "--repo", repo.to_str().unwrap(), "--registry", reg])
            .args(["--redis-port", "6379"]),
    );
    let all: Vec<serde_json::Value> = added
        .iter()
        .flat_map(|j| serde_json::from_str::<Vec<_>>(j).unwrap())
        .collect();
    let all = serde_json::to_string(&all).unwrap();
    let read = newer_feast(&["check", repo.to_str().unwrap(), reg, &all]);
    assert!(
        read.contains("Feast reads user_transaction_features (6 features)"),
        "{read}"
    );
    // a publish that changes the view only leaves the entity and the source as they were
    ok(publish_over(
        &changed,
        reg,
        "/data/elsewhere",
        &["--materialized", "2025-11-08", "2025-11-09"],
        &[],
    ));
    let again = std::fs::read(&registry).unwrap();
    assert_ne!(again, merged, "the new interval is written");
    assert_eq!(our_entity_and_source(&again), our_entity_and_source(&merged));
    assert_eq!(our_entity_and_source(&merged).len(), 2);
}
