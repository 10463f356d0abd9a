//! Where the online store is, how to connect to it, how hard to push it, how a failed exchange
//! is retried, and how its failures map to exit codes.

use std::time::Duration;

use std::path::PathBuf;

use crate::feast::KeyVersion;
use crate::{Error, Kind, Result};
use redis::{Cmd, ConnectionInfo, IntoConnectionInfo, RedisError, Value};

/// The flags of every step that talks to Redis, beside its address flag; flatten it into the
/// step's `Args`.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// Redis password (better than the URL: it never shows in a process listing)
    #[arg(
        long,
        env = "FEATUREKIT_REDIS_PASSWORD",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub redis_password: Option<String>,

    /// PEM file of the CA that signed the server's certificate, for rediss:// (or ssl=true) with a
    /// private CA [default: the system's trust store]
    #[arg(long, env = "FEATUREKIT_REDIS_CA_CERT", value_name = "PATH")]
    pub redis_ca_cert: Option<PathBuf>,

    /// The store is a Redis Cluster: commands are routed to each key's slot owner
    #[arg(long, env = "FEATUREKIT_CLUSTER")]
    pub cluster: bool,

    /// Feast's entity_key_serialization_version (3, Feast's default; 2 is deprecated)
    #[arg(long, env = "FEATUREKIT_ENTITY_KEY_VERSION", default_value_t = 3,
          value_parser = clap::value_parser!(u8).range(2..=3), value_name = "N")]
    pub entity_key_version: u8,

    /// Connections at work at once (each keeps one pipeline in flight)
    #[arg(long, env = "FEATUREKIT_CONNECTIONS", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=256), value_name = "N")]
    pub connections: u16,

    /// Entities per pipelined batch
    #[arg(long, env = "FEATUREKIT_BATCH", default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub batch: u32,

    /// Attempts per batch on connection loss or timeout, with exponential backoff; then exit 75
    #[arg(long, env = "FEATUREKIT_ATTEMPTS", default_value_t = 6,
          value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub attempts: u32,

    /// Connect and read/write timeout of one Redis exchange, in seconds
    #[arg(
        long,
        env = "FEATUREKIT_REDIS_TIMEOUT",
        default_value_t = 30.0,
        value_name = "SECONDS",
        value_parser = parse_timeout
    )]
    pub redis_timeout: f64,
}

/// `--redis-timeout`: a number of seconds above 0 and at most a day (`inf`, `nan` or a
/// negative value would be no timeout at all, or none that can be kept).
fn parse_timeout(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!("`{text}` is not a number of seconds above 0 and at most 86400")),
    }
}

impl RedisArgs {
    /// The store at `url`, given with `flag`, with these flags' password, CA and cluster mode.
    pub fn target(&self, flag: &str, url: &str) -> Result<Target> {
        Target::parse(flag, url, self.redis_password.as_deref(), self.cluster)?
            .with_ca_cert(self.redis_ca_cert.as_deref())
    }

    pub fn pace(&self) -> Pace {
        Pace {
            connections: self.connections as usize,
            batch: self.batch as usize,
            attempts: self.attempts,
            timeout: Duration::from_secs_f64(self.redis_timeout),
        }
    }

    pub fn key_version(&self) -> KeyVersion {
        if self.entity_key_version == 2 {
            KeyVersion::V2
        } else {
            KeyVersion::V3
        }
    }
}

/// A parsed Redis address (materialize-redis' `--redis`, validate-features' `--online`): one
/// node, or a cluster's seed nodes.
#[derive(Clone)]
pub struct Target {
    nodes: Vec<ConnectionInfo>,
    tls: bool,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    /// PEM of a private CA to trust instead of the system's roots.
    ca_cert: Option<Vec<u8>>,
    pub cluster: bool,
    pub shown: String,
}

