//! Writing one view's winners into Redis: batches of entities, each a pipelined read of the
//! stored `_ts:<view>` (Feast's rule: a row not newer than what is stored is skipped) and a
//! pipelined HSET (+ EXPIRE) of the rows that are newer. Several connections work at once,
//! each on its own batch; a batch that fails on a lost connection or a timeout is retried
//! whole on a new connection (both halves are idempotent), with exponential backoff.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use featurekit::Result;
use featurekit::feast::{Timestamp, encode_float, encode_int};
use featurekit::step::Progress;
use prost::Message;
use redis::{Cmd, Value};

use crate::latest::{Latest, Values};
use crate::target::{Conn, Target, failure, retryable};

/// How to write one view.
pub struct ViewWrite {
    pub project: String,
    /// Hash field of each feature, in the winners' feature order.
    pub fields: Vec<[u8; 4]>,
    pub ts_field: Vec<u8>,
    pub key_ttl: Option<u64>,
    pub force: bool,
}

/// How hard to push.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub connections: usize,
    pub batch: usize,
    pub attempts: u32,
    pub timeout: Duration,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub written: u64,
    /// Entities whose stored `_ts` was newer or equal.
    pub skipped: u64,
    pub retries: u64,
}

/// Writes every winner; returns what was written and skipped.
pub fn write(target: &Target, latest: &Latest, view: &ViewWrite, pace: Pace, progress: &Progress) -> Result<Counts> {
    let batches = latest.len().div_ceil(pace.batch);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failed: Mutex<Option<featurekit::Error>> = Mutex::new(None);
    let (written, skipped, retries) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        for _ in 0..pace.connections.min(batches) {
            s.spawn(|| {
                let mut conn: Option<Conn> = None;
                loop {
                    if stop.load(Ordering::Relaxed) || featurekit::step::stopping() {
                        return;
                    }
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= batches {
                        return;
                    }
                    let range = b * pace.batch..((b + 1) * pace.batch).min(latest.len());
                    let n = range.len() as u64;
                    match write_batch(target, &mut conn, latest, view, range, pace) {
                        Ok((w, tries)) => {
                            written.fetch_add(w, Ordering::Relaxed);
                            skipped.fetch_add(n - w, Ordering::Relaxed);
                            retries.fetch_add(tries, Ordering::Relaxed);
                            progress.advance(n);
                        }
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            failed.lock().expect("not poisoned").get_or_insert(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().expect("not poisoned") {
        return Err(e);
    }
    Ok(Counts {
        written: written.into_inner(),
        skipped: skipped.into_inner(),
        retries: retries.into_inner(),
    })
}

/// Runs `f` on a fresh connection, retried like a batch: for the few commands around the writes.
pub fn with_retries<T>(
    target: &Target,
    pace: Pace,
    mut f: impl FnMut(&mut Conn) -> std::result::Result<T, redis::RedisError>,
) -> Result<T> {
    let mut attempt = 0;
    loop {
        match target.connect(pace.timeout).and_then(|mut c| f(&mut c)) {
            Ok(v) => return Ok(v),
            Err(e) if retryable(&e) && attempt + 1 < pace.attempts => {
                let wait = backoff(attempt);
                tracing::warn!(error = %e, attempt = attempt + 1, wait_ms = wait.as_millis() as u64, "redis failed, retrying");
                std::thread::sleep(wait);
                attempt += 1;
            }
            Err(e) => return Err(give_up(&e, target, attempt)),
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64 << attempt.min(6)).min(Duration::from_secs(5))
}

fn give_up(e: &redis::RedisError, target: &Target, attempt: u32) -> featurekit::Error {
    let err = failure(e, &target.shown);
    if retryable(e) {
        err.context(format!("after {} attempts", attempt + 1))
    } else {
        err
    }
}

/// One batch, retried on retryable failures; returns (entities written, retries).
fn write_batch(
    target: &Target,
    conn: &mut Option<Conn>,
    latest: &Latest,
    view: &ViewWrite,
    range: std::ops::Range<usize>,
    pace: Pace,
) -> Result<(u64, u64)> {
    let keys: Vec<Vec<u8>> = range
        .clone()
        .map(|i| {
            let mut k = latest.codec().prefix().to_vec();
            k.extend_from_slice(latest.key(i));
            k.extend_from_slice(view.project.as_bytes());
            k
        })
        .collect();
    let mut attempt = 0;
    loop {
        let result = (|| {
            let c = match conn {
                Some(c) => c,
                None => conn.insert(target.connect(pace.timeout)?),
            };
            exchange(c, latest, view, range.clone(), &keys)
        })();
        match result {
            Ok(w) => return Ok((w, attempt as u64)),
            Err(e) if retryable(&e) && attempt + 1 < pace.attempts => {
                *conn = None;
                let wait = backoff(attempt);
                tracing::warn!(error = %e, attempt = attempt + 1, wait_ms = wait.as_millis() as u64, "redis failed, retrying the batch");
                std::thread::sleep(wait);
                attempt += 1;
            }
            Err(e) => return Err(give_up(&e, target, attempt)),
        }
    }
}

/// Reads the stored `_ts` of every key (unless forced), then writes the newer rows.
fn exchange(
    conn: &mut Conn,
    latest: &Latest,
    view: &ViewWrite,
    range: std::ops::Range<usize>,
    keys: &[Vec<u8>],
) -> std::result::Result<u64, redis::RedisError> {
    let newer: Vec<bool> = if view.force {
        vec![true; keys.len()]
    } else {
        let cmds = keys
            .iter()
            .map(|k| redis::cmd("HGET").arg(k).arg(&view.ts_field[..]).to_owned())
            .collect();
        let stored = conn.pipeline(cmds)?;
        stored
            .iter()
            .zip(range.clone())
            .map(|(v, i)| match v {
                Value::BulkString(b) => match Timestamp::decode_bytes(b) {
                    Some(ts) => Timestamp::from_micros(latest.ts[i]).nanos_since_epoch() > ts.nanos_since_epoch(),
                    None => true,
                },
                _ => true,
            })
            .collect()
    };
    let mut cmds: Vec<Cmd> = Vec::with_capacity(keys.len() * if view.key_ttl.is_some() { 2 } else { 1 });
    let mut value = Vec::with_capacity(16);
    for ((i, key), _) in range.zip(keys).zip(&newer).filter(|(_, n)| **n) {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key);
        for ((f, field), &dtype) in latest.features.iter().zip(&view.fields).zip(&latest.dtypes) {
            value.clear();
            match f {
                Values::Int { values, valid } => encode_int(dtype, valid[i].then(|| values[i]), &mut value),
                Values::Float(v) => encode_float(dtype, Some(v[i]), &mut value),
            }
            cmd.arg(&field[..]).arg(&value[..]);
        }
        cmd.arg(&view.ts_field[..])
            .arg(Timestamp::from_micros(latest.ts[i]).encode_to_vec());
        cmds.push(cmd);
        if let Some(ttl) = view.key_ttl {
            cmds.push(redis::cmd("EXPIRE").arg(key).arg(ttl).to_owned());
        }
    }
    let written = newer.iter().filter(|n| **n).count() as u64;
    if !cmds.is_empty() {
        conn.pipeline(cmds)?;
    }
    Ok(written)
}
