//! compute-windows: exact point-in-time window features, as Feast offline-store Parquet.
//!
//! The data flow: read the raw events once (projected columns, row groups pruned to the
//! lookback range, decoded in parallel), keep this shard's entities and split them into
//! partitions by entity hash; then each worker thread takes a partition (the largest or the
//! smallest left), groups it by entity with each entity's events in time order, runs the window [`kernel`]
//! for every feature view, and streams the rows into its own Parquet files ([`output`]),
//! one per UTC day.

mod cli;
pub mod kernel;
mod load;
pub mod output;
mod pool;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use featurekit::artifact::{Location, ParquetScan, ParquetSink, ScanStats, WriteOptions};
use featurekit::spec::{Aggregation, Spec};
use featurekit::step::{Progress, RunSummary};
use featurekit::{Error, Result};
use futures::StreamExt;

pub use cli::Args;
pub use load::fnv1a;

use kernel::{FeaturePlan, Input, Kernel, Partition, Plan, Range, RowSet};
use load::{Columns, Loader, Sorter, Split};
use output::{Batcher, DAY, FileKey, Files, Naming, Stamp};

/// Plans every view's features over shared input columns.
fn plans(spec: &Spec) -> (Columns, Vec<Plan>) {
    let entity = spec.source.entity_column.clone();
    let entity_type = spec
        .feature_views
        .first()
        .and_then(|v| spec.entity(&v.entities[0]))
        .map_or(featurekit::spec::ValueType::Int64, |e| e.value_type);
    let mut columns = Columns {
        entity,
        entity_type,
        ts: spec.source.timestamp_column.clone(),
        values: vec![],
        keys: vec![],
    };
    let slot = |list: &mut Vec<String>, name: &str| match list.iter().position(|c| c == name) {
        Some(i) => i,
        None => {
            list.push(name.to_string());
            list.len() - 1
        }
    };
    let mut plans = Vec::new();
    for view in &spec.feature_views {
        let mut windows: Vec<i64> = Vec::new();
        let mut features = Vec::new();
        for f in &view.features {
            let w = f.window.micros();
            let window = match windows.iter().position(|&x| x == w) {
                Some(i) => i,
                None => {
                    windows.push(w);
                    windows.len() - 1
                }
            };
            let input = match (f.aggregation, &f.column) {
                (Aggregation::Count, _) => Input::Events,
                (Aggregation::CountDistinct, Some(c)) => Input::Key(slot(&mut columns.keys, c)),
                (_, Some(c)) => Input::Value(slot(&mut columns.values, c)),
                (_, None) => unreachable!("the spec checks that aggregations other than count have a column"),
            };
            features.push(FeaturePlan {
                aggregation: f.aggregation,
                input,
                window,
                empty: f.empty,
            });
        }
        plans.push(Plan { windows, features });
    }
    (columns, plans)
}

/// What a run shares with its workers.
struct Job {
    plans: Vec<Plan>,
    schemas: Vec<SchemaRef>,
    view_dirs: Vec<Location>,
    names: Option<Arc<Vec<String>>>,
    naming: Naming,
    range: Range,
    /// The run's days: `first_day .. first_day + days`, in days since the epoch.
    first_day: i64,
    days: usize,
    as_of_day: i64,
    created: i64,
    /// Each view's.
    options: Vec<WriteOptions>,
    /// Rows of a partition put in file order and written at a time (`--write-rows`): the
    /// batcher's buffers (about 70 bytes a row) are sized by this, not by the largest partition
    /// (on the benchmark's data the busiest user alone has 1.09 million events). At 262,144:
    /// 12% fewer page faults and 80 MB less peak RSS than whole partitions, at no measurable
    /// cost in instructions; far smaller values cost time (more, smaller writes).
    write_rows: usize,
    failed: AtomicBool,
}

/// Files whose rows are all written, waiting to be finished (their row groups encoded out,
/// their footers written, committed), and how many workers are still computing. A worker out
/// of partitions finishes files, its own and the others' as they come, until none are left
/// and no worker computes: a worker whose partitions ended first is not idle while another
/// still has files to finish (it still waits while the other computes).
struct Finishing<T = Unfinished> {
    state: std::sync::Mutex<(Vec<T>, usize)>,
    ready: std::sync::Condvar,
}

