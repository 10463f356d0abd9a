//! The online audit (`--online URL`): what Redis serves, read back and compared with the row
//! Feast's semantics say it must serve.
//!
//! Per online view: the offline store's rows in `[START, END]` are folded into each entity's
//! latest row ([`Latest`]: ties by created_timestamp, the row `feast materialize` and
//! materialize-redis write); a deterministic [`sample`] of those entities is read from Redis,
//! one `HMGET key <features> _ts:<view>` per entity, pipelined per batch over several
//! connections; each `_ts` and feature value is decoded with Feast's bytes and compared at the
//! view's declared dtype ([`judge`]). An entity that Redis holds newer than its row in the
//! interval is looked up among the offline rows after END at exactly that event time (the row
//! a later run wrote); one that no offline row has is a mismatch.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use featurekit::artifact::{Location, ParquetScan};
use featurekit::feast::{EntityKeyCodec, KeyVersion, Timestamp, Val, Value, float_value, int_value};
use featurekit::online::latest::{Latest, Values};
use featurekit::online::store::{Conn, Pace, Target, retried, with_retries};
use featurekit::{Error, Result};
use prost::Message;

use crate::report::{Mismatch, OnlineReport};

/// How many mismatches the report shows per view.
pub const EXAMPLES: usize = 10;
/// The seed of the hash that picks the sample's random part: a fixed one, so that the same
/// offline rows give the same sample on every run and machine.
pub const SAMPLE_SEED: u32 = 0x22;

/// Where and how to audit.
pub struct Settings<'a> {
    pub target: &'a Target,
    pub pace: Pace,
    pub version: KeyVersion,
    pub project: &'a str,
    /// Entities to sample per view.
    pub sample: usize,
    /// Inclusive `[start, end]`, microseconds.
    pub range: (i64, i64),
    /// Now, microseconds: the freshness is measured from it.
    pub now: i64,
    /// Keep what Redis served for each sampled entity (`--sample-out`).
    pub keep_served: bool,
}

/// One view's audit: the report's numbers, and (with `keep_served`) what Redis served for each
/// sampled entity, one JSON object each.
pub struct Audited {
    pub report: OnlineReport,
    pub served: Vec<serde_json::Value>,
}

/// A view's entities as the offline store has them, and the Redis fields to read.
pub struct Expected<'a> {
    pub view: &'a str,
    pub latest: &'a Latest,
    pub join_keys: Vec<String>,
    pub features: Vec<String>,
    /// The feature fields, then `_ts:<view>`.
    pub fields: Vec<Vec<u8>>,
}

/// The sampled entities (indices into `latest`), `n` of them, or all when there are fewer: a
/// tenth the most active (most rows in the interval), up to a tenth with a null feature, the
/// rest the smallest of a seeded hash of their key. The same rows give the same sample.
pub fn sample(latest: &Latest, n: usize) -> Vec<usize> {
    let total = latest.len();
    if n >= total {
        return (0..total).collect();
    }
    let hash: Vec<u32> = (0..total).map(|i| key_hash(latest.key(i))).collect();
    let mut picked = vec![false; total];
    let mut out = Vec::with_capacity(n);
    let mut take = |candidates: Vec<usize>, want: usize, order: &dyn Fn(usize) -> (u32, u32, usize)| {
        let mut candidates: Vec<usize> = candidates.into_iter().filter(|&i| !picked[i]).collect();
        let want = want.min(candidates.len()).min(n - out.len());
        if want == 0 {
            return;
        }
        if want < candidates.len() {
            candidates.select_nth_unstable_by_key(want, |&i| order(i));
        }
        candidates.truncate(want);
        candidates.sort_unstable_by_key(|&i| order(i));
        for i in candidates {
            picked[i] = true;
            out.push(i);
        }
    };
    let tenth = (n / 10).max(1);
    take((0..total).collect(), tenth, &|i| {
        (u32::MAX - latest.rows[i], hash[i], i)
    });
    let with_nulls = (0..total).filter(|&i| has_null(latest, i)).collect();
    take(with_nulls, tenth, &|i| (hash[i], 0, i));
    take((0..total).collect(), n, &|i| (hash[i], 0, i));
    out
}

