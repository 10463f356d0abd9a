//! workflows/: the Argo YAML is valid (strict schema, cross-references, the controller's rules,
//! for the base and each kustomize overlay, against Argo v4.1.2 and v3.7.18), cannot drift from
//! the CLIs (every container's command line parses with that step's clap parser), and runs: the
//! harness (tests/argo/harness.py) executes feature-pipeline as Argo would with the real binaries,
//! a real redis-server and the real Feast 0.67 reading the result.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use featurekit_tests::{
    BigQueryEmulator, RedisServer, bin, feast_tool, generate_transactions, repo_root, run_ok, venv_tool,
};
use prost::Message;
use publish_registry::merge::split;
use publish_registry::proto::{FeatureView, registry};

const SCHEMAS: [&str; 2] = ["argo-v4.1.2.json", "argo-v3.7.18.json"];

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// `kubectl kustomize DIR` into a file, or None (said once) when kubectl is missing outside CI.
fn kustomize(dir: &str, out: &Path) -> Option<PathBuf> {
    let result = Command::new("kubectl")
        .args(["kustomize"])
        .arg(repo_root().join(dir))
        .output();
    match result {
        Ok(o) if o.status.success() => {
            std::fs::write(out, &o.stdout).unwrap();
            Some(out.to_path_buf())
        }
        Ok(o) => panic!("kubectl kustomize {dir}: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            assert!(
                !ci(),
                "CI=true and kubectl is missing ({e}): the overlays cannot be built"
            );
            say(&format!(
                "workflows: skipped kustomize of {dir}: kubectl not found ({e})"
            ));
            None
        }
    }
}

fn check(files: &[PathBuf], schema: &str) -> (bool, String) {
    let out = Command::new(venv_tool("python"))
        .arg(repo_root().join("tests/argo/check.py"))
        .arg("--schema")
        .arg(repo_root().join("workflows/schema").join(schema))
        .args(files)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn base_files() -> Vec<PathBuf> {
    let base = repo_root().join("workflows/base");
    let mut files: Vec<PathBuf> = [
        "configmap.yaml",
        "rbac.yaml",
        "feature-pipeline.yaml",
        "daily-feature-pipeline.yaml",
        "feature-backfill.yaml",
    ]
    .iter()
    .map(|f| base.join(f))
    .collect();
    for e in std::fs::read_dir(base.join("steps")).unwrap() {
        files.push(e.unwrap().path());
    }
    files.sort();
    files
}

#[test]
fn every_document_validates_strictly_in_the_base_and_each_overlay() {
    let dir = tempfile::tempdir().unwrap();
    let mut sets = vec![("base files", base_files())];
    for overlay in ["base", "overlays/local", "overlays/gcp"] {
        let out = dir.path().join(format!("{}.yaml", overlay.replace('/', "-")));
        if let Some(f) = kustomize(&format!("workflows/{overlay}"), &out) {
            let text = std::fs::read_to_string(&f).unwrap();
            // the pipeline, its five steps, the cron and the backfill, in every build
            assert_eq!(text.matches("kind: WorkflowTemplate").count(), 7, "{overlay}");
            assert_eq!(text.matches("kind: CronWorkflow").count(), 1, "{overlay}");
            sets.push((overlay, vec![f]));
        }
    }
    for (what, files) in &sets {
        for schema in SCHEMAS {
            let (ok, said) = check(files, schema);
            assert!(ok, "{what} against {schema}:\n{said}");
            assert!(said.contains("0 problem(s)"), "{said}");
        }
    }
    // the images transformer reaches Argo's kinds: every image of the gcp build is renamed
    if let Some((_, files)) = sets.iter().find(|(w, _)| *w == "overlays/gcp") {
        let text = std::fs::read_to_string(&files[0]).unwrap();
        let images: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("image:")).collect();
        assert_eq!(images.len(), 5);
        assert!(
            images.iter().all(|l| l.contains("europe-docker.pkg.dev/")),
            "{images:?}"
        );
    }
}

