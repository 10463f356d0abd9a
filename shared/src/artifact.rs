//! Every input and output of a step, by URL, over object_store.
//!
//! | URL                        | store                                            |
//! |----------------------------|--------------------------------------------------|
//! | `path/to/x`, `/abs/x`      | the local file system (how Argo hands artifacts)  |
//! | `file:///abs/x`            | the local file system                            |
//! | `s3://bucket/key`          | S3 or any S3-compatible store (`AWS_ENDPOINT_URL`) |
//! | `gs://bucket/key`          | Google Cloud Storage                             |
//! | `memory://name/key`        | a process-wide in-memory store (tests)           |
//!
//! Credentials come from the environment the way the cloud SDKs find them (see
//! [`crate::env::CLOUD_SDK_VARIABLES`]); they never appear in a [`Location`]'s display.
//!
//! Writes are atomic: [`ParquetSink`] streams a file as a multipart upload that only
//! becomes visible when [`ParquetSink::finish`] completes it, or, for a local file, into
//! a hidden temporary file, fsynced and renamed at the end ([`local`]). A sink dropped before that (an error, a
//! signal) removes its temporary file or aborts its upload; the step runtime waits for
//! those aborts ([`settle_aborts`]) before the process exits, so no partial or temporary
//! object is left behind.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
// ParquetObjectReader is deprecated in parquet 60 in favour of hand-written readers
// (apache/arrow-rs#10308); it still is the plainest correct reader over object_store.
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
#[allow(deprecated)]
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnPath;
use tokio::task::JoinHandle;

use crate::exit::{Error, Result};

mod flat;
pub mod local;

/// A place to read from or write to: a store and a path in it.
#[derive(Clone)]
pub struct Location {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// The path in the file system, for a local location.
    file: Option<std::path::PathBuf>,
    /// The URL as given, without credentials or query: safe to log.
    shown: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({})", self.shown)
    }
}

static MEMORY_STORES: LazyLock<Mutex<HashMap<String, Arc<InMemory>>>> = LazyLock::new(Default::default);
static CLOUD_STORES: LazyLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = LazyLock::new(Default::default);

/// Removes user info and query from a URL, so it can be logged.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.scheme().len() > 1 => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

fn retry_config() -> RetryConfig {
    RetryConfig {
        max_retries: 4,
        retry_timeout: Duration::from_secs(60),
        ..RetryConfig::default()
    }
}

impl Location {
    /// Parses a URL or a local path. Unknown schemes and bad store configuration are
    /// [`Kind::Config`] errors.
    pub fn parse(input: &str) -> Result<Location> {
        Location::parse_with(input, &[])
    }

    /// Like [`parse`](Self::parse), with store options that win over the environment,
    /// named as object_store names them (`aws_endpoint`, `aws_access_key_id`,
    /// `google_service_account`, ...).
    pub fn parse_with(input: &str, options: &[(&str, &str)]) -> Result<Location> {
        let shown = redact(input);
        let parsed = match url::Url::parse(input) {
            // one-letter "schemes" are Windows drive letters: treat as paths
            Ok(u) if u.scheme().len() > 1 => Some(u),
            _ => None,
        };
        let Some(url) = parsed else {
            return Location::local(std::path::Path::new(input), shown);
        };
        let bucket = url.host_str().unwrap_or_default().to_string();
        let key = url.path().trim_start_matches('/');
        let path = Path::parse(key).map_err(|e| Error::config(format!("{shown}: {e}")))?;
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => {
                let p = url
                    .to_file_path()
                    .map_err(|_| Error::config(format!("{shown}: not a local file URL")))?;
                return Location::local(&p, shown);
            }
            "memory" => {
                let mut stores = MEMORY_STORES.lock().expect("memory store registry");
                stores
                    .entry(bucket)
                    .or_insert_with(|| Arc::new(InMemory::new()))
                    .clone()
            }
            scheme @ ("s3" | "s3a" | "gs") => {
                if bucket.is_empty() {
                    return Err(Error::config(format!("{shown}: no bucket in URL")));
                }
                let cache_key = format!("{scheme}://{bucket} {options:?}");
                let mut stores = CLOUD_STORES.lock().expect("cloud store registry");
                match stores.get(&cache_key) {
                    Some(s) => s.clone(),
                    None => {
                        let config = |e: object_store::Error| Error::config(format!("{shown}: {e}"));
                        let built: Arc<dyn ObjectStore> = if scheme == "gs" {
                            let b = GoogleCloudStorageBuilder::from_env()
                                .with_bucket_name(&bucket)
                                .with_retry(retry_config());
                            let b = options
                                .iter()
                                .try_fold(b, |b, (k, v)| Ok(b.with_config(k.parse()?, *v)));
                            Arc::new(b.and_then(|b| b.build()).map_err(config)?)
                        } else {
                            let b = AmazonS3Builder::from_env()
                                .with_bucket_name(&bucket)
                                .with_retry(retry_config());
                            let b = options
                                .iter()
                                .try_fold(b, |b, (k, v)| Ok(b.with_config(k.parse()?, *v)));
                            Arc::new(b.and_then(|b| b.build()).map_err(config)?)
                        };
                        stores.insert(cache_key, built.clone());
                        built
                    }
                }
            }
            other => {
                return Err(Error::config(format!(
                    "{shown}: unsupported scheme `{other}` (use a path, file://, s3://, gs:// or memory://)"
                )));
            }
        };
        Ok(Location {
            store,
            path,
            file: None,
            shown,
        })
    }

    fn local(p: &std::path::Path, shown: String) -> Result<Location> {
        let abs = resolve(p).map_err(|e| Error::config(format!("{shown}: {e}")))?;
        let path = Path::from_absolute_path(&abs).map_err(|e| Error::config(format!("{shown}: {e}")))?;
        Ok(Location {
            store: Arc::new(LocalFileSystem::new()),
            path,
            file: Some(abs),
            shown,
        })
    }

    /// The name a user knows an object of this location's store by: `/abs/path` for a local
    /// file (the store's paths have no leading `/`), `scheme://bucket/key` for the others.
    pub fn name_of(&self, object: &Path) -> String {
        if self.file.is_some() {
            return format!("/{object}");
        }
        let (scheme, rest) = self.shown.split_once("://").unwrap_or(("", &self.shown));
        let bucket = rest.split('/').next().unwrap_or_default();
        format!("{scheme}://{bucket}/{object}")
    }

    /// The location `name` below this one (`out/` + `part-0.parquet`).
    pub fn join(&self, name: &str) -> Location {
        let segments = || name.split('/').filter(|s| !s.is_empty());
        Location {
            store: self.store.clone(),
            path: segments().fold(self.path.clone(), |p, s| p.join(s)),
            file: self.file.as_ref().map(|f| segments().fold(f.clone(), |f, s| f.join(s))),
            shown: format!("{}/{}", self.shown.trim_end_matches('/'), name),
        }
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole object.
    pub async fn read(&self) -> Result<bytes::Bytes> {
        let got = self
            .store
            .get(&self.path)
            .await
            .map_err(|e| Error::from(e).context(self.shown.clone()))?;
        got.bytes()
            .await
            .map_err(|e| Error::from(e).context(self.shown.clone()))
    }

    /// Writes a small object in one request: visible whole or not at all.
    pub async fn write(&self, bytes: impl Into<PutPayload>) -> Result<()> {
        self.store
            .put(&self.path, bytes.into())
            .await
            .map_err(|e| Error::from(e).context(self.shown.clone()))?;
        Ok(())
    }

    /// The object itself when it exists, else the objects below this prefix.
    /// Names starting with `_` or `.` are skipped (markers, temporaries), as Arrow datasets do.
    pub async fn list(&self) -> Result<Vec<ObjectMeta>> {
        if !self.path.as_ref().is_empty() {
            match self.store.head(&self.path).await {
                Ok(meta) => return Ok(vec![meta]),
                Err(object_store::Error::NotFound { .. }) => {}
                // a path below a file: nothing is there, as below a missing folder
                Err(e)
                    if crate::exit::io_source(&e).is_some_and(|io| io.kind() == std::io::ErrorKind::NotADirectory) =>
                {
                    return Ok(vec![]);
                }
                Err(e) => return Err(Error::from(e).context(self.shown.clone())),
            }
        }
        let prefix = (!self.path.as_ref().is_empty()).then_some(&self.path);
        let mut found: Vec<ObjectMeta> = self
            .store
            .list(prefix)
            .try_filter(|m| {
                // only the parts below the prefix count: the prefix itself may be hidden
                let mut below = m.location.prefix_match(&self.path).into_iter().flatten();
                let hidden = below.any(|p| p.as_ref().starts_with(['_', '.']));
                futures::future::ready(!hidden)
            })
            .try_collect()
            .await
            .map_err(|e| Error::from(e).context(self.shown.clone()))?;
        found.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(found)
    }

    /// Deletes the object here; one that is already gone is fine.
    pub async fn delete(&self) -> Result<()> {
        match self.store.delete(&self.path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::from(e).context(format!("deleting {}", self.shown))),
        }
    }
}