fn key_hash(key: &[u8]) -> u32 {
    murmur3::murmur3_32(&mut std::io::Cursor::new(key), SAMPLE_SEED).expect("reading memory cannot fail")
}

fn has_null(latest: &Latest, i: usize) -> bool {
    latest.features.iter().any(|f| match f {
        Values::Int { valid, .. } => !valid[i],
        Values::Float(v) => v[i].is_nan(),
    })
}

/// What Feast must serve for feature `k` of entity `i`: the member of the declared dtype, or
/// null.
fn expected(latest: &Latest, i: usize, k: usize) -> Option<Val> {
    let dtype = latest.dtypes[k];
    match &latest.features[k] {
        Values::Int { values, valid } => int_value(dtype, valid[i].then(|| values[i])),
        Values::Float(v) => float_value(dtype, Some(v[i])),
    }
}

/// A stored value as Feast reads it (a missing field or empty bytes are null), or why it
/// cannot be read.
type Served = std::result::Result<Option<Val>, String>;

/// Reads one reply of an HMGET as [`Served`].
fn served(reply: &redis::Value) -> Served {
    match reply {
        redis::Value::Nil => Ok(None),
        redis::Value::BulkString(b) => Value::decode(&b[..]).map(|v| v.val).map_err(|_| {
            let hex: String = b.iter().take(16).map(|b| format!("{b:02x}")).collect();
            format!("undecodable bytes {hex}")
        }),
        other => Err(format!("a reply of another type: {other:?}")),
    }
}

fn show(v: &Served) -> String {
    match v {
        Ok(Some(v)) => v.to_string(),
        Ok(None) => "null".into(),
        Err(e) => e.clone(),
    }
}

fn show_expected(v: &Option<Val>, dtype: featurekit::spec::Dtype) -> String {
    match v {
        Some(v) => format!(
            "{} ({})",
            v.to_string().split(" (").next().unwrap_or(""),
            dtype_name(dtype)
        ),
        None => "null".into(),
    }
}

fn dtype_name(d: featurekit::spec::Dtype) -> &'static str {
    crate::rules::dtype_name(d)
}

fn rfc_nanos(ns: i128) -> String {
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, nanos)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| ns.to_string())
}

impl Expected<'_> {
    fn entity(&self, latest: &Latest, i: usize) -> String {
        match latest.codec().decode_values(latest.key(i)) {
            Some(values) => self
                .join_keys
                .iter()
                .zip(values)
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            None => "(undecodable key)".into(),
        }
    }

    fn entity_json(&self, i: usize) -> serde_json::Value {
        let latest = self.latest;
        let mut m = serde_json::Map::new();
        for (k, v) in self
            .join_keys
            .iter()
            .zip(latest.codec().decode_values(latest.key(i)).unwrap_or_default())
        {
            let v = match v {
                featurekit::feast::KeyValue::Int64(x) => serde_json::Value::from(x),
                featurekit::feast::KeyValue::String(s) => serde_json::Value::from(s),
            };
            m.insert(k.clone(), v);
        }
        serde_json::Value::Object(m)
    }

    fn redis_key(&self, codec: &EntityKeyCodec, i: usize, project: &str) -> Vec<u8> {
        [codec.prefix(), self.latest.key(i), project.as_bytes()].concat()
    }
}

/// An entity Redis holds newer than its row in the interval: its index, `_ts` (ns), values.
type Newer = (usize, i128, Vec<Served>);

/// What one batch (or a merge of them) found.
#[derive(Default)]
struct Tally {
    matched: u64,
    missing: u64,
    stale: u64,
    wrong: u64,
    /// Newest and oldest `_ts` of the sampled entities Redis holds, nanoseconds.
    newest: Option<i128>,
    oldest: Option<i128>,
    /// Entities held newer than their row in the interval.
    newer: Vec<Newer>,
    /// (sample position, mismatch), the first few of each batch.
    examples: Vec<(usize, Mismatch)>,
    served: Vec<(usize, serde_json::Value)>,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.matched += o.matched;
        self.missing += o.missing;
        self.stale += o.stale;
        self.wrong += o.wrong;
        self.newest = self.newest.max(o.newest);
        self.oldest = match (self.oldest, o.oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.newer.extend(o.newer);
        self.examples.extend(o.examples);
        self.served.extend(o.served);
    }