/// A file to finish: its view, name and sink.
type Unfinished = (usize, String, ParquetSink);

impl<T> Finishing<T> {
    fn new(workers: usize) -> Finishing<T> {
        Finishing {
            state: std::sync::Mutex::new((Vec::new(), workers)),
            ready: std::sync::Condvar::new(),
        }
    }

    /// Hands over a worker's files: it computes no more (also when it stops early: then
    /// its files are dropped, unfinished).
    fn hand_over(&self, files: Vec<T>) {
        let mut state = self.state.lock().expect("finishing queue");
        state.0.extend(files);
        state.1 -= 1;
        self.ready.notify_all();
    }

    /// The next file to finish, waiting while a worker still computes; `None` once all are
    /// taken, or when the run fails or is stopped: then the files left are dropped unfinished
    /// (their uploads aborted) here, on a worker, in the runtime's context.
    fn next(&self, failed: &AtomicBool) -> Option<T> {
        let mut state = self.state.lock().expect("finishing queue");
        loop {
            if failed.load(Ordering::Relaxed) || featurekit::step::stopping() {
                let abandoned = std::mem::take(&mut state.0);
                drop(state);
                drop(abandoned);
                return None;
            }
            if let Some(file) = state.0.pop() {
                return Some(file);
            }
            if state.1 == 0 {
                return None;
            }
            state = self.ready.wait(state).expect("finishing queue");
        }
    }

    /// Wakes the waiting workers (when the run fails).
    fn wake(&self) {
        let _state = self.state.lock().expect("finishing queue");
        self.ready.notify_all();
    }
}

/// Hands a worker's files over when it stops computing, however it stops (the first thing
/// [`work`] makes, so that every worker's count is taken off once: the pool runs every
/// worker, one thread each).
struct HandOver<'a, T = Unfinished> {
    finishing: &'a Finishing<T>,
    files: Vec<T>,
}

impl<T> Drop for HandOver<'_, T> {
    fn drop(&mut self) {
        self.finishing.hand_over(std::mem::take(&mut self.files));
    }
}

/// A file a worker wrote.
struct Written {
    view: usize,
    name: String,
    rows: u64,
}

/// Time a worker spent in each stage, summed over its partitions.
#[derive(Debug, Default, Clone, Copy)]
struct Stages {
    sort: std::time::Duration,
    windows: std::time::Duration,
    batch: std::time::Duration,
    write: std::time::Duration,
}

/// Why a worker stopped early: its own error, or another worker's (or a signal).
enum Stop {
    Failed(Error),
    Cancelled,
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Failed(e)
    }
}

/// Partitions not yet taken (each as the pieces it was read in), the smallest first.
/// Even-numbered workers take the largest left, so a partition holding a very heavy entity
/// starts early; odd-numbered ones take the smallest, so their sort and kernel buffers
/// (sized by the largest partition they have taken) grow only as the pieces are freed,
/// instead of every worker sizing them for a large partition while all the pieces are still
/// held: the run's peak memory (on the benchmark, 5 to 10% fewer page faults, measured
/// before `--write-rows` capped the write buffers). The price: the last partitions an odd
/// worker takes are the middle-sized ones, not the smallest, so the workers may end their
/// partitions further apart than largest-first would leave them (up to 70 ms on the
/// benchmark); finishing the files together ([`Finishing`]) fills that gap.
type Queue = std::sync::Mutex<std::collections::VecDeque<Vec<Partition>>>;