impl Target {
    /// Parses a redis:// or rediss:// URL, or Feast's connection_string
    /// (`host:port[,host:port...][,ssl=true][,password=...][,username=...][,db=N]`), given
    /// with `flag` (named in errors).
    pub fn parse(flag: &str, text: &str, password: Option<&str>, cluster: bool) -> Result<Target> {
        let shown = Target::shown(text);
        let bad = |msg: String| Error::config(format!("{flag} {shown}: {msg}"));
        let mut t = Target {
            nodes: vec![],
            tls: false,
            username: None,
            password: None,
            db: 0,
            ca_cert: None,
            cluster,
            shown: shown.clone(),
        };
        if text.contains("://") {
            let info = text.into_connection_info().map_err(|e| bad(e.to_string()))?;
            let settings = info.redis_settings();
            t.username = settings.username().map(str::to_string);
            t.password = settings.password().map(str::to_string);
            t.db = settings.db();
            t.tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
            t.nodes.push(info);
        } else {
            let mut hosts = vec![];
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part.split_once('=') {
                    Some((k, v)) => {
                        // Feast JSON-decodes each value: strings may come quoted
                        let v = v.trim().trim_matches('"');
                        match k.trim() {
                            "ssl" => t.tls = matches!(v.to_ascii_lowercase().as_str(), "true" | "1"),
                            "password" => t.password = Some(v.to_string()),
                            "username" => t.username = Some(v.to_string()),
                            "db" => t.db = v.parse().map_err(|_| bad(format!("db `{v}` is not a number")))?,
                            // connection-pool options of redis-py that do not apply here
                            "ssl_cert_reqs"
                            | "ssl_ca_certs"
                            | "ssl_certfile"
                            | "ssl_keyfile"
                            | "socket_timeout"
                            | "socket_connect_timeout"
                            | "health_check_interval" => {}
                            other => return Err(bad(format!("unknown option `{other}`"))),
                        }
                    }
                    None => hosts.push(part),
                }
            }
            if hosts.is_empty() {
                return Err(bad("no host:port".into()));
            }
            for host in hosts {
                let scheme = if t.tls { "rediss" } else { "redis" };
                let info = format!("{scheme}://{host}/{}", t.db)
                    .into_connection_info()
                    .map_err(|e| bad(e.to_string()))?;
                t.nodes.push(info);
            }
        }
        if let Some(p) = password {
            t.password = Some(p.to_string());
        }
        for info in &mut t.nodes {
            let mut settings = info.redis_settings().clone().set_db(t.db);
            if let Some(u) = &t.username {
                settings = settings.set_username(u);
            }
            if let Some(p) = &t.password {
                settings = settings.set_password(p);
            }
            *info = info.clone().set_redis_settings(settings);
        }
        Ok(t)
    }

    /// Trusts this CA (PEM) for TLS connections.
    pub fn with_ca_cert(mut self, path: Option<&std::path::Path>) -> Result<Target> {
        if let Some(path) = path {
            let pem =
                std::fs::read(path).map_err(|e| Error::config(format!("--redis-ca-cert {}: {e}", path.display())))?;
            self.ca_cert = Some(pem);
        }
        Ok(self)
    }

    fn certs(&self) -> Option<redis::TlsCertificates> {
        self.ca_cert.as_ref().map(|pem| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        })
    }

    /// The connection string with any password replaced, for logs and summaries.
    pub fn shown(text: &str) -> String {
        if text.contains("://") {
            return crate::artifact::redact(text);
        }
        text.split(',')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.trim() == "password" => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Opens one connection (to every node, for a cluster).
    pub fn connect(&self, timeout: Duration) -> std::result::Result<Conn, RedisError> {
        if self.cluster {
            let mut builder = redis::cluster::ClusterClient::builder(self.nodes.clone())
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(0);
            if let Some(p) = &self.password {
                builder = builder.password(p);
            }
            if let Some(u) = &self.username {
                builder = builder.username(u);
            }
            if self.tls {
                builder = builder.tls(redis::TlsMode::Secure);
            }
            if let Some(certs) = self.certs() {
                builder = builder.certs(certs);
            }
            Ok(Conn::Cluster(Box::new(builder.build()?.get_connection()?)))
        } else {
            let client = match self.certs() {
                Some(certs) if self.tls => redis::Client::build_with_tls(self.nodes[0].clone(), certs)?,
                _ => redis::Client::open(self.nodes[0].clone())?,
            };
            let conn = client.get_connection_with_timeout(timeout)?;
            conn.set_read_timeout(Some(timeout))?;
            conn.set_write_timeout(Some(timeout))?;
            Ok(Conn::Single(conn))
        }
    }
}

/// An open connection: one node, or a cluster that routes each command to its slot's node.
pub enum Conn {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Conn {
    /// An empty batch of commands in the form this connection sends best.
    pub fn batch(&self) -> Batch {
        match self {
            Conn::Single(_) => Batch::Resp {
                buf: Vec::with_capacity(64 * 1024),
                count: 0,
            },
            Conn::Cluster(_) => Batch::Cmds(vec![]),
        }
    }