/// A local path made absolute with no `.` or `..` left, as the kernel would resolve it: the
/// longest part that exists is canonicalized (so `..` after a symlink goes where `open` goes),
/// the rest (not there yet, so no symlinks in it) is joined part by part.
fn resolve(p: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    use std::path::Component;
    let abs = std::path::absolute(p)?;
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    let mut base = loop {
        match existing.canonicalize() {
            Ok(base) => break base,
            Err(_) => match (existing.parent(), existing.components().next_back()) {
                (Some(parent), Some(last)) => {
                    rest.push(last);
                    existing = parent;
                }
                _ => break existing.to_path_buf(),
            },
        }
    };
    for part in rest.into_iter().rev() {
        match part {
            Component::ParentDir => {
                base.pop();
            }
            Component::CurDir => {}
            other => base.push(other),
        }
    }
    Ok(base)
}

// ---- aborting unfinished uploads ---------------------------------------------------

static ABORTS: LazyLock<Mutex<Vec<JoinHandle<()>>>> = LazyLock::new(Default::default);

/// Waits (at most `limit`) for the aborts of uploads whose sinks were dropped unfinished.
/// The step runtime calls it before exiting.
pub async fn settle_aborts(limit: Duration) {
    let handles: Vec<_> = std::mem::take(&mut *ABORTS.lock().expect("abort registry"));
    let all = futures::future::join_all(handles);
    if tokio::time::timeout(limit, all).await.is_err() {
        tracing::warn!("some unfinished uploads were not aborted in time");
    }
}

// ---- Parquet writing -----------------------------------------------------------------

/// How the pages of a Parquet file are compressed: snappy, the Parquet default of pyarrow (and
/// so Feast), Spark and DuckDB, fast both ways; zstd (level 1), files about 10% smaller, written
/// about 1.6x slower; or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Codec {
    #[default]
    Snappy,
    Zstd,
    None,
}

impl Codec {
    fn parquet(self) -> Compression {
        match self {
            Codec::Snappy => Compression::SNAPPY,
            Codec::Zstd => Compression::ZSTD(ZstdLevel::default()),
            Codec::None => Compression::UNCOMPRESSED,
        }
    }
}

/// How Parquet files are written.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Rows per row group (the unit of predicate pushdown).
    pub row_group_rows: usize,
    /// How pages are compressed.
    pub codec: Codec,
    /// Dictionary encoding: small files for repetitive columns, wasted work on distinct values.
    pub dictionary: bool,
    /// DELTA_BINARY_PACKED for integer and timestamp columns: sorted or small integers shrink
    /// before compression, which then has less to do.
    pub delta_integers: bool,
    /// Encoded bytes a row group may hold in memory before it is flushed early: with many
    /// files open at once (a backfill writes one per day), this bounds memory.
    pub row_group_bytes: usize,
    /// Columns written uncompressed whatever the codec.
    pub uncompressed: Vec<String>,
    /// Columns written without statistics (the others keep them per row group).
    pub unsummarised: Vec<String>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            row_group_rows: 512 * 1024,
            codec: Codec::default(),
            dictionary: true,
            delta_integers: false,
            row_group_bytes: 16 * 1024 * 1024,
            uncompressed: Vec::new(),
            unsummarised: Vec::new(),
        }
    }
}