/// One worker: takes partitions until none are left, sorts each, computes every view,
/// writes its own files. Its buffers are reused from partition to partition.
fn work(
    job: &Job,
    worker: usize,
    queue: &Queue,
    finishing: &Finishing,
    progress: &Progress,
    handle: &tokio::runtime::Handle,
) -> Result<(Vec<Written>, Stages), Stop> {
    let mut stages = Stages::default();
    let mut hand_over = HandOver {
        finishing,
        files: Vec::new(),
    };
    let mut sinks: BTreeMap<(usize, FileKey), ParquetSink> = BTreeMap::new();
    let mut sorter = Sorter::default();
    let mut part = Partition::default();
    let mut kernels: Vec<Kernel> = job.plans.iter().map(Kernel::new).collect();
    let mut batchers: Vec<Batcher> = job.schemas.iter().map(Batcher::new).collect();
    let stamp = Stamp {
        names: job.names.as_deref().map(Vec::as_slice),
        created: job.created,
    };
    // the rows of each partition: its events, one file per day, and its as-of rows
    let mut sets = vec![(
        RowSet::Events,
        Files::Days {
            first_day: job.first_day,
            days: job.days,
        },
    )];
    if let Some(as_of) = job.range.as_of {
        sets.push((
            RowSet::AsOf,
            Files::AsOf {
                as_of,
                day: job.as_of_day,
            },
        ));
    }
    loop {
        // (taken in a statement of its own: a guard in the `while let` would live, and lock
        // the queue, for the whole iteration)
        let next = {
            let mut queue = queue.lock().expect("partition queue");
            if worker.is_multiple_of(2) {
                queue.pop_back()
            } else {
                queue.pop_front()
            }
        };
        let Some(pieces) = next else { break };
        if pieces.is_empty() {
            continue; // no rows fell in this partition
        }
        if job.failed.load(Ordering::Relaxed) || featurekit::step::stopping() {
            return Err(Stop::Cancelled);
        }
        let clock = Instant::now();
        sorter.sort(pieces, &mut part);
        stages.sort += clock.elapsed();
        for (v, (kernel, batcher)) in kernels.iter_mut().zip(&mut batchers).enumerate() {
            let clock = Instant::now();
            kernel.prepare(&part, job.range);
            stages.windows += clock.elapsed();
            for &(set, files) in &sets {
                let n = kernel.rows(set).len();
                for from in (0..n).step_by(job.write_rows) {
                    let rows = from..n.min(from + job.write_rows);
                    let clock = Instant::now();
                    batcher.place(&part, &kernel.rows(set)[rows.clone()], files);
                    let placed = Instant::now();
                    batcher.fill(kernel, &part, set, rows);
                    let filled = Instant::now();
                    let batches = batcher.batches(&stamp);
                    let batched = Instant::now();
                    stages.batch += (placed - clock) + (batched - filled);
                    stages.windows += filled - placed;
                    for (key, batch) in batches {
                        let sink = match sinks.entry((v, key)) {
                            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                            std::collections::btree_map::Entry::Vacant(e) => {
                                let target = job.view_dirs[v].join(&job.naming.file(key, worker));
                                e.insert(handle.block_on(ParquetSink::create(
                                    &target,
                                    job.schemas[v].clone(),
                                    &job.options[v],
                                ))?)
                            }
                        };
                        handle.block_on(sink.write(&batch))?;
                    }
                    stages.write += batched.elapsed();
                }
            }
        }
        progress.advance(part.len() as u64);
    }
    hand_over.files = sinks
        .into_iter()
        .map(|((view, key), sink)| (view, job.naming.file(key, worker), sink))
        .collect();
    drop(hand_over);
    let mut written = Vec::new();
    while let Some((view, name, sink)) = finishing.next(&job.failed) {
        let clock = Instant::now();
        let done = handle.block_on(sink.finish())?;
        stages.write += clock.elapsed();
        written.push(Written {
            view,
            name,
            rows: done.rows,
        });
    }
    if job.failed.load(Ordering::Relaxed) || featurekit::step::stopping() {
        return Err(Stop::Cancelled);
    }
    Ok((written, stages))
}

/// Reads the raw input: every file's footer, each file's schema checked against the columns
/// read, then the row groups that may hold `[split.lo, split.hi)`, each decoded and split into
/// partitions on a compute thread (whose allocator then has the decoded memory at hand for the
/// pieces) while the next ones are fetched.
async fn read_input(
    input: &Location,
    split: &Arc<Split>,
    pool: &Arc<pool::Pool>,
    threads: usize,
) -> Result<(Loader, ScanStats)> {
    let columns = &split.columns;
    let scan = ParquetScan::open(input)
        .await?
        .columns(columns.names())
        .prune(&columns.ts, split.lo, split.hi)
        .plan()
        .await?;
    for (file, schema) in scan.schemas() {
        load::check_schema(columns, file, schema)?;
    }
    let stats = scan.stats;
    tracing::info!(
        input = %input, files = stats.files, row_groups = stats.row_groups, pruned = stats.row_groups_pruned,
        rows = stats.rows, "reading"
    );
    let mut loader = Loader::new(split);
    let mut pieces = std::pin::pin!(
        scan.fetches(threads + 1)
            .map(|fetched| {
                let (split, pool) = (split.clone(), pool.clone());
                async move {
                    let fetched = fetched?;
                    pool.run(move || split.split(&fetched.decode()?)).await?
                }
            })
            .buffered(threads)
    );
    while let Some(piece) = pieces.next().await {
        loader.absorb(piece?);
    }
    Ok((loader, stats))
}

