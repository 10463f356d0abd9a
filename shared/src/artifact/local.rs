//! The one way a local file is replaced: written whole under a hidden temporary name beside
//! it, its bytes flushed to the disk (fsync), renamed over the target, and the rename itself
//! flushed (fsync of the directory). A crash or power loss at any point leaves the old file or
//! the new one, never a part or an empty file. Parquet files, summaries, progress and the
//! registry all go through here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Temporary files of this process, numbered.
pub(crate) static TEMPORARIES: AtomicU64 = AtomicU64::new(0);

/// Creates a temporary file beside `path` that no other writer holds: another process (a pod
/// is often PID 1 too, and a retried pod may still run beside its successor) moves on to the
/// next number. Names start with `.`, so readers of the directory skip them.
pub fn temporary(path: &Path) -> std::io::Result<(std::fs::File, PathBuf)> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    loop {
        let n = TEMPORARIES.fetch_add(1, Ordering::Relaxed);
        let temporary = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
        match std::fs::File::create_new(&temporary) {
            Ok(file) => return Ok((file, temporary)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Makes the finished (and closed) `temporary` the file at `path`, durably; on failure the
/// temporary is removed and `path` keeps what it held.
pub fn commit(temporary: &Path, path: &Path) -> std::io::Result<()> {
    let done = std::fs::File::open(temporary)
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(temporary, path));
    if let Err(e) = done {
        let _ = std::fs::remove_file(temporary);
        return Err(e);
    }
    // the rename is in the directory: flushed with it
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all())
}

/// Replaces the file at `path` with `bytes`, atomically and durably.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (mut file, tmp) = temporary(path)?;
    let written = file.write_all(bytes);
    drop(file);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    commit(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        write_atomically(&path, b"old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["summary.json"]);
    }

    #[test]
    fn a_failed_commit_keeps_the_old_file_and_removes_the_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        write_atomically(&path, b"old").unwrap();
        let (_, tmp) = temporary(&path).unwrap();
        // a rename onto a non-empty directory fails
        let blocked = dir.path().join("blocked");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        assert!(commit(&tmp, &blocked).is_err());
        assert!(!tmp.exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert!(write_atomically(&dir.path().join("missing/x"), b"y").is_err());
    }

    #[test]
    fn two_temporaries_of_one_path_never_share_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        let (_, a) = temporary(&path).unwrap();
        let (_, b) = temporary(&path).unwrap();
        assert_ne!(a, b);
        assert!(a.file_name().unwrap().to_string_lossy().starts_with(".x."));
    }
}