/// Upload part size: encoded bytes are handed to the store in chunks this big (S3 and GCS
/// take no smaller part but the last).
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Footers read at once when planning a scan.
const FOOTERS_IN_FLIGHT: usize = 16;
/// Parts in flight at once per file.
const PARTS_IN_FLIGHT: usize = 4;

/// One Parquet file being written, atomically: it appears when [`finish`](Self::finish)
/// returns and never if the sink is dropped before.
///
/// Into an object store, the encoded bytes go up as the parts of a multipart upload, which
/// completes at the end. A local file is written in place under a hidden temporary name in
/// its directory (Arrow datasets and [`Location::list`] skip names starting with `.`),
/// renamed at the end: the row groups go from the encoder straight to the file, without the
/// two copies (into the upload's buffer, into its part) an upload makes.
pub struct ParquetSink {
    location: Location,
    row_group_bytes: usize,
    target: Option<Target>,
    rows: u64,
}

enum Target {
    Upload {
        writer: Writer<Vec<u8>>,
        upload: WriteMultipart,
    },
    File {
        writer: Writer<Spooled>,
        temporary: std::path::PathBuf,
        path: std::path::PathBuf,
    },
}

/// The encoder of a sink: flat schemas (every column a non-null number or timestamp, as
/// feature rows are) go straight from the arrays to the encoders; others through Arrow's
/// general writer.
enum Writer<W: std::io::Write + Send> {
    Arrow(ArrowWriter<W>),
    Flat(flat::FlatWriter<W>),
}

impl<W: std::io::Write + Send> Writer<W> {
    fn try_new(writer: W, schema: SchemaRef, props: Option<WriterProperties>) -> parquet::errors::Result<Self> {
        let flat = props.as_ref().is_some_and(|p| flat::supports(&schema, p));
        Ok(if flat {
            Writer::Flat(flat::FlatWriter::try_new(writer, &schema, props)?)
        } else {
            Writer::Arrow(ArrowWriter::try_new(writer, schema, props)?)
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> parquet::errors::Result<()> {
        match self {
            Writer::Arrow(w) => w.write(batch),
            Writer::Flat(w) => w.write(batch),
        }
    }

    fn in_progress_size(&self) -> usize {
        match self {
            Writer::Arrow(w) => w.in_progress_size(),
            Writer::Flat(w) => w.in_progress_size(),
        }
    }

    fn flush(&mut self) -> parquet::errors::Result<()> {
        match self {
            Writer::Arrow(w) => w.flush(),
            Writer::Flat(w) => w.flush(),
        }
    }

    fn finish(&mut self) -> parquet::errors::Result<()> {
        match self {
            Writer::Arrow(w) => w.finish().map(drop),
            Writer::Flat(w) => w.finish(),
        }
    }

    fn bytes_written(&self) -> usize {
        match self {
            Writer::Arrow(w) => w.bytes_written(),
            Writer::Flat(w) => w.bytes_written(),
        }
    }

    fn inner(&self) -> &W {
        match self {
            Writer::Arrow(w) => w.inner(),
            Writer::Flat(w) => w.inner(),
        }
    }

    fn inner_mut(&mut self) -> &mut W {
        match self {
            Writer::Arrow(w) => w.inner_mut(),
            Writer::Flat(w) => w.inner_mut(),
        }
    }
}

/// A local file written in blocks of [`SPOOL`] bytes: a row group reaches the file 8 KiB at a
/// time (each write of the parquet writer's own buffer), and each would be a system call. The
/// block is allocated at the first write; the parquet writer flushes it at the end of the file.
struct Spooled {
    file: std::fs::File,
    block: Vec<u8>,
}

/// Bytes a local file is written in at once.
const SPOOL: usize = 64 * 1024;

impl Spooled {
    fn new(file: std::fs::File) -> Spooled {
        Spooled {
            file,
            block: Vec::new(),
        }
    }

    fn drain(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        self.file.write_all(&self.block)?;
        self.block.clear();
        Ok(())
    }
}

impl std::io::Write for Spooled {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.block.len() + data.len() > SPOOL {
            self.drain()?;
        }
        if data.len() >= SPOOL {
            return self.file.write(data);
        }
        if self.block.capacity() == 0 {
            self.block.reserve_exact(SPOOL);
        }
        self.block.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.drain()?;
        self.file.flush()
    }
}

/// What a finished file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub rows: u64,
    pub bytes: u64,
}

impl ParquetSink {
    pub async fn create(location: &Location, schema: SchemaRef, options: &WriteOptions) -> Result<ParquetSink> {
        let mut props = WriterProperties::builder()
            .set_compression(options.codec.parquet())
            .set_max_row_group_row_count(Some(options.row_group_rows))
            .set_dictionary_enabled(options.dictionary)
            // values are encoded 8 Ki at a time, not 1 Ki: the per-call work (statistics,
            // page-size checks) is paid an eighth as often; a page closes after the slice that
            // brings it to 20,000 rows (the row limit, reached before the size limit)
            .set_write_batch_size(8192);
        if options.delta_integers {
            for field in schema.fields() {
                if matches!(
                    field.data_type(),
                    DataType::Int64 | DataType::Int32 | DataType::Timestamp(..)
                ) {
                    props = props
                        .set_column_encoding(ColumnPath::from(field.name().as_str()), Encoding::DELTA_BINARY_PACKED);
                }
            }
        }
        for name in &options.unsummarised {
            props = props.set_column_statistics_enabled(ColumnPath::from(name.as_str()), EnabledStatistics::None);
        }
        for name in &options.uncompressed {
            props = props.set_column_compression(ColumnPath::from(name.as_str()), Compression::UNCOMPRESSED);
        }
        let props = Some(props.build());
        let shown = &location.shown;
        let target = match location.file.clone() {
            Some(path) => {
                let dir = path.parent().unwrap_or(std::path::Path::new("/"));
                let creating = |e: std::io::Error| Error::from(e).context(format!("creating {shown}"));
                std::fs::create_dir_all(dir).map_err(creating)?;
                let (file, temporary) = local::temporary(&path).map_err(creating)?;
                let writer = Writer::try_new(Spooled::new(file), schema, props);
                let writer = writer.map_err(|e| {
                    let _ = std::fs::remove_file(&temporary);
                    Error::from(e).context(shown.clone())
                })?;
                Target::File {
                    writer,
                    temporary,
                    path,
                }
            }
            None => {
                let writer =
                    Writer::try_new(Vec::new(), schema, props).map_err(|e| Error::from(e).context(shown.clone()))?;
                let upload = location
                    .store
                    .put_multipart(&location.path)
                    .await
                    .map_err(|e| Error::from(e).context(format!("creating {shown}")))?;
                Target::Upload {
                    writer,
                    upload: WriteMultipart::new_with_chunk_size(upload, PART_BYTES),
                }
            }
        };
        Ok(ParquetSink {
            location: location.clone(),
            row_group_bytes: options.row_group_bytes,
            target: Some(target),
            rows: 0,
        })
    }

