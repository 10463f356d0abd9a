//! Read-modify-write of one registry file that never loses or tears it.
//!
//! - Local file: an exclusive lock on `<registry>.lock` (held by the kernel: a killed writer
//!   releases it), then the new bytes go to a temporary file beside the registry, fsynced, and
//!   renamed over it. A reader sees the old or the new registry, never a part.
//! - Object store: a conditional put, `PutMode::Update` with the ETag/version read (`Create`
//!   when there was none). When another writer got there first, re-read and re-apply, with a
//!   jittered backoff, `attempts` times; then exit 75.

use std::path::{Path, PathBuf};
use std::time::Duration;

use featurekit::artifact::Location;
use featurekit::retry::Backoff;
use featurekit::{Error, Result};
use object_store::{ObjectStoreExt, PutMode, PutOptions, UpdateVersion};

pub enum Registry {
    Local(PathBuf),
    Object(Location),
}

/// What one attempt decided: new bytes to write, or nothing to write.
pub type Update = Option<Vec<u8>>;

impl Registry {
    pub fn parse(url: &str) -> Result<Registry> {
        match url::Url::parse(url) {
            Ok(u) if u.scheme() == "file" => Ok(Registry::Local(
                u.to_file_path()
                    .map_err(|_| Error::config(format!("{url}: not a local file URL")))?,
            )),
            Ok(u) if u.scheme().len() > 1 => {
                // S3 needs to be told to make its puts conditional on the ETag
                let options: &[(&str, &str)] = if u.scheme().starts_with("s3") {
                    &[("aws_conditional_put", "etag")]
                } else {
                    &[]
                };
                Ok(Registry::Object(Location::parse_with(url, options)?))
            }
            _ => Ok(Registry::Local(PathBuf::from(url))),
        }
    }

    /// Reads the registry (`None` when absent), lets `apply` decide, writes its answer.
    /// Returns whether something was written.
    pub async fn update(
        &self,
        attempts: u32,
        mut apply: impl FnMut(Option<&[u8]>) -> Result<Update> + Send + 'static,
    ) -> Result<bool> {
        match self {
            Registry::Local(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || update_local(&path, &mut apply))
                    .await
                    .map_err(|e| Error::bug(format!("registry writer: {e}")))?
            }
            Registry::Object(loc) => update_object(loc, attempts, apply).await,
        }
    }

    /// Reads the registry as it is now.
    pub async fn read(&self) -> Result<Option<Vec<u8>>> {
        match self {
            Registry::Local(path) => match std::fs::read(path) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_error(path, e)),
            },
            Registry::Object(loc) => match loc.read().await {
                Ok(b) => Ok(Some(b.to_vec())),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            },
        }
    }
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::msg(featurekit::exit::io_kind(&e), format!("{}: {e}", path.display()))
}

fn update_local(path: &Path, apply: &mut dyn FnMut(Option<&[u8]>) -> Result<Update>) -> Result<bool> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lock_path = dir.join(format!("{name}.lock"));
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io_error(&lock_path, e))?;
    lock.lock().map_err(|e| io_error(&lock_path, e))?;
    let existing = match std::fs::read(path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(path, e)),
    };
    let Some(bytes) = apply(existing.as_deref())? else {
        return Ok(false);
    };
    featurekit::artifact::local::write_atomically(path, &bytes).map_err(|e| io_error(path, e))?;
    drop(lock);
    Ok(true)
}

async fn update_object(
    loc: &Location,
    attempts: u32,
    mut apply: impl FnMut(Option<&[u8]>) -> Result<Update>,
) -> Result<bool> {
    let (store, path) = (loc.store(), loc.path());
    for attempt in 0..attempts {
        let (existing, mode) = match store.get(path).await {
            Ok(got) => {
                let version = UpdateVersion {
                    e_tag: got.meta.e_tag.clone(),
                    version: got.meta.version.clone(),
                };
                let bytes = got.bytes().await.map_err(|e| Error::from(e).context(loc.to_string()))?;
                (Some(bytes), PutMode::Update(version))
            }
            Err(object_store::Error::NotFound { .. }) => (None, PutMode::Create),
            Err(e) => return Err(Error::from(e).context(loc.to_string())),
        };
        let Some(bytes) = apply(existing.as_deref())? else {
            return Ok(false);
        };
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        match store.put_opts(path, bytes.into(), opts).await {
            Ok(_) => return Ok(true),
            Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                let wait = CONFLICT_BACKOFF.delay(attempt + 1);
                tracing::info!(
                    attempt = attempt + 1,
                    wait_ms = wait.as_millis() as u64,
                    "another writer updated the registry first: re-reading"
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(Error::from(e).context(loc.to_string())),
        }
    }
    Err(Error::transient(format!(
        "{loc}: other writers kept updating the registry: gave up after {attempts} attempts"
    )))
}

/// The wait after a lost race for the registry: up to 20 ms doubling to 1 s, full jitter
/// (the attempts come from the flag).
const CONFLICT_BACKOFF: Backoff = Backoff::new(u32::MAX, Duration::from_millis(20), Duration::from_secs(1));
