//! No secret given to a step reaches its --help, its logs or its summary: passwords and
//! connection strings come in through the environment (Argo's Secrets), and every step prints
//! its --help with the environment's values beside the flags.

use std::process::Command;

use featurekit_tests::{bin, repo_root};

#[path = "../../steps/extract-bigquery/tests/stub/mod.rs"]
#[allow(dead_code)]
mod stub;

const MARKER: &str = "s3cr3t-d0-not-print";
const STEPS: [&str; 5] = [
    "extract-bigquery",
    "compute-windows",
    "validate-features",
    "materialize-redis",
    "publish-registry",
];

/// The variables that carry a secret, as a user would set them.
fn secrets() -> Vec<(&'static str, String)> {
    vec![
        ("FEATUREKIT_REDIS", format!("redis://default:{MARKER}@127.0.0.1:1")),
        ("FEATUREKIT_ONLINE", format!("redis://default:{MARKER}@127.0.0.1:1")),
        ("FEATUREKIT_REDIS_PASSWORD", MARKER.to_string()),
    ]
}

#[test]
fn no_steps_help_shows_a_secret_from_the_environment() {
    for step in STEPS {
        let out = Command::new(bin(step)).arg("--help").envs(secrets()).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{step} --help");
        assert!(!help.contains(MARKER), "{step} --help shows a secret:\n{help}");
    }
}

#[test]
fn a_redis_that_refuses_leaves_no_password_in_the_logs_or_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    // nothing listens on port 1: the step fails, and says where it tried, without the password
    for (step, extra) in [
        ("materialize-redis", vec!["--attempts", "1"]),
        ("validate-features", vec!["--no-baseline"]),
    ] {
        let out = Command::new(bin(step))
            .arg("--spec")
            .arg(repo_root().join("features.yaml"))
            .args([
                "--input",
                dir.path().to_str().unwrap(),
                "--start",
                "2025-11-14",
                "--end",
                "2025-11-15",
            ])
            .args(["--log-format", "json", "--summary", summary.to_str().unwrap()])
            .args(extra)
            .envs(secrets())
            .output()
            .unwrap();
        let logs = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{step}: {logs}");
        assert!(!logs.contains(MARKER), "{step}'s logs show the password: {logs}");
        let written = std::fs::read_to_string(&summary).unwrap_or_default();
        assert!(
            !written.contains(MARKER),
            "{step}'s summary shows the password: {written}"
        );
    }
}

/// A whole run of every step, each given its secret the way a deployment does (an S3 secret key,
/// a Redis password, a Google service-account key whose signed token BigQuery receives), with
/// every log line at trace level and every summary: none of the secrets appears in any.
#[test]
fn a_real_run_of_every_step_logs_and_summarises_no_secret() {
    use featurekit_tests::{Moto, RedisServer, generate_transactions};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = |name: &str| d.join(name).display().to_string();
    let mut told = String::new();
    let mut run = |step: &str, args: &[&str], env: &[(&str, String)]| {
        let summary = path(&format!("{step}.json"));
        let out = Command::new(bin(step))
            .arg("--spec")
            .arg(repo_root().join("features.yaml"))
            .args(args)
            .args(["--log-level", "trace", "--log-format", "json", "--summary", &summary])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        let logs = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{step}: {logs}");
        told.push_str(&logs);
        told.push_str(&std::fs::read_to_string(&summary).unwrap());
    };

    // extract-bigquery: a service-account key; the stub keeps the bearer token it is sent
    let key = d.join("key.pem");
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success(), "openssl genpkey");
    let pem = std::fs::read_to_string(&key).unwrap();
    let account = serde_json::json!({
        "type": "service_account", "project_id": "demo", "private_key_id": "k1",
        "private_key": pem, "client_email": "extract@demo.iam.gserviceaccount.com",
    });
    std::fs::write(d.join("account.json"), account.to_string()).unwrap();
    let tokens = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = tokens.clone();
    let bigquery = stub::Stub::start(move |req, _| {
        if let Some(auth) = req.header("authorization") {
            seen.lock()
                .unwrap()
                .push(auth.trim_start_matches("Bearer ").to_string());
        }
        if req.method == "GET" && req.target.contains("/jobs/") {
            return (200, stub::job());
        }
        let row = vec![
            serde_json::json!("1"),
            serde_json::json!("1763078400000000"),
            serde_json::json!("9.5"),
            serde_json::json!("4"),
        ];
        (200, stub::page(&[row], None, stub::schema()))
    });
    std::fs::write(
        d.join("q.sql"),
        "SELECT user_id, event_timestamp, amount, merchant_id FROM raw.t WHERE event_timestamp >= @start AND event_timestamp < @end",
    )
    .unwrap();
    let (query, extract) = (path("q.sql"), path("extract"));
    let endpoint = bigquery.endpoint();
    let extract_args = [
        "--project",
        "demo",
        "--query-file",
        &query,
        "--output",
        &extract,
        "--start",
        "2025-11-14",
        "--end",
        "2025-11-15",
        "--lookback",
        "none",
        "--endpoint",
        &endpoint,
    ];
    run(
        "extract-bigquery",
        &extract_args,
        &[("GOOGLE_APPLICATION_CREDENTIALS", path("account.json"))],
    );

    // the other four: S3 with a secret key, Redis with a password
    let moto = Moto::start();
    moto.create_bucket("lake");
    let mut s3 = moto.env();
    s3.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    s3.push(("AWS_SECRET_ACCESS_KEY", MARKER.to_string()));
    let redis = RedisServer::start();
    redis.cli(&["CONFIG", "SET", "requirepass", MARKER]);
    let mut with_redis = s3.clone();
    with_redis.push(("FEATUREKIT_REDIS_PASSWORD", MARKER.to_string()));
    generate_transactions(
        &d.join("raw.parquet"),
        &["--rows", "2000", "--users", "40", "--days", "3"],
    );
    let day = ["--start", "2025-11-02", "--end", "2025-11-03"];
    let offline = "s3://lake/offline";
    run(
        "compute-windows",
        &[&["--input", &path("raw.parquet"), "--output", offline][..], &day].concat(),
        &s3,
    );
    run(
        "validate-features",
        &[
            &["--input", offline, "--no-baseline", "--report", "s3://lake/report/"][..],
            &day,
        ]
        .concat(),
        &s3,
    );
    let url = format!("redis://127.0.0.1:{}", redis.port);
    run(
        "materialize-redis",
        &[&["--input", offline, "--redis", &url][..], &day].concat(),
        &with_redis,
    );
    run(
        "validate-features",
        &[&["--input", offline, "--online", &url][..], &day].concat(),
        &with_redis,
    );
    run(
        "publish-registry",
        &["--registry", "s3://lake/registry.db", "--offline-path", offline],
        &s3,
    );

    let tokens = tokens.lock().unwrap().clone();
    assert!(!tokens.is_empty(), "BigQuery got no bearer token");
    let key_body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(
        !told.contains(MARKER),
        "a password or secret key is in the logs or a summary"
    );
    for token in &tokens {
        assert!(
            !told.contains(token.as_str()),
            "the BigQuery token is in the logs or a summary"
        );
    }
    for line in key_body {
        assert!(
            !told.contains(line),
            "the service-account key is in the logs or a summary"
        );
    }
}