    /// Encodes a batch; full row groups go to the file or the store as they fill.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let writing =
            |e: parquet::errors::ParquetError| Error::from(e).context(format!("writing {}", self.location.shown));
        match self.target.as_mut().expect("sink used after finish") {
            Target::File { writer, .. } => {
                writer.write(batch).map_err(writing)?;
                if writer.in_progress_size() >= self.row_group_bytes {
                    writer.flush().map_err(writing)?;
                }
            }
            Target::Upload { writer, upload } => {
                writer.write(batch).map_err(writing)?;
                if writer.in_progress_size() >= self.row_group_bytes {
                    reserve_row_group(writer);
                    writer.flush().map_err(writing)?;
                }
                if writer.inner().len() >= PART_BYTES {
                    // hands the encoded bytes to the upload, waiting while too many parts are in flight
                    let bytes = std::mem::take(writer.inner_mut());
                    upload
                        .wait_for_capacity(PARTS_IN_FLIGHT)
                        .await
                        .map_err(|e| Error::from(e).context(format!("writing {}", self.location.shown)))?;
                    upload.put(bytes.into());
                }
            }
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the footer and completes the file or upload: the file becomes visible.
    pub async fn finish(mut self) -> Result<Written> {
        let shown = self.location.shown.clone();
        let writing = |e: parquet::errors::ParquetError| Error::from(e).context(format!("writing {shown}"));
        let bytes = match self.target.take().expect("sink finished twice") {
            Target::File {
                mut writer,
                temporary,
                path,
            } => {
                let done = writer.finish().map_err(writing).map(|_| writer.bytes_written() as u64);
                drop(writer); // the file is closed before it is renamed or removed
                let done = done.and_then(|bytes| {
                    local::commit(&temporary, &path)
                        .map(|()| bytes)
                        .map_err(|e| Error::from(e).context(format!("completing {shown}")))
                });
                if done.is_err() {
                    let _ = std::fs::remove_file(&temporary);
                }
                done?
            }
            Target::Upload { mut writer, mut upload } => {
                reserve_row_group(&mut writer);
                if let Err(e) = writer.finish() {
                    abort(upload, shown.clone());
                    return Err(writing(e));
                }
                let bytes = writer.bytes_written() as u64;
                upload.put(std::mem::take(writer.inner_mut()).into());
                if let Err(e) = upload.finish().await {
                    return Err(Error::from(e).context(format!("completing {shown}")));
                }
                bytes
            }
        };
        Ok(Written { rows: self.rows, bytes })
    }
}

/// Room in the encoded bytes for the row group about to be flushed (and the footer): grown
/// by doubling instead, the buffer would be copied again and again.
fn reserve_row_group(writer: &mut Writer<Vec<u8>>) {
    let more = writer.in_progress_size() + 64 * 1024;
    writer.inner_mut().reserve(more);
}

impl Drop for ParquetSink {
    fn drop(&mut self) {
        let shown = self.location.shown.clone();
        match self.target.take() {
            None => {}
            Some(Target::File { writer, temporary, .. }) => {
                drop(writer); // the file is closed before it is removed
                if let Err(e) = std::fs::remove_file(&temporary) {
                    tracing::warn!(output = %shown, error = %e, "could not remove an unfinished file");
                }
            }
            Some(Target::Upload { upload, .. }) => abort(upload, shown),
        }
    }
}

/// Aborts an unfinished upload in the background; [`settle_aborts`] waits for it.
fn abort(upload: WriteMultipart, shown: String) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            let task = rt.spawn(async move {
                match upload.abort().await {
                    Ok(()) => tracing::info!(output = %shown, "aborted unfinished upload"),
                    Err(e) => tracing::warn!(output = %shown, error = %e, "could not abort unfinished upload"),
                }
            });
            ABORTS.lock().expect("abort registry").push(task);
        }
        Err(_) => tracing::warn!(output = %shown, "unfinished upload dropped outside a runtime"),
    }
}

// ---- Parquet reading -----------------------------------------------------------------

/// A scan over one Parquet file or every Parquet file below a prefix, with column
/// projection and row-group pruning on statistics. [`plan`](Self::plan) reads the footers;
/// the plan then streams the row groups, several at a time.
pub struct ParquetScan {
    location: Location,
    files: Vec<ObjectMeta>,
    columns: Option<Vec<String>>,
    range: Option<(String, i64, i64)>,
    batch_rows: usize,
}