#[test]
fn the_checker_rejects_what_argo_would() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = std::fs::read_to_string(repo_root().join("workflows/base/feature-pipeline.yaml")).unwrap();
    let cw = std::fs::read_to_string(repo_root().join("workflows/base/steps/compute-windows.yaml")).unwrap();
    let cron = std::fs::read_to_string(repo_root().join("workflows/base/daily-feature-pipeline.yaml")).unwrap();
    let cases = [
        (
            "compute-windows.yaml",
            cw.replace("retryStrategy:", "retryStratgy:"),
            "'retryStratgy' was unexpected",
        ),
        (
            "compute-windows.yaml",
            cw.replace("command: [/compute-windows]", "command: []"),
            "without `command`",
        ),
        (
            "cron.yaml",
            cron.replace("schedules:\n    - \"30 2 * * *\"", "schedule: \"30 2 * * *\""),
            "removed in v4.0",
        ),
        ("cron.yaml", cron.replace("Etc/UTC", "Mars/Olympus"), "not an IANA name"),
        (
            "cron.yaml",
            cron.replace("name: feature-pipeline", "name: feature-pipelines"),
            "no WorkflowTemplate",
        ),
        (
            "pipeline.yaml",
            pipeline.replace(
                "tasks.extract-bigquery.outputs.artifacts.output",
                "tasks.extract-bigquery.outputs.artifacts.raw",
            ),
            "declares",
        ),
        (
            "pipeline.yaml",
            pipeline.replace("depends: validate-features", "depends: validate"),
            "unknown task",
        ),
        (
            "pipeline.yaml",
            pipeline.replace("{name: redis, value:", "{name: redis-url, value:"),
            "does not give input parameter 'redis'",
        ),
    ];
    for (name, text, want) in cases {
        assert_ne!(
            &text,
            if name == "pipeline.yaml" {
                &pipeline
            } else if name == "cron.yaml" {
                &cron
            } else {
                &cw
            },
            "{want}: the mutation applies"
        );
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let mut files = base_files();
        files.retain(|f| {
            !f.ends_with(match name {
                "pipeline.yaml" => "feature-pipeline.yaml",
                "cron.yaml" => "daily-feature-pipeline.yaml",
                _ => "steps/compute-windows.yaml",
            })
        });
        files.push(path);
        let (ok, said) = check(&files, SCHEMAS[0]);
        assert!(!ok && said.contains(want), "want {want:?}:\n{said}");
    }
}

/// Every container of the YAML, with its inputs set to sample values, parses with its step's
/// own clap parser; every FEATUREKIT_* variable it sets is a flag's env twin.
#[test]
fn every_command_line_parses_with_its_steps_parser() {
    let dir = tempfile::tempdir().unwrap();
    let Some(manifests) = kustomize("workflows/overlays/local", &dir.path().join("local.yaml")) else {
        return;
    };
    let out = run_ok(
        Command::new(venv_tool("python"))
            .arg(repo_root().join("tests/argo/harness.py"))
            .args(["commands", "--manifests"])
            .arg(&manifests),
    );
    let commands: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let mut seen = BTreeMap::new();
    for c in &commands {
        let step = c["template"].as_str().unwrap();
        let argv: Vec<String> = c["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert_eq!(argv[0], format!("/{step}"), "command of {step}");
        let env: Vec<String> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let parsed = parse(step, &argv, &env);
        let result = parsed.unwrap_or_else(|| panic!("{step}: no parser for this step"));
        result.unwrap_or_else(|e| panic!("{step}: {argv:?} does not parse: {e}"));
        *seen.entry(step.to_string()).or_insert(0) += 1;
    }
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        [
            "compute-windows",
            "extract-bigquery",
            "materialize-redis",
            "publish-registry",
            "validate-features"
        ]
    );
    // materialize-redis runs once per online view of the spec: the pipeline's default list is them
    let spec = std::fs::read_to_string(repo_root().join("features.yaml")).unwrap();
    let views: Vec<&str> = spec
        .split("feature_views:")
        .nth(1)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("  - name: "))
        .map(str::trim)
        .collect();
    assert!(
        spec.matches("online: true").count() == views.len(),
        "every view of features.yaml is online"
    );
    let pipeline = std::fs::read_to_string(repo_root().join("workflows/base/feature-pipeline.yaml")).unwrap();
    let want = serde_json::to_string(&views).unwrap().replace(',', ", ");
    assert!(
        pipeline.contains(&format!("value: '{want}'")),
        "feature-views is not {want}"
    );

    // a renamed flag is caught: the same check on a mutated command line fails
    let cw = commands.iter().find(|c| c["template"] == "compute-windows").unwrap();
    let argv: Vec<String> = cw["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().replace("--shards", "--shard-count"))
        .collect();
    assert!(parse("compute-windows", &argv, &[]).unwrap().is_err());
}