    /// Sends the commands as one pipeline (no MULTI, as Feast) and returns their replies.
    pub fn send(&mut self, batch: &Batch) -> std::result::Result<Vec<Value>, RedisError> {
        use redis::ConnectionLike;
        match (self, batch) {
            (_, b) if b.is_empty() => Ok(vec![]),
            // the protocol bytes are written straight into one buffer (see Batch): no
            // per-argument allocation, one write for the whole pipeline
            // a command's error comes back as its reply, not as the pipeline's: taken out here,
            // so that no caller can miss one (a WRONGTYPE among a batch's HSETs)
            (Conn::Single(conn), Batch::Resp { buf, count }) => conn
                .req_packed_commands(buf, 0, *count)?
                .into_iter()
                .map(Value::extract_error)
                .collect(),
            (Conn::Cluster(conn), Batch::Cmds(cmds)) => {
                let mut pipe = redis::cluster::ClusterPipeline::with_capacity(cmds.len());
                for c in cmds {
                    pipe.add_command(c.clone());
                }
                pipe.query(conn)
            }
            _ => unreachable!("a batch is made by the connection that sends it"),
        }
    }

    /// Runs one command.
    pub fn query(&mut self, cmd: &Cmd) -> std::result::Result<Value, RedisError> {
        match self {
            Conn::Single(conn) => cmd.query(conn),
            Conn::Cluster(conn) => cmd.query(&mut **conn),
        }
    }
}

/// Pipelined commands: RESP bytes for one node, commands to route for a cluster.
pub enum Batch {
    Resp { buf: Vec<u8>, count: usize },
    Cmds(Vec<Cmd>),
}

impl Batch {
    /// Starts a command of `argc` arguments (its name included).
    pub fn cmd(&mut self, argc: usize) {
        match self {
            Batch::Resp { buf, count } => {
                buf.push(b'*');
                push_decimal(buf, argc);
                buf.extend_from_slice(b"\r\n");
                *count += 1;
            }
            Batch::Cmds(cmds) => cmds.push(Cmd::new()),
        }
    }

    /// Appends an argument made of `parts`, concatenated.
    pub fn arg(&mut self, parts: &[&[u8]]) {
        match self {
            Batch::Resp { buf, .. } => {
                buf.push(b'$');
                push_decimal(buf, parts.iter().map(|p| p.len()).sum());
                buf.extend_from_slice(b"\r\n");
                for p in parts {
                    buf.extend_from_slice(p);
                }
                buf.extend_from_slice(b"\r\n");
            }
            Batch::Cmds(cmds) => {
                let cmd = cmds.last_mut().expect("cmd() before arg()");
                cmd.arg(parts.concat());
            }
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Batch::Resp { count, .. } => *count,
            Batch::Cmds(cmds) => cmds.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        match self {
            Batch::Resp { buf, count } => {
                buf.clear();
                *count = 0;
            }
            Batch::Cmds(cmds) => cmds.clear(),
        }
    }
}

fn push_decimal(buf: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Whether a failed exchange may succeed on a new connection after a wait.
pub fn retryable(e: &RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    if is_tls_error(e) {
        return false;
    }
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::BusyLoading)
                | ErrorKind::Server(ServerErrorKind::MasterDown)
                | ErrorKind::Server(ServerErrorKind::ReadOnly)
                | ErrorKind::ClusterConnectionNotFound
        )
        || e.code() == Some("OOM")
}

/// The exit-code kind of a Redis failure that retries did not cure.
pub fn failure(e: &RedisError, shown: &str) -> Error {
    use redis::{ErrorKind, ServerErrorKind};
    let kind = match e.kind() {
        ErrorKind::AuthenticationFailed
        | ErrorKind::InvalidClientConfig
        | ErrorKind::Server(ServerErrorKind::NoPerm) => Kind::Config,
        // a key of the view holds another type: the store holds data that is not Feast's
        _ if e.code() == Some("WRONGTYPE") => Kind::Data,
        // NOAUTH (no password given) comes with a kind of its own in some redis versions
        _ if is_auth_error(e) || is_tls_error(e) => Kind::Config,
        // any other reply error that waiting does not cure (an unknown or disabled command, a
        // proxy that refuses it): the store is not one this step can write
        ErrorKind::Server(_) if !retryable(e) => Kind::Config,
        _ => Kind::Transient,
    };
    Error::msg(kind, format!("redis {shown}: {e}"))
}

/// A certificate the client does not trust (or a TLS setup error): retrying cannot help. Told by
/// rustls' message ("invalid peer certificate: ...", "received fatal alert: ..."), as the type
/// cannot be reached: the client keeps the I/O error that carries it behind an `Arc<dyn Error>`,
/// whose `source` skips it (tests/tests/materialize_redis.rs' `tls_with_a_private_ca` checks it).
fn is_tls_error(e: &RedisError) -> bool {
    let text = e.to_string();
    text.contains("certificate") || text.contains("fatal alert")
}

/// Refused credentials: by the reply's code; servers before Redis 6 answer `ERR invalid password`.
fn is_auth_error(e: &RedisError) -> bool {
    matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM")) || e.to_string().contains("invalid password")
}

/// How hard to push the store: connections at once, entities per pipelined batch, attempts
/// per exchange and the timeout of one.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub connections: usize,
    pub batch: usize,
    pub attempts: u32,
    pub timeout: Duration,
}