/// What a plan found in the footers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanStats {
    pub files: usize,
    pub row_groups: usize,
    pub row_groups_pruned: usize,
    /// Rows in the row groups that will be read.
    pub rows: u64,
    /// Smallest and largest value of the pruning column over the row groups that have
    /// statistics, pruned or not (in microseconds for timestamps); `None` when none has.
    /// A row group without statistics is never pruned, so its rows are read.
    pub min: Option<i64>,
    pub max: Option<i64>,
}

/// The rows of one row group, with where they came from (for error messages).
#[derive(Debug)]
pub struct Chunk {
    /// The file, as a path within its store.
    pub file: String,
    /// Row number, within the file, of the chunk's first row.
    pub first_row: u64,
    pub batches: Vec<RecordBatch>,
}

impl ParquetScan {
    /// Lists the files to read; an empty prefix is an empty scan.
    pub async fn open(location: &Location) -> Result<ParquetScan> {
        let files = location.list().await?;
        Ok(ParquetScan {
            location: location.clone(),
            files,
            columns: None,
            range: None,
            batch_rows: 64 * 1024,
        })
    }

    /// Reads only these columns (in the file's order); a missing one is a [`Kind::Data`] error.
    pub fn columns<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Skips row groups whose statistics prove `column` has no value in `[lo, hi)`; for a
    /// timestamp column, `lo` and `hi` are microseconds whatever the file's unit. Rows
    /// outside the range may still come back: filter them.
    pub fn prune(mut self, column: &str, lo: i64, hi: i64) -> Self {
        self.range = Some((column.to_string(), lo, hi));
        self
    }

    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows;
        self
    }

    pub fn files(&self) -> &[ObjectMeta] {
        &self.files
    }

    /// Reads every file's footer and decides what to read.
    pub async fn plan(self) -> Result<ScanPlan> {
        let store = self.location.store.clone();
        let mut stats = ScanStats {
            files: self.files.len(),
            ..ScanStats::default()
        };
        let mut units = Vec::new();
        let mut files = Vec::new();
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        // footers are small reads that mostly wait on the store: many at once, taken in order
        let named: Vec<ScanFile> = (self.files.iter())
            .map(|meta| ScanFile {
                name: self.location.name_of(&meta.location),
                meta: meta.clone(),
            })
            .collect();
        let footers: Vec<ArrowReaderMetadata> = futures::stream::iter(&named)
            .map(|file| load_metadata(&store, file))
            .buffered(FOOTERS_IN_FLIGHT)
            .try_collect()
            .await?;
        for (file, reader_meta) in named.into_iter().zip(footers) {
            let schema = reader_meta.schema().clone();
            let mask = match &self.columns {
                Some(columns) => {
                    let mut roots = Vec::with_capacity(columns.len());
                    for c in columns {
                        match schema.index_of(c) {
                            Ok(i) => roots.push(i),
                            Err(_) => return Err(file_error(&file, Error::data(format!("missing column `{c}`")))),
                        }
                    }
                    ProjectionMask::roots(reader_meta.parquet_schema(), roots)
                }
                None => ProjectionMask::all(),
            };
            let md = reader_meta.metadata().clone();
            let mut first_row = 0u64;
            for rg in 0..md.num_row_groups() {
                let rows = md.row_group(rg).num_rows() as u64;
                stats.row_groups += 1;
                let keep = match &self.range {
                    None => true,
                    Some((column, lo, hi)) => match column_range(&reader_meta, rg, column, &file)? {
                        Some((lo_rg, hi_rg)) => {
                            min = min.min(lo_rg);
                            max = max.max(hi_rg);
                            hi_rg >= *lo && lo_rg < *hi
                        }
                        None => true,
                    },
                };
                if keep {
                    stats.rows += rows;
                    units.push(Unit {
                        file: files.len(),
                        row_group: rg,
                        first_row,
                    });
                } else {
                    stats.row_groups_pruned += 1;
                }
                first_row += rows;
            }
            files.push((file, reader_meta, mask));
        }
        if min <= max {
            (stats.min, stats.max) = (Some(min), Some(max));
        }
        Ok(ScanPlan {
            store,
            files: Arc::new(files),
            units,
            stats,
            batch_rows: self.batch_rows,
        })
    }

    /// Streams every batch, file after file.
    pub fn stream(self) -> impl Stream<Item = Result<RecordBatch>> {
        futures::stream::once(self.plan())
            .map_ok(|plan| {
                plan.chunks(1)
                    .map_ok(|c| futures::stream::iter(c.batches.into_iter().map(Ok)))
                    .try_flatten()
            })
            .try_flatten()
    }

    /// Reads everything into memory.
    pub async fn collect(self) -> Result<(Vec<RecordBatch>, ScanStats)> {
        let plan = self.plan().await?;
        let stats = plan.stats;
        let chunks: Vec<Chunk> = plan.chunks(2).try_collect().await?;
        Ok((chunks.into_iter().flat_map(|c| c.batches).collect(), stats))
    }
}

#[derive(Clone, Copy)]
struct Unit {
    file: usize,
    row_group: usize,
    first_row: u64,
}

/// A row group's statistics of one column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColumnStats {
    pub nulls: Option<u64>,
    /// Smallest and largest value.
    pub range: Option<(i64, i64)>,
}

/// A scan whose footers are read: what it will read, and the reading.
pub struct ScanPlan {
    store: Arc<dyn ObjectStore>,
    files: Arc<Vec<(ScanFile, ArrowReaderMetadata, ProjectionMask)>>,
    units: Vec<Unit>,
    batch_rows: usize,
    pub stats: ScanStats,
}

impl ScanPlan {
    /// Each file's name and Arrow schema (the columns asked for), those whose every row group
    /// was pruned included: a schema is checked whether or not any row is read.
    pub fn schemas(&self) -> impl Iterator<Item = (&str, &SchemaRef)> {
        self.files.iter().map(|(file, rm, _)| (file.name.as_str(), rm.schema()))
    }