    fn example(&mut self, pos: usize, m: Mismatch) {
        if self.examples.len() < EXAMPLES {
            self.examples.push((pos, m));
        }
    }
}

/// Audits one view; `offline` (the view's rows) is read again when Redis holds some entity
/// newer than its interval row.
pub async fn audit(s: &Settings<'_>, e: &Expected<'_>, offline: &Location) -> Result<Audited> {
    let picked = sample(e.latest, s.sample);
    // the reads are blocking, on threads of their own: this worker of the runtime waits
    let mut tally = tokio::task::block_in_place(|| fetch(s, e, &picked))?;
    let later = std::mem::take(&mut tally.newer);
    let (mut not_offline, mut newer) = (0, 0);
    if !later.is_empty() {
        let found = later_rows(s, e, &later, ParquetScan::open(offline).await?).await?;
        for (i, ts, values) in later {
            let pos = picked.iter().position(|&p| p == i).unwrap_or(usize::MAX);
            let entity = e.entity(e.latest, i);
            match found.get(e.latest.key(i)) {
                Some(&(ref latest, j)) => {
                    let diffs = differences(e, latest, j, &values, &entity);
                    if diffs.is_empty() {
                        tally.matched += 1;
                        newer += 1;
                    } else {
                        tally.wrong += 1;
                        diffs.into_iter().for_each(|m| tally.example(pos, m));
                    }
                }
                None => {
                    not_offline += 1;
                    tally.example(
                        pos,
                        Mismatch {
                            entity,
                            problem: "not_offline".into(),
                            feature: format!("_ts:{}", e.view),
                            offline: format!(
                                "latest row in the interval at {}; no row at the served time",
                                rfc_nanos(e.latest.ts[i] as i128 * 1000)
                            ),
                            online: rfc_nanos(ts),
                        },
                    );
                }
            }
        }
    }
    tally.examples.sort_by_key(|(pos, _)| *pos);
    tally.examples.truncate(EXAMPLES);
    tally.served.sort_by_key(|(pos, _)| *pos);
    let checked = picked.len() as u64;
    let mismatched = tally.missing + tally.stale + tally.wrong + not_offline;
    let hint = if checked > 0 && tally.missing == checked {
        tokio::task::block_in_place(|| diagnose(s, e, &picked))?
    } else {
        None
    };
    let age = |ns: Option<i128>| ns.map(|ns| (s.now as i128 * 1000 - ns) as f64 / 1e9);
    Ok(Audited {
        report: OnlineReport {
            entities: e.latest.len() as u64,
            checked,
            matched: tally.matched,
            missing: tally.missing,
            stale: tally.stale,
            wrong: tally.wrong,
            not_offline,
            newer,
            mismatch_rate: if checked == 0 {
                0.0
            } else {
                mismatched as f64 / checked as f64
            },
            newest_ts: tally.newest.map(rfc_nanos),
            oldest_ts: tally.oldest.map(rfc_nanos),
            newest_age_seconds: age(tally.newest),
            oldest_age_seconds: age(tally.oldest),
            hint,
            mismatches: tally.examples.into_iter().map(|(_, m)| m).collect(),
        },
        served: tally.served.into_iter().map(|(_, v)| v).collect(),
    })
}