/// Reads raw input at `input` for `spec` as a run does (footers, the schema check, every row
/// group that may hold `[lo, hi)` decoded and split), on one compute thread, and returns the
/// rows read: the path every raw file takes, for the fuzz target (`fuzz/`) and its
/// regression test.
pub async fn read_raw(spec: &Spec, input: &Location, lo: i64, hi: i64) -> Result<u64> {
    let (columns, _) = plans(spec);
    let split = Arc::new(Split {
        columns,
        lo,
        hi,
        shard: 0,
        shards: 1,
        partitions: 16,
    });
    let pool = Arc::new(pool::Pool::new(1)?);
    let (loader, _) = read_input(input, &split, &pool, 1).await?;
    Ok(loader.rows_read)
}

/// The step: see the crate documentation and README.md.
pub async fn run(args: Args, summary: &mut RunSummary) -> Result<()> {
    let started = Instant::now();
    let (start, end) = (args.start.timestamp_micros(), args.end.timestamp_micros());
    if start >= end {
        return Err(Error::usage(format!(
            "--start {} must be before --end {}",
            args.start, args.end
        )));
    }
    if args.shard >= args.shards {
        return Err(Error::usage(format!(
            "--shard {} must be below --shards {}",
            args.shard, args.shards
        )));
    }
    let as_of = (!args.no_as_of).then(|| args.as_of.map_or(end, |t| t.timestamp_micros()));
    let spec = Spec::load(&args.spec).map_err(Error::config)?;
    let (columns, plans) = plans(&spec);
    let longest = plans.iter().map(Plan::longest).max().unwrap_or(0);
    let (lo, hi) = (start - longest, end.max(as_of.unwrap_or(end)));
    let created = args
        .created_at
        .map_or_else(|| chrono::Utc::now().timestamp_micros(), |t| t.timestamp_micros());
    let threads = args
        .threads
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    // 1. read: footers, then row groups in parallel, into partitions
    let input = Location::parse(&args.input)?;
    let split = Arc::new(Split {
        columns,
        lo,
        hi,
        shard: args.shard,
        shards: args.shards,
        partitions: threads * 16,
    });
    let pool = Arc::new(pool::Pool::new(threads)?);
    let (mut loader, stats) = read_input(&input, &split, &pool, threads).await?;
    if stats.files == 0 && !args.allow_empty_input {
        return Err(Error::no_input(format!(
            "{input}: no Parquet object there (names starting with `_` or `.` are skipped); \
             --allow-empty-input takes it as a day without events"
        )));
    }
    summary.rows_in = loader.rows_read;
    if loader.rows_in_range == 0 && stats.files > 0 && !args.allow_empty_input {
        return Err(Error::no_input(format!(
            "{input}: {} files but no event from {} to {} (start minus the longest window, end); \
             --allow-empty-input takes it as a day without events",
            stats.files,
            micros_rfc3339(lo),
            micros_rfc3339(hi)
        )));
    }
    summary.set("row_groups_pruned", stats.row_groups_pruned);
    summary.phase("read", started);

    if loader.invalid.count > 0 {
        let (file, row) = loader.invalid.first.clone().expect("first invalid row recorded");
        if !args.drop_invalid {
            return Err(Error::data(format!(
                "{file}: {} rows have a null `{}` or `{}`, the first at row {row} (--drop-invalid drops them)",
                loader.invalid.count, spec.source.entity_column, spec.source.timestamp_column
            )));
        }
        tracing::warn!(rows = loader.invalid.count, first_file = %file, first_row = row, "dropped rows with a null entity or timestamp");
    }
    summary.set("invalid_rows_dropped", loader.invalid.count);

    // 2. lookback: does the input reach back to start - longest window?
    // row groups with statistics (all pruned ones have them) and the rows read cover the input
    let earliest = match (stats.min, loader.earliest) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let lookback_complete = match earliest {
        Some(e) => e <= lo,
        None => false, // no events at all: nothing shows the history is there
    };
    summary.set("lookback_complete", lookback_complete);
    summary.set("lookback_needed_from", micros_rfc3339(lo));
    if let Some(e) = earliest {
        summary.set("earliest_event", micros_rfc3339(e));
    }
    if !lookback_complete {
        let msg = format!(
            "the input starts at {}, after {} (start minus the longest window): features of events before {} may be too low",
            micros_rfc3339(earliest.unwrap_or(lo)),
            micros_rfc3339(lo),
            micros_rfc3339(earliest.unwrap_or(lo) + longest)
        );
        if args.require_full_lookback {
            return Err(Error::data(format!("{input}: {msg}")));
        }
        tracing::warn!("incomplete lookback: {msg}");
    }

    // 3. compute and write, one worker per thread
    let computing = Instant::now();
    let output = Location::parse(&args.output)?;
    let job = Arc::new(Job {
        schemas: spec.feature_views.iter().map(|v| output::schema(&spec, v)).collect(),
        view_dirs: spec.feature_views.iter().map(|v| output.join(&v.name)).collect(),
        plans,
        names: loader.entity_names.take().map(|i| Arc::new(i.names)),
        naming: Naming {
            shard: args.shard,
            shards: args.shards,
        },
        range: Range { start, end, as_of },
        first_day: start.div_euclid(DAY),
        days: ((end - 1).div_euclid(DAY) - start.div_euclid(DAY) + 1) as usize,
        as_of_day: as_of.map_or(0, |a| (a - 1).div_euclid(DAY)),
        created,
        options: spec
            .feature_views
            .iter()
            .map(|v| output::write_options(v, args.compression))
            .collect(),
        write_rows: args.write_rows as usize,
        failed: AtomicBool::new(false),
    });
    let progress = Arc::new(Progress::new("compute", loader.rows_kept));
    let mut parts = std::mem::take(&mut loader.parts);
    parts.sort_by_key(|pieces| pieces.iter().map(Partition::len).sum::<usize>());
    let queue = Arc::new(Queue::new(parts.into()));
    let finishing = Arc::new(Finishing::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|w| {
            let job = job.clone();
            let progress = progress.clone();
            let (queue, finishing) = (queue.clone(), finishing.clone());
            let handle = tokio::runtime::Handle::current();
            pool.run(move || {
                // in the runtime's context, so that files dropped unfinished (on an error, a
                // stop or a panic) have their uploads aborted
                let _runtime = handle.enter();
                let result = catch_unwind(AssertUnwindSafe(|| {
                    work(&job, w, &queue, &finishing, &progress, &handle)
                }));
                if !matches!(result, Ok(Ok(_))) {
                    job.failed.store(true, Ordering::Relaxed); // the other workers stop too
                    finishing.wake();
                }
                result.unwrap_or_else(|panic| resume_unwind(panic))
            })
        })
        .collect();
    let mut written = Vec::new();
    let mut stages = Stages::default();
    let (mut failure, mut cancelled) = (None, false);
    for w in workers {
        // every worker is awaited, so none is still writing when the run returns
        match w.await {
            Ok(Ok((files, s))) => {
                written.extend(files);
                stages.sort += s.sort;
                stages.windows += s.windows;
                stages.batch += s.batch;
                stages.write += s.write;
            }
            Ok(Err(Stop::Failed(e))) | Err(e) => failure = failure.or(Some(e)),
            Ok(Err(Stop::Cancelled)) => cancelled = true,
        }
    }
    match (failure, cancelled) {
        (Some(e), _) => return Err(e),
        (None, true) => return Err(Error::transient("stopped before the end")),
        (None, false) => {}
    }
    progress.finish();
    summary.phase("compute_and_write", computing);
    // the workers' time by stage, summed over the workers: where compute_and_write goes
    summary.set(
        "worker_seconds",
        serde_json::json!({
            "sort": stages.sort.as_secs_f64(),
            "windows": stages.windows.as_secs_f64(),
            "batch": stages.batch.as_secs_f64(),
            "write": stages.write.as_secs_f64(),
        }),
    );

    // 4. a view this shard wrote nothing for still gets a valid, empty file
    for (v, dir) in job.view_dirs.iter().enumerate() {
        if !written.iter().any(|w| w.view == v) {
            let key = FileKey::Day(start.div_euclid(DAY));
            let sink = ParquetSink::create(
                &dir.join(&job.naming.file(key, 0)),
                job.schemas[v].clone(),
                &job.options[v],
            )
            .await?;
            sink.finish().await?;
            written.push(Written {
                view: v,
                name: job.naming.file(key, 0),
                rows: 0,
            });
        }
    }

    // 5. files of the run's days that this run no longer produces
    let days: BTreeSet<String> = (start.div_euclid(DAY)..=(end - 1).div_euclid(DAY))
        .chain(as_of.map(|_| job.as_of_day))
        .map(output::date)
        .collect();
    let mut removed = 0;
    for (v, dir) in job.view_dirs.iter().enumerate() {
        let ours: BTreeSet<&str> = written
            .iter()
            .filter(|w| w.view == v)
            .map(|w| w.name.as_str())
            .collect();
        for meta in dir.list().await? {
            let Some(name) = meta.location.filename() else { continue };
            let Some((date, k, n)) = output::parse_name(name) else {
                continue;
            };
            let stale = days.contains(&date) && (n != args.shards || (k == args.shard && !ours.contains(name)));
            if stale {
                dir.join(name).delete().await?;
                removed += 1;
            }
        }
    }

    let rows_out: u64 = written.iter().map(|w| w.rows).sum();
    summary.rows_out = rows_out;
    summary.set("files_written", written.len());
    summary.set("stale_files_removed", removed);
    summary.set("rows_after_filters", loader.rows_kept);
    tracing::info!(rows = rows_out, files = written.len(), output = %output, "written");
    Ok(())
}