    /// The largest value of an INT64 or timestamp column (microseconds for timestamps) over the
    /// row groups the plan reads, from their statistics alone; `None` when one lacks them.
    pub fn max_of(&self, column: &str) -> Result<Option<i64>> {
        let mut max = None;
        for unit in &self.units {
            let (file, rm, _) = &self.files[unit.file];
            match column_range(rm, unit.row_group, column, file)? {
                Some((_, hi)) => max = max.max(Some(hi)),
                None => return Ok(None),
            }
        }
        Ok(max)
    }

    /// How many row groups the plan reads.
    pub fn units(&self) -> usize {
        self.units.len()
    }

    /// The file that row group `unit` is in, by the name it is shown to a user.
    pub fn file(&self, unit: usize) -> String {
        self.files[self.units[unit].file].0.name.clone()
    }

    /// The Arrow schema of the file that row group `unit` is in, every column.
    pub fn schema(&self, unit: usize) -> SchemaRef {
        self.files[self.units[unit].file].1.schema().clone()
    }

    /// What row group `unit`'s statistics say of `column`: its null count and, for INT64 and
    /// timestamp columns, its range (microseconds for timestamps); `None` where they are
    /// missing or the column is not in the file.
    pub fn column_stats(&self, unit: usize, column: &str) -> ColumnStats {
        let u = &self.units[unit];
        let (file, rm, _) = &self.files[u.file];
        let schema = rm.parquet_schema();
        let Some(idx) = (0..schema.num_columns()).find(|&i| schema.column(i).name() == column) else {
            return ColumnStats::default();
        };
        let nulls = rm
            .metadata()
            .row_group(u.row_group)
            .column(idx)
            .statistics()
            .and_then(|s| s.null_count_opt());
        let range = column_range(rm, u.row_group, column, file).ok().flatten();
        ColumnStats { nulls, range }
    }

    /// Decodes row group `unit` alone, with only `columns` (they must be among the plan's), on
    /// a task of its own: reads of several row groups at once decode on every thread.
    pub async fn read(&self, unit: usize, columns: &[&str]) -> Result<Chunk> {
        let u = &self.units[unit];
        let (file, rm, _) = &self.files[u.file];
        let roots = columns
            .iter()
            .map(|c| rm.schema().index_of(c))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| file_error(file, Error::data(e.to_string())))?;
        let mask = ProjectionMask::roots(rm.parquet_schema(), roots);
        let (store, file, unit, rows) = (
            self.store.clone(),
            (file.clone(), rm.clone(), mask),
            *u,
            self.batch_rows,
        );
        tokio::spawn(async move { read_unit(store, &file, unit, rows).await })
            .await
            .map_err(|e| Error::bug(format!("reader task: {e}")))?
    }

    /// Decodes row groups on the runtime's threads, `concurrency` at a time, and yields
    /// them in file and row-group order.
    pub fn chunks(self, concurrency: usize) -> impl Stream<Item = Result<Chunk>> {
        self.fetches(concurrency)
            .map(|fetched| async move {
                let fetched = fetched?;
                tokio::task::spawn_blocking(move || fetched.decode())
                    .await
                    .map_err(|e| Error::bug(format!("reader task: {e}")))?
            })
            .buffered(concurrency.max(1))
    }

    /// Fetches the bytes of row groups, `concurrency` at a time, and yields them in file and
    /// row-group order, to be decoded ([`Fetched::decode`]) on whichever thread the caller
    /// chooses: the thread that then works on the rows, whose allocator has the decoded
    /// memory at hand once it is freed.
    pub fn fetches(self, concurrency: usize) -> impl Stream<Item = Result<Fetched>> {
        let ScanPlan {
            store,
            files,
            units,
            batch_rows,
            ..
        } = self;
        futures::stream::iter(units)
            .map(move |unit| {
                let store = store.clone();
                let files = files.clone();
                tokio::spawn(async move { fetch_unit(store, &files[unit.file], unit, batch_rows).await })
            })
            .buffered(concurrency.max(1))
            .map(|joined| joined.map_err(|e| Error::bug(format!("reader task: {e}")))?)
    }
}

/// A row group's bytes, fetched but not decoded.
pub struct Fetched {
    file: String,
    first_row: u64,
    /// `None` when the row group has nothing to decode.
    reader: Option<parquet::arrow::arrow_reader::ParquetRecordBatchReader>,
}

impl Fetched {
    /// Decodes the row group's batches (the CPU work of a read).
    pub fn decode(self) -> Result<Chunk> {
        let batches = match self.reader {
            Some(reader) => decoding(&self.file, || {
                reader
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::from(e).context(self.file.clone()))
            })?,
            None => Vec::new(),
        };
        Ok(Chunk {
            file: self.file,
            first_row: self.first_row,
            batches,
        })
    }
}

async fn read_unit(
    store: Arc<dyn ObjectStore>,
    file: &(ScanFile, ArrowReaderMetadata, ProjectionMask),
    unit: Unit,
    batch_rows: usize,
) -> Result<Chunk> {
    fetch_unit(store, file, unit, batch_rows).await?.decode()
}

async fn fetch_unit(
    store: Arc<dyn ObjectStore>,
    (file, reader_meta, mask): &(ScanFile, ArrowReaderMetadata, ProjectionMask),
    unit: Unit,
    batch_rows: usize,
) -> Result<Fetched> {
    use parquet::DecodeResult;
    use parquet::arrow::push_decoder::ParquetPushDecoderBuilder;
    let mut decoder = ParquetPushDecoderBuilder::new_with_metadata(reader_meta.clone())
        .with_projection(mask.clone())
        .with_row_groups(vec![unit.row_group])
        .with_batch_size(batch_rows)
        .build()
        .map_err(|e| file_error(file, e))?;
    let reader = loop {
        match decoder.try_next_reader().map_err(|e| file_error(file, e))? {
            DecodeResult::NeedsData(ranges) => {
                let data = store
                    .get_ranges(&file.meta.location, &ranges)
                    .await
                    .map_err(|e| file_error(file, e))?;
                decoder.push_ranges(ranges, data).map_err(|e| file_error(file, e))?;
            }
            DecodeResult::Data(reader) => break Some(reader),
            DecodeResult::Finished => break None,
        }
    };
    Ok(Fetched {
        file: file.name.clone(),
        first_row: unit.first_row,
        reader,
    })
}