/// Reads every sampled entity's hash, batches spread over the connections, and judges it.
fn fetch(s: &Settings<'_>, e: &Expected<'_>, picked: &[usize]) -> Result<Tally> {
    let batches = picked.len().div_ceil(s.pace.batch);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let total: Mutex<Tally> = Mutex::new(Tally::default());
    std::thread::scope(|scope| {
        for _ in 0..s.pace.connections.min(batches) {
            scope.spawn(|| {
                let mut conn: Option<Conn> = None;
                let mut mine = Tally::default();
                loop {
                    if stop.load(Ordering::Relaxed) || featurekit::step::stopping() {
                        break;
                    }
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= batches {
                        break;
                    }
                    let range = b * s.pace.batch..((b + 1) * s.pace.batch).min(picked.len());
                    match read_batch(s, e, &mut conn, &picked[range.clone()]) {
                        Ok(replies) => {
                            for (pos, reply) in range.zip(replies) {
                                judge(s, e, pos, picked[pos], &reply, &mut mine);
                            }
                        }
                        Err(err) => {
                            stop.store(true, Ordering::Relaxed);
                            failed.lock().expect("not poisoned").get_or_insert(err);
                            break;
                        }
                    }
                }
                total.lock().expect("not poisoned").merge(mine);
            });
        }
    });
    if let Some(err) = failed.into_inner().expect("not poisoned") {
        return Err(err);
    }
    Ok(total.into_inner().expect("not poisoned"))
}

/// One pipelined read: `HMGET key <fields>` per entity.
fn read_batch(
    s: &Settings<'_>,
    e: &Expected<'_>,
    conn: &mut Option<Conn>,
    entities: &[usize],
) -> Result<Vec<redis::Value>> {
    let (prefix, project) = (e.latest.codec().prefix(), s.project.as_bytes());
    retried(s.target, s.pace, conn, |c| {
        let mut batch = c.batch();
        for &i in entities {
            batch.cmd(2 + e.fields.len());
            batch.arg(&[b"HMGET"]);
            batch.arg(&[prefix, e.latest.key(i), project]);
            for f in &e.fields {
                batch.arg(&[f]);
            }
        }
        c.send(&batch)
    })
    .map(|(replies, _)| replies)
}

/// Judges one entity's reply against its interval row.
fn judge(s: &Settings<'_>, e: &Expected<'_>, pos: usize, i: usize, reply: &redis::Value, t: &mut Tally) {
    let latest = e.latest;
    let items: &[redis::Value] = match reply {
        redis::Value::Array(items) => items,
        _ => &[],
    };
    let n = e.features.len();
    let entity = || e.entity(latest, i);
    let offline_ns = latest.ts[i] as i128 * 1000;
    let ts_field = format!("_ts:{}", e.view);
    let ts = match items.get(n) {
        Some(redis::Value::BulkString(b)) => Timestamp::decode_bytes(b),
        _ => {
            t.missing += 1;
            t.example(
                pos,
                Mismatch {
                    entity: entity(),
                    problem: "missing".into(),
                    feature: ts_field,
                    offline: rfc_nanos(offline_ns),
                    online: "no hash (or no field of this view)".into(),
                },
            );
            keep(s, e, i, None, &[], t, pos);
            return;
        }
    };
    let Some(ts) = ts.map(Timestamp::nanos_since_epoch) else {
        t.wrong += 1;
        t.example(
            pos,
            Mismatch {
                entity: entity(),
                problem: "wrong".into(),
                feature: ts_field,
                offline: rfc_nanos(offline_ns),
                online: "undecodable timestamp".into(),
            },
        );
        return;
    };
    t.newest = t.newest.max(Some(ts));
    t.oldest = Some(t.oldest.map_or(ts, |o| o.min(ts)));
    let values: Vec<_> = items[..n.min(items.len())].iter().map(served).collect();
    keep(s, e, i, Some(ts), &values, t, pos);
    match ts.cmp(&offline_ns) {
        std::cmp::Ordering::Less => {
            t.stale += 1;
            t.example(
                pos,
                Mismatch {
                    entity: entity(),
                    problem: "stale".into(),
                    feature: ts_field,
                    offline: rfc_nanos(offline_ns),
                    online: rfc_nanos(ts),
                },
            );
        }
        std::cmp::Ordering::Greater => t.newer.push((i, ts, values)),
        std::cmp::Ordering::Equal => {
            let diffs = differences(e, latest, i, &values, &entity());
            if diffs.is_empty() {
                t.matched += 1;
            } else {
                t.wrong += 1;
                diffs.into_iter().for_each(|m| t.example(pos, m));
            }
        }
    }
}