fn micros_rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp_micros(t).map_or_else(
        || t.to_string(),
        |d| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    )
}

#[cfg(test)]
mod tests {
    use super::{Finishing, HandOver, read_raw};
    use featurekit::artifact::Location;
    use featurekit::spec::Spec;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The raw files the fuzz target `raw_parquet` (fuzz/) crashed on, read as a run reads
    /// raw/: each is a Data error (exit 65) naming the file now.
    #[tokio::test]
    async fn raw_files_the_fuzzer_crashed_on_are_data_errors() {
        let spec = Spec::parse("features.yaml", include_str!("../../../features.yaml")).unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/regressions/raw_parquet");
        let files: Vec<_> = std::fs::read_dir(dir).expect(dir).map(|e| e.unwrap().path()).collect();
        assert!(!files.is_empty(), "{dir} holds no input");
        for path in files {
            let input = Location::parse(path.to_str().unwrap()).unwrap();
            let err = read_raw(&spec, &input, i64::MIN / 2, i64::MAX / 2)
                .await
                .expect_err(&format!("{} should be refused", path.display()));
            assert_eq!(err.kind(), featurekit::Kind::Data, "{}: {err}", path.display());
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(err.to_string().contains(name), "the error names the file: {err}");
        }
    }

    #[test]
    fn a_worker_out_of_partitions_finishes_the_files_the_other_hands_over() {
        let finishing = Finishing::new(2);
        let failed = AtomicBool::new(false);
        let taken = std::thread::scope(|s| {
            let early = s.spawn(|| {
                finishing.hand_over(vec![1]);
                std::iter::from_fn(|| finishing.next(&failed)).collect::<Vec<_>>()
            });
            // the other computes a while longer, then hands over its files and takes none
            std::thread::sleep(std::time::Duration::from_millis(50));
            drop(HandOver {
                finishing: &finishing,
                files: vec![2, 3],
            });
            early.join().unwrap()
        });
        let mut taken = taken;
        taken.sort();
        assert_eq!(taken, [1, 2, 3]);
        assert_eq!(finishing.next(&failed), None);
    }

    #[test]
    fn a_failing_run_leaves_no_file_to_finish() {
        let finishing = Finishing::new(2);
        let failed = AtomicBool::new(false);
        finishing.hand_over(vec!["a", "b"]);
        failed.store(true, Ordering::Relaxed);
        // a worker still computes, yet nothing is waited for: the files are dropped
        assert_eq!(finishing.next(&failed), None);
        assert!(finishing.state.lock().unwrap().0.is_empty());
    }
}
