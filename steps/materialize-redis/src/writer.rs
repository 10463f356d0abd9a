//! Writing one view's winners into Redis: batches of entities, each a pipelined read of the
//! stored `_ts:<view>` (Feast's rule: a row not newer than what is stored is skipped) and a
//! pipelined HSET (+ EXPIRE) of the rows that are newer. Several connections work at once,
//! each on its own batch; a batch that fails on a lost connection or a timeout is retried
//! whole on a new connection (both halves are idempotent), with exponential backoff.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use featurekit::Result;
use featurekit::feast::{Timestamp, encode_float, encode_int};
use featurekit::online::latest::{Latest, Values};
use featurekit::online::store::{Batch, Conn, Pace, Target, retried};
use featurekit::step::Progress;
use prost::Message;
use redis::Value;

/// How to write one view.
pub struct ViewWrite {
    pub project: String,
    /// Hash field of each feature, in the winners' feature order.
    pub fields: Vec<[u8; 4]>,
    pub ts_field: Vec<u8>,
    pub key_ttl: Option<u64>,
    pub force: bool,
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
                // EXISTS first while the keys are new to this store; HGET straight away once not
                let mut fresh = true;
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
                    match write_batch(target, &mut conn, &mut fresh, latest, view, range, pace) {
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

/// One batch, retried on retryable failures; returns (entities written, retries).
fn write_batch(
    target: &Target,
    conn: &mut Option<Conn>,
    fresh: &mut bool,
    latest: &Latest,
    view: &ViewWrite,
    range: std::ops::Range<usize>,
    pace: Pace,
) -> Result<(u64, u64)> {
    retried(target, pace, conn, |c| exchange(c, fresh, latest, view, range.clone()))
}

/// Reads the stored `_ts` of every key (unless forced), then writes the newer rows.
///
/// On one node, while `fresh`, a single `EXISTS key...` of the whole batch comes first: when
/// none of its keys exists there is no `_ts` to read (a first load costs one command per batch
/// instead of one per entity). The first batch with existing keys clears `fresh`. A cluster
/// cannot run a multi-key EXISTS across slots, so it always reads.
fn exchange(
    conn: &mut Conn,
    fresh: &mut bool,
    latest: &Latest,
    view: &ViewWrite,
    range: std::ops::Range<usize>,
) -> std::result::Result<u64, redis::RedisError> {
    let (prefix, project) = (latest.codec().prefix(), view.project.as_bytes());
    let mut batch = conn.batch();
    let none_exist = if view.force || !*fresh || !matches!(batch, Batch::Resp { .. }) {
        false
    } else {
        batch.cmd(1 + range.len());
        batch.arg(&[b"EXISTS"]);
        for i in range.clone() {
            batch.arg(&[prefix, latest.key(i), project]);
        }
        let reply = conn.send(&batch)?;
        batch.clear();
        let none = matches!(reply.first(), Some(Value::Int(0)));
        *fresh = none;
        none
    };
    let newer: Vec<bool> = if view.force || none_exist {
        vec![true; range.len()]
    } else {
        for i in range.clone() {
            batch.cmd(3);
            batch.arg(&[b"HGET"]);
            batch.arg(&[prefix, latest.key(i), project]);
            batch.arg(&[&view.ts_field]);
        }
        let stored = conn.send(&batch)?;
        batch.clear();
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
    let ttl = view.key_ttl.map(|t| t.to_string());
    let mut value = Vec::with_capacity(16);
    let mut written = 0;
    for (i, _) in range.zip(&newer).filter(|(_, n)| **n) {
        let key: [&[u8]; 3] = [prefix, latest.key(i), project];
        batch.cmd(2 + 2 * (latest.features.len() + 1));
        batch.arg(&[b"HSET"]);
        batch.arg(&key);
        for ((f, field), &dtype) in latest.features.iter().zip(&view.fields).zip(&latest.dtypes) {
            value.clear();
            match f {
                Values::Int { values, valid } => encode_int(dtype, valid[i].then(|| values[i]), &mut value),
                Values::Float(v) => encode_float(dtype, Some(v[i]), &mut value),
            }
            batch.arg(&[field]);
            batch.arg(&[&value]);
        }
        value.clear();
        Timestamp::from_micros(latest.ts[i])
            .encode(&mut value)
            .expect("a Vec grows");
        batch.arg(&[&view.ts_field]);
        batch.arg(&[&value]);
        if let Some(ttl) = &ttl {
            batch.cmd(3);
            batch.arg(&[b"EXPIRE"]);
            batch.arg(&key);
            batch.arg(&[ttl.as_bytes()]);
        }
        written += 1;
    }
    conn.send(&batch)?;
    Ok(written)
}