/// The features whose served value is not `row`'s (of `latest`) at the declared dtype.
fn differences(e: &Expected<'_>, latest: &Latest, row: usize, values: &[Served], entity: &str) -> Vec<Mismatch> {
    let mut out = vec![];
    for (k, name) in e.features.iter().enumerate() {
        let want = expected(latest, row, k);
        let got = values.get(k).cloned().unwrap_or(Ok(None));
        let same = match (&want, &got) {
            (None, Ok(None)) => true,
            (Some(a), Ok(Some(b))) => a.same(b),
            _ => false,
        };
        if !same {
            out.push(Mismatch {
                entity: entity.to_string(),
                problem: "wrong".into(),
                feature: name.clone(),
                offline: show_expected(&want, latest.dtypes[k]),
                online: show(&got),
            });
        }
    }
    out
}

/// With `--sample-out`: what Redis served for entity `i`, decoded.
fn keep(s: &Settings<'_>, e: &Expected<'_>, i: usize, ts: Option<i128>, values: &[Served], t: &mut Tally, pos: usize) {
    if !s.keep_served {
        return;
    }
    let mut features = serde_json::Map::new();
    for (name, v) in e.features.iter().zip(values) {
        let json = match v {
            Ok(None) => serde_json::Value::Null,
            Ok(Some(Val::Int64Val(x))) => (*x).into(),
            Ok(Some(Val::Int32Val(x))) => (*x).into(),
            Ok(Some(Val::DoubleVal(x))) => (*x).into(),
            Ok(Some(Val::FloatVal(x))) => (*x as f64).into(),
            Ok(Some(Val::BoolVal(x))) => (*x).into(),
            Ok(Some(other)) => other.to_string().into(),
            Err(err) => format!("error: {err}").into(),
        };
        features.insert(name.clone(), json);
    }
    t.served.push((
        pos,
        serde_json::json!({
            "view": e.view,
            "entity": e.entity_json(i),
            "event_timestamp": ts.map(rfc_nanos),
            "features": features,
        }),
    ));
}

/// The offline rows after END of the entities Redis holds newer, at exactly the served time
/// (value part of the key -> the fold and the entity's slot in it).
async fn later_rows(
    s: &Settings<'_>,
    e: &Expected<'_>,
    later: &[Newer],
    scan: ParquetScan,
) -> Result<HashMap<Vec<u8>, (std::sync::Arc<Latest>, usize)>> {
    let wanted: HashMap<Vec<u8>, i64> = later
        .iter()
        .filter(|(_, ns, _)| ns % 1000 == 0)
        .map(|(i, ns, _)| (e.latest.key(*i).to_vec(), (*ns / 1000) as i64))
        .collect();
    let layout = e.latest.layout().clone();
    let mut rows = Latest::new(
        e.latest.codec().clone(),
        layout,
        (s.range.1.saturating_add(1), i64::MAX),
    )
    .only(wanted);
    rows.read(scan).await?;
    let rows = std::sync::Arc::new(rows);
    Ok((0..rows.len())
        .map(|j| (rows.key(j).to_vec(), (rows.clone(), j)))
        .collect())
}