/// Runs a call into the Parquet decoder over `file`'s bytes. The parquet crate panics on some
/// corrupt pages instead of returning an error (a dictionary-encoded page and no dictionary):
/// such a panic is the file's fault, a [`Kind::Data`](crate::Kind::Data) error naming it.
fn decoding<T>(file: &str, decode: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|panic| {
        let message = (panic.downcast_ref::<&str>().copied().map(String::from))
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::data(format!(
            "{file}: corrupt Parquet, the decoder stopped: {message}"
        )))
    })
}

/// A file of a scan: its object and the name a user knows it by (`/data/raw.parquet`,
/// `s3://lake/raw/part-0.parquet`), the one every message about it gives.
#[derive(Debug, Clone)]
struct ScanFile {
    meta: ObjectMeta,
    name: String,
}

fn file_error(file: &ScanFile, e: impl Into<Error>) -> Error {
    e.into().context(file.name.clone())
}

#[allow(deprecated)]
async fn load_metadata(store: &Arc<dyn ObjectStore>, file: &ScanFile) -> Result<ArrowReaderMetadata> {
    let meta = &file.meta;
    let mut reader = ParquetObjectReader::new(store.clone(), meta.location.clone()).with_file_size(meta.size);
    let loaded = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::default())
        .await
        .map_err(|e| file_error(file, e))?;
    check_column_chunks(file, loaded.metadata())?;
    Ok(loaded)
}

/// A footer that places a column chunk outside the file (a negative offset or size, or past
/// the end) is a broken file: said as a [`Kind::Data`](crate::Kind::Data) error before the decoder, which
/// asserts on a negative one, or the store, asked for bytes past the end, sees it.
fn check_column_chunks(file: &ScanFile, md: &parquet::file::metadata::ParquetMetaData) -> Result<()> {
    let meta = &file.meta;
    for (rg, group) in md.row_groups().iter().enumerate() {
        for column in group.columns() {
            let start = column.dictionary_page_offset().unwrap_or(column.data_page_offset());
            let size = column.compressed_size();
            let end = u64::try_from(start)
                .ok()
                .zip(u64::try_from(size).ok())
                .and_then(|(start, size)| start.checked_add(size));
            if end.is_none_or(|end| end > meta.size) {
                return Err(file_error(
                    file,
                    Error::data(format!(
                        "row group {rg}, column `{}`: its chunk ({size} bytes at {start}) is not within the file's {} bytes",
                        column.column_path(),
                        meta.size
                    )),
                ));
            }
        }
    }
    Ok(())
}

/// A timestamp column of any unit, read as microseconds since the epoch.
pub struct Micros {
    /// The raw values, in the column's own unit (its buffers, not copied).
    pub raw: arrow::array::PrimitiveArray<arrow::datatypes::Int64Type>,
    mul: i64,
    div: i64,
}

impl Micros {
    /// `None` when `a` is not a timestamp column.
    pub fn of(a: &arrow::array::ArrayRef) -> Option<Micros> {
        let (mul, div) = micros_factor(a.data_type())?;
        // every timestamp unit is an i64 underneath: reinterpret the buffers
        let data = a.to_data().into_builder().data_type(DataType::Int64).build().ok()?;
        Some(Micros {
            raw: data.into(),
            mul,
            div,
        })
    }

    /// A raw value in microseconds.
    #[inline]
    pub fn convert(&self, raw: i64) -> i64 {
        if self.div == 1 {
            raw.saturating_mul(self.mul)
        } else {
            raw.div_euclid(self.div)
        }
    }

    /// Row `r` in microseconds, `None` when null.
    #[inline]
    pub fn get(&self, r: usize) -> Option<i64> {
        use arrow::array::Array;
        self.raw.is_valid(r).then(|| self.convert(self.raw.value(r)))
    }
}

/// Microseconds per unit of a timestamp column (`None` for other types).
fn micros_factor(t: &DataType) -> Option<(i64, i64)> {
    match t {
        DataType::Timestamp(TimeUnit::Second, _) => Some((1_000_000, 1)),
        DataType::Timestamp(TimeUnit::Millisecond, _) => Some((1_000, 1)),
        DataType::Timestamp(TimeUnit::Microsecond, _) => Some((1, 1)),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Some((1, 1_000)),
        _ => None,
    }
}