/// `Some(result)` of `<step>::Args::try_parse_from`, with the env twins checked; None for a step
/// this test does not know.
fn parse(step: &str, argv: &[String], env: &[String]) -> Option<Result<(), String>> {
    use clap::CommandFactory;
    let (cmd, result) = match step {
        "compute-windows" => (
            compute_windows::Args::command(),
            compute_windows::Args::try_parse_from(argv).map(drop),
        ),
        "validate-features" => (
            validate_features::Args::command(),
            validate_features::Args::try_parse_from(argv).map(drop),
        ),
        "materialize-redis" => (
            materialize_redis::Args::command(),
            materialize_redis::Args::try_parse_from(argv).map(drop),
        ),
        "publish-registry" => (
            publish_registry::Args::command(),
            publish_registry::Args::try_parse_from(argv).map(drop),
        ),
        "extract-bigquery" => (
            extract_bigquery::Args::command(),
            extract_bigquery::Args::try_parse_from(argv).map(drop),
        ),
        _ => return None,
    };
    let twins: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    for var in env.iter().filter(|v| v.starts_with("FEATUREKIT_")) {
        if !twins.contains(var) {
            return Some(Err(format!("{var} is no flag's env twin")));
        }
    }
    Some(result.map_err(|e| e.to_string()))
}

// ---- the YAML runs --------------------------------------------------------------------------

struct Harness {
    manifests: PathBuf,
    source: Source,
    /// Each pod as its image's container, this directory (holding every store) mounted.
    containers: Option<PathBuf>,
}

/// The steps' images for the harness: built by images/build.sh around the static binaries
/// (`make test` builds them) when a Docker engine answers; else the real binaries run (one line
/// says so; under CI=true a missing engine fails).
fn containers(dir: &Path) -> Option<PathBuf> {
    let engine = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !engine {
        assert!(
            !ci(),
            "CI=true and no Docker engine answers: the pipeline cannot run in containers"
        );
        say("workflows: the pipeline runs the binaries, not the images: no Docker engine answers");
        return None;
    }
    let root = repo_root();
    let bin_dir = root.join(format!("target/{}-unknown-linux-gnu/release", std::env::consts::ARCH));
    let steps = [
        "extract-bigquery",
        "compute-windows",
        "validate-features",
        "materialize-redis",
        "publish-registry",
    ];
    run_ok(Command::new(root.join("images/build.sh")).arg(&bin_dir).args(steps));
    Some(dir.to_path_buf())
}

/// Where extract-bigquery reads: the local BigQuery emulator holding the raw events, or (without
/// the emulator's virtualenv, outside CI) nothing: the task is stubbed, its artifact the raw files.
enum Source {
    BigQuery { emulator: BigQueryEmulator, query: PathBuf },
    Stub(PathBuf),
}

impl Source {
    fn new(raw: &Path, dir: &Path) -> Source {
        if !repo_root().join(".venv-bq/bin/python").exists() {
            assert!(
                !ci(),
                "CI=true and .venv-bq is missing (make venv): extract-bigquery cannot run"
            );
            say(
                "workflows: extract-bigquery stubbed in the pipeline runs: no .venv-bq (make venv) for the BigQuery emulator",
            );
            return Source::Stub(raw.to_path_buf());
        }
        let emulator = BigQueryEmulator::start();
        emulator.load("raw.transactions", &raw.join("transactions.parquet"));
        let query = dir.join("query.sql");
        let example = std::fs::read_to_string(repo_root().join("workflows/base/query.sql")).unwrap();
        let table = format!("`{}.raw.transactions`", BigQueryEmulator::PROJECT);
        // the shipped example, on the emulator's table
        let text = example.replace("`my-project.payments.transactions`", &table);
        assert!(text.contains(&table));
        std::fs::write(&query, text).unwrap();
        Source::BigQuery { emulator, query }
    }
}

impl Harness {
    /// Runs the submissions one after the other in a fresh cluster below `work`; returns the report.
    fn run(&self, work: &Path, redis: &RedisServer, submits: &[&[&str]]) -> serde_json::Value {
        self.run_in(work, &work.join("cluster"), redis, submits)
    }