/// Runs `f` on `conn` (opened first when there is none); a retryable failure drops the
/// connection and runs `f` again on a new one after the shared backoff (exponential, full jitter), up to
/// `pace.attempts` times. Returns `f`'s value and the retries it took.
pub fn retried<T>(
    target: &Target,
    pace: Pace,
    conn: &mut Option<Conn>,
    mut f: impl FnMut(&mut Conn) -> std::result::Result<T, RedisError>,
) -> Result<(T, u64)> {
    let mut attempt = 0;
    loop {
        let result = match conn {
            Some(c) => f(c),
            None => target.connect(pace.timeout).and_then(|c| f(conn.insert(c))),
        };
        match result {
            Ok(v) => return Ok((v, attempt as u64)),
            Err(e) if retryable(&e) && attempt + 1 < pace.attempts => {
                *conn = None;
                let wait = BACKOFF.delay(attempt + 1);
                tracing::warn!(error = %e, attempt = attempt + 1, wait_ms = wait.as_millis() as u64, "redis failed, retrying");
                std::thread::sleep(wait);
                attempt += 1;
            }
            Err(e) => return Err(give_up(&e, target, attempt)),
        }
    }
}

/// [`retried`] on a connection of its own: for the few commands around a step's batches.
pub fn with_retries<T>(
    target: &Target,
    pace: Pace,
    f: impl FnMut(&mut Conn) -> std::result::Result<T, RedisError>,
) -> Result<T> {
    retried(target, pace, &mut None, f).map(|(v, _)| v)
}

/// The wait before a retry of Redis: up to 100 ms doubling to 5 s, full jitter
/// ([`crate::retry`]); the attempts come from the flag.
const BACKOFF: crate::retry::Backoff =
    crate::retry::Backoff::new(u32::MAX, Duration::from_millis(100), Duration::from_secs(5));

fn give_up(e: &RedisError, target: &Target, attempt: u32) -> Error {
    let err = failure(e, &target.shown);
    if retryable(e) {
        err.context(format!("after {} attempts", attempt + 1))
    } else {
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_batches_are_the_protocol() {
        let mut b = Batch::Resp { buf: vec![], count: 0 };
        b.cmd(3);
        b.arg(&[b"HGET"]);
        b.arg(&[b"k", b"ey"]);
        b.arg(&[b""]);
        let Batch::Resp { buf, count } = &b else { unreachable!() };
        assert_eq!(buf.as_slice(), b"*3\r\n$4\r\nHGET\r\n$3\r\nkey\r\n$0\r\n\r\n");
        assert_eq!(*count, 1);
        let mut b = Batch::Cmds(vec![]);
        b.cmd(2);
        b.arg(&[b"GET"]);
        b.arg(&[b"k", b"1"]);
        let Batch::Cmds(cmds) = &b else { unreachable!() };
        assert_eq!(
            cmds[0].get_packed_command(),
            redis::cmd("GET").arg("k1").get_packed_command()
        );
    }

    #[test]
    fn feast_connection_strings_parse() {
        let t = Target::parse("--redis", "127.0.0.1:6390", None, false).unwrap();
        assert_eq!(t.nodes.len(), 1);
        assert!(!t.tls);
        let t = Target::parse(
            "--redis",
            "h1:7000,h2:7001,ssl=true,password=\"s3cret\",db=2",
            None,
            true,
        )
        .unwrap();
        assert_eq!(t.nodes.len(), 2);
        assert!(t.tls);
        assert_eq!(t.password.as_deref(), Some("s3cret"));
        assert_eq!(t.nodes[1].redis_settings().db(), 2);
        assert!(!t.shown.contains("s3cret"), "{}", t.shown);
        assert!(Target::parse("--redis", "h:1,bogus=1", None, false).is_err());
        assert!(Target::parse("--redis", "ssl=true", None, false).is_err());
    }

    #[test]
    fn urls_parse_and_hide_their_password() {
        let t = Target::parse("--redis", "rediss://u:pw@example.com:6380/3", None, false).unwrap();
        assert!(t.tls);
        assert_eq!(t.db, 3);
        assert_eq!(t.username.as_deref(), Some("u"));
        assert!(!t.shown.contains("pw"), "{}", t.shown);
        let t = Target::parse("--redis", "redis://127.0.0.1:6379", Some("from-env"), false).unwrap();
        assert_eq!(t.nodes[0].redis_settings().password(), Some("from-env"));
    }
}