/// `[min, max]` of an INT64 or timestamp column in one row group, from its statistics,
/// in microseconds for timestamps.
fn column_range(rm: &ArrowReaderMetadata, rg: usize, column: &str, file: &ScanFile) -> Result<Option<(i64, i64)>> {
    let schema = rm.parquet_schema();
    let Some(idx) = (0..schema.num_columns()).find(|&i| schema.column(i).name() == column) else {
        return Err(file_error(file, Error::data(format!("missing column `{column}`"))));
    };
    let (mul, div) = rm
        .schema()
        .field_with_name(column)
        .ok()
        .and_then(|f| micros_factor(f.data_type()))
        .unwrap_or((1, 1));
    Ok(match rm.metadata().row_group(rg).column(idx).statistics() {
        Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(&lo), Some(&hi)) => Some((
                lo.saturating_mul(mul).div_euclid(div),
                hi.saturating_mul(mul).div_euclid(div),
            )),
            _ => None,
        },
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Kind;
    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    fn batch(from: i64, n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(from..from + n)),
                Arc::new(TimestampMicrosecondArray::from_iter_values(from..from + n).with_timezone("UTC")),
            ],
        )
        .unwrap()
    }

    #[test]
    fn local_paths_resolve_dot_dot_as_the_kernel_does() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        let at = |p: &str| resolve(&root.join(p)).unwrap();
        assert_eq!(at("a/b/../x.parquet"), root.join("a/x.parquet"));
        assert_eq!(
            at("a/./b/new/../../y"),
            root.join("a/y"),
            "through parts that do not exist yet"
        );
        std::os::unix::fs::symlink(root.join("a/b"), root.join("link")).unwrap();
        assert_eq!(
            at("link/../z"),
            root.join("a/z"),
            "`..` after a symlink goes where open goes"
        );
        let loc = Location::parse(root.join("a/b/../out/").to_str().unwrap()).unwrap();
        assert_eq!(
            loc.path().as_ref(),
            root.join("a/out").to_str().unwrap().trim_start_matches('/')
        );
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact("s3://key:secret@bucket/x?token=1"), "s3://bucket/x");
        assert_eq!(redact("out/x.parquet"), "out/x.parquet");
    }

    #[test]
    fn gs_and_s3_urls_configure_from_the_environment() {
        // Building a store does not contact it; the bucket comes from the URL.
        let gs = Location::parse("gs://some-bucket/features/day=1").unwrap();
        assert_eq!(gs.path().as_ref(), "features/day=1");
        assert!(gs.store().to_string().contains("some-bucket"), "{}", gs.store());
        let s3 = Location::parse("s3://other-bucket/a/b.parquet").unwrap();
        assert!(s3.store().to_string().contains("other-bucket"), "{}", s3.store());
        assert_eq!(Location::parse("gs:///nobucket").unwrap_err().kind(), Kind::Config);
        assert_eq!(Location::parse("ftp://x/y").unwrap_err().kind(), Kind::Config);
    }

    #[tokio::test]
    async fn memory_round_trip_with_projection_and_pruning() {
        let out = Location::parse("memory://unit/ds/part-0.parquet").unwrap();
        let opts = WriteOptions {
            row_group_rows: 100,
            ..WriteOptions::default()
        };
        let mut sink = ParquetSink::create(&out, batch(0, 1).schema(), &opts).await.unwrap();
        sink.write(&batch(0, 250)).await.unwrap();
        sink.write(&batch(250, 250)).await.unwrap();
        let written = sink.finish().await.unwrap();
        assert_eq!(written.rows, 500);

        let scan = ParquetScan::open(&Location::parse("memory://unit/ds").unwrap())
            .await
            .unwrap();
        assert_eq!(scan.files().len(), 1);
        let (batches, stats) = scan.columns(["ts"]).prune("ts", 120, 180).collect().await.unwrap();
        assert_eq!(stats.row_groups, 5);
        assert_eq!(stats.row_groups_pruned, 4);
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 100, "only the row group [100, 200) is read");
        assert_eq!(batches[0].num_columns(), 1);

        let small = Location::parse("memory://unit/notes/summary.json").unwrap();
        small.write(bytes::Bytes::from_static(b"{}")).await.unwrap();
        assert_eq!(small.read().await.unwrap().as_ref(), b"{}");
        small.delete().await.unwrap();
        small.delete().await.unwrap(); // already gone is fine
        assert_eq!(
            small.read().await.unwrap_err().kind(),
            Kind::Data,
            "a missing input is the data's fault"
        );

        let missing = ParquetScan::open(&out)
            .await
            .unwrap()
            .columns(["nope"])
            .collect()
            .await
            .unwrap_err();
        assert_eq!(missing.kind(), Kind::Data);
        assert!(missing.to_string().contains("missing column `nope`"), "{missing}");
    }

    #[tokio::test]
    async fn a_dropped_sink_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = Location::parse(dir.path().join("out/x.parquet").to_str().unwrap()).unwrap();
        let mut sink = ParquetSink::create(&out, batch(0, 1).schema(), &WriteOptions::default())
            .await
            .unwrap();
        sink.write(&batch(0, 200_000)).await.unwrap();
        let only_hidden = walk(dir.path())
            .iter()
            .all(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'));
        assert!(only_hidden, "an unfinished file is visible: {:?}", walk(dir.path()));
        drop(sink);
        settle_aborts(Duration::from_secs(5)).await;
        let left: Vec<_> = walk(dir.path());
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    #[tokio::test]
    async fn a_temporary_name_another_writer_holds_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        // the next names this process would pick (a few: other tests pick names too)
        let n = local::TEMPORARIES.load(std::sync::atomic::Ordering::Relaxed);
        let taken: Vec<_> = (n..n + 8)
            .map(|n| dir.path().join(format!(".x.parquet.{}-{n}.tmp", std::process::id())))
            .collect();
        for t in &taken {
            std::fs::write(t, b"another writer's").unwrap();
        }
        let out = Location::parse(path.to_str().unwrap()).unwrap();
        let mut sink = ParquetSink::create(&out, batch(0, 1).schema(), &WriteOptions::default())
            .await
            .unwrap();
        sink.write(&batch(0, 1000)).await.unwrap();
        assert_eq!(sink.finish().await.unwrap().rows, 1000);
        for t in &taken {
            assert_eq!(std::fs::read(t).unwrap(), b"another writer's", "{t:?} was overwritten");
        }
        let (batches, _) = ParquetScan::open(&out).await.unwrap().collect().await.unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1000);
    }

    #[tokio::test]
    async fn a_damaged_page_is_a_data_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        let out = Location::parse(path.to_str().unwrap()).unwrap();
        let mut sink = ParquetSink::create(&out, batch(0, 1).schema(), &WriteOptions::default())
            .await
            .unwrap();
        sink.write(&batch(0, 100_000)).await.unwrap();
        sink.finish().await.unwrap();
        // the footer stays intact: the first data page's header is overwritten
        let mut bytes = std::fs::read(&path).unwrap();
        let reader = parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(bytes.clone())).unwrap();
        let column = parquet::file::reader::FileReader::metadata(&reader)
            .row_group(0)
            .column(0)
            .clone();
        let at = column.dictionary_page_offset().unwrap_or(column.data_page_offset()) as usize;
        bytes[at..at + 16].fill(0xFF);
        std::fs::write(&path, bytes).unwrap();
        let err = ParquetScan::open(&out).await.unwrap().collect().await.unwrap_err();
        assert_eq!(err.kind(), Kind::Data, "{err}");
        assert!(err.to_string().contains("x.parquet"), "{err}");
    }

    fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = vec![];
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }
}