    /// The same over the stores below `work`, the cluster's own files below `cluster`.
    fn run_in(&self, work: &Path, cluster: &Path, redis: &RedisServer, submits: &[&[&str]]) -> serde_json::Value {
        let root = repo_root();
        let mut cmd = Command::new(venv_tool("python"));
        cmd.arg(root.join("tests/argo/harness.py"))
            .args(["run", "--manifests"])
            .arg(&self.manifests)
            .arg("--bin-dir")
            .arg(bin("compute-windows").parent().unwrap())
            .arg("--work")
            .arg(cluster)
            .args(["--configmap", "featurekit"])
            .arg(format!("offline-store={}", work.join("offline").display()))
            .arg(format!("registry={}", work.join("registry/registry.db").display()))
            .arg(format!("redis={}", redis.url()))
            .arg(format!("validation={}", work.join("validation").display()))
            .args(["--configmap-file", "featurekit-spec"])
            .arg(format!("features.yaml={}", root.join("features.yaml").display()))
            .arg(format!(
                "rules.yaml={}",
                root.join("workflows/base/rules.yaml").display()
            ));
        match &self.source {
            Source::BigQuery { emulator, query } => {
                cmd.arg(format!("query.sql={}", query.display()))
                    .args(["--configmap", "featurekit"])
                    .arg(format!("bigquery-project={}", BigQueryEmulator::PROJECT))
                    .arg(format!("bigquery-endpoint={}", emulator.endpoint()))
                    .arg("bigquery-anonymous=true");
            }
            Source::Stub(raw) => {
                cmd.arg(format!("query.sql={}", root.join("workflows/base/query.sql").display()))
                    .args(["--stub-task", "extract-bigquery"])
                    .arg(format!("output={}", raw.display()));
            }
        }
        if let Some(mount) = &self.containers {
            cmd.arg("--docker").arg(mount);
        }
        for s in submits {
            cmd.arg("--submit").args(*s);
        }
        serde_json::from_str(&run_ok(&mut cmd)).unwrap()
    }
}

/// The failed pods of a report: node, exit code and the end of their logs.
fn failed_pods(report: &serde_json::Value) -> String {
    let mut out = String::new();
    for w in report["workflows"].as_object().unwrap().values() {
        for n in w["nodes"].as_array().unwrap() {
            if n.get("exit_code").is_some_and(|c| c != 0) {
                out += &format!("{} exit {}: {}\n", n["node"], n["exit_code"], n["stderr_tail"]);
            }
        }
    }
    out
}

fn phases(report: &serde_json::Value) -> BTreeMap<String, String> {
    report["workflows"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["phase"].as_str().unwrap().to_string()))
        .collect()
}

/// Each feature view's materialized intervals in the registry (seconds).
fn intervals(registry: &Path) -> BTreeMap<String, Vec<(i64, i64)>> {
    let bytes = std::fs::read(registry).unwrap();
    split(&bytes)
        .unwrap()
        .iter()
        .filter(|f| f.number == registry::FEATURE_VIEWS)
        .map(|f| {
            let v = FeatureView::decode(f.payload()).unwrap();
            let meta = v.meta.unwrap_or_default();
            let i = meta
                .materialization_intervals
                .iter()
                .map(|i| (i.start_time.unwrap().seconds, i.end_time.unwrap().seconds))
                .collect();
            (v.spec.unwrap().name, i)
        })
        .collect()
}

/// The offline store's rows, created_timestamp aside (each run stamps its own), as one digest per file.
fn offline_rows(dir: &Path) -> String {
    let script = "import sys, pyarrow.dataset as ds, hashlib\n\
        t = ds.dataset(sys.argv[1], format='parquet').to_table()\n\
        t = t.drop_columns(['created_timestamp']).sort_by([(c, 'ascending') for c in t.column_names if c != 'created_timestamp'])\n\
        print(t.num_rows, hashlib.sha256(str(t.to_pylist()).encode()).hexdigest())";
    run_ok(
        Command::new(venv_tool("python"))
            .args(["-c", script])
            .arg(dir.join("user_transaction_features")),
    )
}