/// Why every sampled entity is missing, when Redis says: their keys under the other
/// entity-key version, or under another project.
fn diagnose(s: &Settings<'_>, e: &Expected<'_>, picked: &[usize]) -> Result<Option<String>> {
    let (target, pace) = (s.target, s.pace);
    let probe = &picked[..picked.len().min(20)];
    let (other, number) = match s.version {
        KeyVersion::V3 => (KeyVersion::V2, 2),
        KeyVersion::V2 => (KeyVersion::V3, 3),
    };
    let join_keys: Vec<(&str, featurekit::spec::ValueType)> = e
        .latest
        .layout()
        .join_keys
        .iter()
        .map(|(n, t)| (n.as_str(), *t))
        .collect();
    let other = EntityKeyCodec::new(other, &join_keys);
    let keys: Vec<Vec<u8>> = probe.iter().map(|&i| e.redis_key(&other, i, s.project)).collect();
    let there = with_retries(target, pace, |c| {
        let mut batch = c.batch();
        for k in &keys {
            batch.cmd(2);
            batch.arg(&[b"EXISTS"]);
            batch.arg(&[k]);
        }
        c.send(&batch)
    })?
    .iter()
    .filter(|v| matches!(v, redis::Value::Int(1)))
    .count();
    if there > 0 {
        return Ok(Some(format!(
            "{there} of the first {} sampled entities are there with entity_key_serialization_version {number} (--entity-key-version {number})",
            probe.len()
        )));
    }
    if target.cluster {
        return Ok(None);
    }
    // the first sampled entity's key with any project after it
    let stem = [e.latest.codec().prefix(), e.latest.key(picked[0])].concat();
    let mut pattern = Vec::with_capacity(stem.len() * 2 + 1);
    for &b in &stem {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(b);
    }
    pattern.push(b'*');
    let projects = with_retries(target, pace, |c| {
        let (mut cursor, mut found) = (0u64, std::collections::BTreeSet::new());
        for _ in 0..100 {
            let reply = c.query(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern[..])
                    .arg("COUNT")
                    .arg(1000),
            )?;
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::FromRedisValue::from_redis_value(reply)?;
            for k in keys {
                found.insert(String::from_utf8_lossy(&k[stem.len()..]).into_owned());
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        Ok(found)
    })?;
    if projects.is_empty() {
        return Ok(None);
    }
    let names: Vec<String> = projects.iter().take(5).map(|p| format!("`{p}`")).collect();
    Ok(Some(format!(
        "{}'s key is there for project {} (the spec's project is `{}`)",
        e.entity(e.latest, picked[0]),
        names.join(", "),
        s.project
    )))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray};
    use featurekit::online::latest::Layout;
    use featurekit::spec::ValueType;

    use super::*;

    /// 100 users, one row each; users 90..99 have four more rows (the most active); users 0..9
    /// a null feature.
    fn latest() -> Latest {
        let mut users = vec![];
        for u in 0..100i64 {
            users.extend(std::iter::repeat_n(u, if u >= 90 { 5 } else { 1 }));
        }
        let n = users.len();
        let ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from_iter_values(
            (0..n as i64).map(|i| 1000 + i),
        ));
        let feature: ArrayRef = Arc::new(users.iter().map(|&u| (u >= 10).then_some(u)).collect::<Int64Array>());
        let batch = RecordBatch::try_from_iter([
            ("user_id", Arc::new(Int64Array::from(users)) as ArrayRef),
            ("event_timestamp", ts),
            ("count", feature),
        ])
        .unwrap();
        let layout = Layout {
            join_keys: vec![("user_id".into(), ValueType::Int64)],
            timestamp: "event_timestamp".into(),
            created: None,
            features: vec![("count".into(), featurekit::spec::Dtype::Int64)],
        };
        let codec = EntityKeyCodec::new(KeyVersion::V3, &[("user_id", ValueType::Int64)]);
        let mut latest = Latest::new(codec, layout, (0, i64::MAX));
        latest.add(&batch, "test", 0).unwrap();
        latest
    }

    fn user(latest: &Latest, i: usize) -> i64 {
        match latest.codec().decode_values(latest.key(i)).unwrap()[0] {
            featurekit::feast::KeyValue::Int64(u) => u,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_sample_is_fixed_and_holds_the_most_active_and_nulls() {
        let latest = latest();
        let picked = sample(&latest, 20);
        assert_eq!(picked.len(), 20);
        let users: Vec<i64> = picked.iter().map(|&i| user(&latest, i)).collect();
        let mut distinct = users.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 20, "{users:?}");
        assert!(users[..2].iter().all(|u| *u >= 90), "the most active first: {users:?}");
        assert!(users[2..4].iter().all(|u| *u < 10), "then some with nulls: {users:?}");
        assert_eq!(sample(&latest, 20), picked, "the same rows, the same sample");
        assert_eq!(sample(&latest, 1000).len(), 100, "all when fewer");
        assert!(
            !users[4..].is_sorted(),
            "the rest by hash, not the first keys: {users:?}"
        );
    }
}