#[test]
fn the_pipeline_runs_daily_and_as_a_backfill_and_feast_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(manifests) = kustomize("workflows/overlays/local", &dir.path().join("local.yaml")) else {
        return;
    };
    let raw = dir.path().join("raw");
    generate_transactions(
        &raw.join("transactions.parquet"),
        &[
            "--rows",
            "300000",
            "--users",
            "8000",
            "--days",
            "45",
            "--start",
            "2025-10-01",
        ],
    );
    let h = Harness {
        manifests,
        source: Source::new(&raw, dir.path()),
        containers: containers(dir.path()),
    };
    let days = [
        "2025-11-08",
        "2025-11-09",
        "2025-11-10",
        "2025-11-11",
        "2025-11-12",
        "2025-11-13",
        "2025-11-14",
    ];

    // seven daily runs after a first one without a baseline, then a rerun of the last day
    let daily = dir.path().join("daily");
    let redis_daily = RedisServer::start();
    let mut submits: Vec<Vec<String>> = vec![vec![
        "feature-pipeline".into(),
        "date=2025-11-07".into(),
        "no-baseline=true".into(),
    ]];
    for d in days {
        submits.push(vec![
            "feature-pipeline".into(),
            format!("date={d}"),
            format!("name=daily-{d}"),
        ]);
    }
    let refs: Vec<Vec<&str>> = submits.iter().map(|s| s.iter().map(String::as_str).collect()).collect();
    let refs: Vec<&[&str]> = refs.iter().map(Vec::as_slice).collect();
    let report = h.run(&daily, &redis_daily, &refs);
    assert!(
        phases(&report).values().all(|p| p == "Succeeded"),
        "{:?}\n{}",
        phases(&report),
        failed_pods(&report)
    );
    let nodes = report["workflows"]["daily-2025-11-14"]["nodes"].as_array().unwrap();
    if h.containers.is_some() {
        // every pod ran as its image's container, the image the YAML names
        for n in nodes.iter().filter(|n| n["step"].is_string()) {
            let step = n["step"].as_str().unwrap();
            assert_eq!(
                n["container"],
                format!("featurekit/{step}:{}", env!("CARGO_PKG_VERSION")),
                "{n}"
            );
        }
    }
    let shards: Vec<&serde_json::Value> = nodes.iter().filter(|n| n["step"] == "compute-windows").collect();
    assert_eq!(shards.len(), 4, "the fan-out");
    for (k, n) in shards.iter().enumerate() {
        let argv: Vec<&str> = n["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(argv.windows(2).any(|w| w == ["--shard", &k.to_string()]), "{argv:?}");
        assert_eq!(n["exit_code"], 0);
        let progress = n["progress"].as_str().unwrap();
        let (done, total) = progress.split_once('/').unwrap();
        assert_eq!(done, total, "the step reported its progress to ARGO_PROGRESS_FILE");
    }
    if matches!(h.source, Source::BigQuery { .. }) {
        let extract = nodes
            .iter()
            .find(|n| n["step"] == "extract-bigquery")
            .expect("the extract ran");
        assert_eq!(extract["exit_code"], 0);
    }
    let order: Vec<&str> = nodes.iter().filter_map(|n| n["step"].as_str()).collect();
    let first = |s: &str| order.iter().position(|x| *x == s).unwrap();
    assert!(
        first("compute-windows") < first("validate-features")
            && first("validate-features") < first("materialize-redis")
    );
    assert!(first("materialize-redis") < first("publish-registry"));
    // the summaries' figures reached the metrics, under the names the alerts read
    let metrics = report["metrics"].as_array().unwrap();
    let rows: f64 = metrics
        .iter()
        .filter(|m| m["name"] == "featurekit_step_rows_total" && m["labels"]["step"] == "compute-windows")
        .map(|m| m["value"].as_f64().unwrap())
        .sum();
    assert!(rows > 0.0);
    let end = metrics
        .iter()
        .rfind(|m| m["name"] == "featurekit_materialized_end_timestamp_seconds")
        .unwrap();
    assert_eq!(
        end["value"].as_f64().unwrap() as i64,
        1_763_164_800,
        "2025-11-15T00:00:00Z, the last day's END"
    );
    let rule: String = std::fs::read_to_string(repo_root().join("monitoring/prometheusrule.yaml"))
        .unwrap()
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:"))
        .collect::<Vec<_>>()
        .join("\n");
    let emitted: Vec<&str> = metrics.iter().map(|m| m["name"].as_str().unwrap()).collect();
    let mut read = 0;
    for word in rule
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("argo_workflows_"))
    {
        let name = word.trim_start_matches("argo_workflows_");
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
        let defined = std::fs::read_dir(repo_root().join("workflows/base/steps"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .chain([std::fs::read_to_string(repo_root().join("workflows/base/feature-pipeline.yaml")).unwrap()])
            .any(|t| t.contains(&format!("- name: {name}\n")));
        assert!(defined, "the alert reads {word}, which no template defines");
        read += 1;
        if name != "featurekit_validation_failed_total" {
            assert!(emitted.contains(&name), "{name} was never emitted in a good run");
        }
    }
    assert!(read >= 4);

    // a rerun of a day changes nothing in Redis
    let before = redis_daily.dump();
    let rerun = h.run_in(
        &daily,
        &dir.path().join("rerun"),
        &redis_daily,
        &[&["feature-pipeline", "date=2025-11-14"]],
    );
    assert!(phases(&rerun).values().all(|p| p == "Succeeded"));
    assert_eq!(redis_daily.dump(), before, "a rerun changed Redis");

    // the backfill of the seven days (twice: the second finds them there) == the daily runs
    let backfill = dir.path().join("backfill");
    let redis_backfill = RedisServer::start();
    let report = h.run(
        &backfill,
        &redis_backfill,
        &[
            &["feature-pipeline", "date=2025-11-07", "no-baseline=true"],
            &["feature-backfill", "start=2025-11-08", "end=2025-11-15"],
            &["feature-backfill", "start=2025-11-08", "end=2025-11-15", "name=again"],
        ],
    );
    let p = phases(&report);
    assert!(p.values().all(|p| p == "Succeeded"), "{p:?}");
    for d in days {
        assert!(p.contains_key(&format!("feature-pipeline-{d}")), "{p:?}");
    }
    assert_eq!(
        p.len(),
        1 + 2 + days.len(),
        "resubmitting the range ran no day twice: {p:?}"
    );
    assert_eq!(
        offline_rows(&backfill.join("offline")),
        offline_rows(&daily.join("offline"))
    );
    assert_eq!(redis_backfill.dump(), redis_daily.dump());
    assert_eq!(
        intervals(&backfill.join("registry/registry.db")),
        intervals(&daily.join("registry/registry.db"))
    );

    // the real Feast reads the registry and the online store the runs left
    let repo = dir.path().join("feast");
    run_ok(
        Command::new(feast_tool("python"))
            .arg(repo_root().join("tests/feast/registry_check.py"))
            .args(["repo", "--repo"])
            .arg(&repo)
            .arg("--registry")
            .arg(backfill.join("registry/registry.db"))
            .args(["--redis-port", &redis_backfill.port.to_string()]),
    );
    let said = run_ok(
        Command::new(feast_tool("python"))
            .arg(repo_root().join("tests/feast/online_check.py"))
            .args(["check", "--repo"])
            .arg(&repo)
            .arg("--offline")
            .arg(backfill.join("offline"))
            .args([
                "--start",
                "2025-11-07T00:00:00Z",
                "--end",
                "2025-11-15T00:00:00Z",
                "--entities",
                "300",
            ]),
    );
    assert!(said.contains("300 entities ("), "{said}");
}

#[test]
fn a_broken_contract_stops_the_run_before_redis_and_records_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let Some(manifests) = kustomize("workflows/overlays/local", &dir.path().join("local.yaml")) else {
        return;
    };
    let raw = dir.path().join("raw");
    generate_transactions(
        &raw.join("transactions.parquet"),
        &[
            "--rows",
            "100000",
            "--users",
            "3000",
            "--days",
            "45",
            "--start",
            "2025-10-01",
        ],
    );
    let h = Harness {
        manifests,
        // the extract is not what this test is about (and one emulator at a time is enough)
        source: Source::Stub(raw),
        containers: containers(dir.path()),
    };
    let redis = RedisServer::start();
    // a baseline that is not there: validate-features exits 66 (never taken as no baseline);
    // a broken contract (65) stops the run the same way, before materialize-redis
    let report = h.run(
        dir.path(),
        &redis,
        &[&["feature-pipeline", "date=2025-11-10", "name=broken"]],
    );
    let run = &report["workflows"]["broken"];
    assert_eq!(run["phase"], "Failed");
    let steps: Vec<&str> = run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["step"].as_str())
        .collect();
    assert!(
        steps.contains(&"validate-features") && !steps.contains(&"materialize-redis"),
        "{steps:?}"
    );
    assert!(redis.dump().is_empty(), "nothing reached Redis");
    let record = &report["configmaps"]["feature-pipeline-last-failure"];
    assert_eq!(record["workflow"], "broken");
    assert!(
        record["failures"].as_str().unwrap().contains("validate-features"),
        "{record}"
    );
}
