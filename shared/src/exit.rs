//! Error kinds and the one exit-code table every step shares.
//!
//! | code | kind        | meaning                                                        | Argo retries |
//! |------|-------------|----------------------------------------------------------------|--------------|
//! | 0    | -           | success                                                        | -            |
//! | 1    | `Bug`       | unexpected failure: a bug, please report it                    | no           |
//! | 2    | `Usage`     | bad command line (unknown flag, bad value, start >= end)       | no           |
//! | 65   | `Data`      | input data broke the contract (file, column, row or key named) | no           |
//! | 66   | `NoInput`   | an input names no object, or holds no row in the range read    | no           |
//! | 75   | `Transient` | a dependency failed for now (object store, Redis, BigQuery)    | yes          |
//! | 78   | `Config`    | bad configuration or credentials (spec, URL, permissions)      | no           |
//! | 130  | interrupted | stopped by SIGINT; temporary objects removed                   | no           |
//! | 143  | interrupted | stopped by SIGTERM (deadline, eviction); temporaries removed   | no           |

use std::fmt;

/// What went wrong, as far as the caller (Argo, a person) can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Bug,
    Usage,
    Data,
    /// An input that names no object (a typo, an upstream step that wrote nothing), or whose
    /// objects hold no row in the range read: never taken as an empty day, whose output
    /// would replace the day's existing files.
    NoInput,
    Transient,
    Config,
}

impl Kind {
    pub const fn exit_code(self) -> u8 {
        match self {
            Kind::Bug => 1,
            Kind::Usage => 2,
            Kind::Data => 65,
            Kind::NoInput => 66,
            Kind::Transient => 75,
            Kind::Config => 78,
        }
    }
}

/// Exit code of a step stopped by SIGINT (128 + 2).
pub const EXIT_SIGINT: u8 = 130;
/// Exit code of a step stopped by SIGTERM (128 + 15).
pub const EXIT_SIGTERM: u8 = 143;

/// A step's failure: a kind (which picks the exit code) and a message chain.
pub struct Error {
    kind: Kind,
    inner: anyhow::Error,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, err: impl Into<anyhow::Error>) -> Self {
        Error {
            kind,
            inner: err.into(),
        }
    }
    pub fn msg(kind: Kind, msg: impl fmt::Display) -> Self {
        Error::new(kind, anyhow::anyhow!("{msg}"))
    }
    pub fn bug(msg: impl fmt::Display) -> Self {
        Error::msg(Kind::Bug, msg)
    }
    pub fn usage(msg: impl fmt::Display) -> Self {
        Error::msg(Kind::Usage, msg)
    }
    pub fn data(msg: impl fmt::Display) -> Self {
        Error::msg(Kind::Data, msg)
    }
    pub fn no_input(msg: impl fmt::Display) -> Self {
        Error::msg(Kind::NoInput, msg)
    }
    pub fn transient(msg: impl fmt::Display) -> Self {
        Error::msg(Kind::Transient, msg)
    }
    pub fn config(msg: impl fmt::Display) -> Self {
        Error::msg(Kind::Config, msg)
    }
    pub fn kind(&self) -> Kind {
        self.kind
    }
    pub fn exit_code(&self) -> u8 {
        self.kind.exit_code()
    }
    /// True when the cause is an object store's `NotFound` (by type, not by its message).
    pub fn is_not_found(&self) -> bool {
        self.inner.chain().any(|c| {
            matches!(
                c.downcast_ref::<object_store::Error>(),
                Some(object_store::Error::NotFound { .. })
            )
        })
    }
    /// Prefix the message with what was being done (`"reading s3://b/k: ..."`).
    pub fn context(self, ctx: impl fmt::Display + Send + Sync + 'static) -> Self {
        Error {
            kind: self.kind,
            inner: self.inner.context(ctx),
        }
    }
}

impl fmt::Display for Error {
    /// One line: the chain joined by `: `, each cause once (object_store and others repeat
    /// their source's text in their own message, so a cause already said is left out).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut said = String::new();
        for cause in self.inner.chain() {
            let text = cause.to_string();
            if said.contains(&text) {
                continue;
            }
            if !said.is_empty() {
                said.push_str(": ");
            }
            said.push_str(&text);
        }
        f.write_str(&said)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {:#}", self.kind, self.inner)
    }
}

impl std::error::Error for Error {}

/// Adds context and a kind to any error on its way up.
pub trait ResultExt<T> {
    fn or_kind(self, kind: Kind, ctx: impl fmt::Display) -> Result<T>;
}

impl<T, E: Into<anyhow::Error>> ResultExt<T> for std::result::Result<T, E> {
    fn or_kind(self, kind: Kind, ctx: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::new(kind, e.into().context(ctx.to_string())))
    }
}

/// The kind of an object-store failure: missing objects and broken data are the
/// input's fault, refused credentials are configuration, the rest may pass.
pub fn object_store_kind(err: &object_store::Error) -> Kind {
    use object_store::Error as E;
    // a local store's failure is a file-system one, whatever variant carries it
    if let Some(io) = io_source(err) {
        return io_kind(io);
    }
    match err {
        E::NotFound { .. } => Kind::Data,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } | E::UnknownConfigurationKey { .. } => Kind::Config,
        E::InvalidPath { .. } | E::NotSupported { .. } | E::NotImplemented { .. } => Kind::Config,
        E::AlreadyExists { .. } | E::Precondition { .. } | E::NotModified { .. } => Kind::Transient,
        _ => Kind::Transient,
    }
}

impl From<object_store::Error> for Error {
    fn from(err: object_store::Error) -> Self {
        let kind = object_store_kind(&err);
        Error::new(kind, err)
    }
}

/// The file-system error at the root of `err`, if any.
pub fn io_source<'e>(err: &'e (dyn std::error::Error + 'static)) -> Option<&'e std::io::Error> {
    let mut cause = err.source();
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cause = c.source();
    }
    None
}

/// The kind of a file-system failure: refused access or an impossible path is configuration,
/// a missing file the input's fault, the rest (a full disk, say) may pass.
pub fn io_kind(err: &std::io::Error) -> Kind {
    use std::io::ErrorKind as E;
    match err.kind() {
        E::PermissionDenied | E::ReadOnlyFilesystem | E::NotADirectory | E::IsADirectory | E::InvalidFilename => {
            Kind::Config
        }
        E::NotFound => Kind::Data,
        _ => Kind::Transient,
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        let kind = io_kind(&err);
        Error::new(kind, err)
    }
}

impl From<parquet::errors::ParquetError> for Error {
    fn from(err: parquet::errors::ParquetError) -> Self {
        use parquet::errors::ParquetError as P;
        let kind = match &err {
            P::External(e) => match (
                e.downcast_ref::<object_store::Error>(),
                e.downcast_ref::<std::io::Error>(),
            ) {
                (Some(os), _) => object_store_kind(os),
                (None, Some(io)) => io_kind(io),
                (None, None) => Kind::Data,
            },
            _ => Kind::Data,
        };
        Error::new(kind, err)
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(err: arrow::error::ArrowError) -> Self {
        use arrow::error::ArrowError as A;
        let kind = match &err {
            A::IoError(..) | A::ExternalError(..) => Kind::Transient,
            A::SchemaError(..) | A::CastError(..) | A::ParseError(..) | A::InvalidArgumentError(..) => Kind::Data,
            // what a Parquet reader reports of a page it cannot decode: the file is broken
            A::ParquetError(..) => Kind::Data,
            _ => Kind::Bug,
        };
        Error::new(kind, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_table() {
        let table: Vec<(Kind, u8)> = [
            Kind::Bug,
            Kind::Usage,
            Kind::Data,
            Kind::NoInput,
            Kind::Transient,
            Kind::Config,
        ]
        .into_iter()
        .map(|k| (k, k.exit_code()))
        .collect();
        assert_eq!(
            table,
            vec![
                (Kind::Bug, 1),
                (Kind::Usage, 2),
                (Kind::Data, 65),
                (Kind::NoInput, 66),
                (Kind::Transient, 75),
                (Kind::Config, 78)
            ]
        );
        assert_eq!((EXIT_SIGINT, EXIT_SIGTERM), (130, 143));
    }

    #[test]
    fn object_store_errors_map_to_kinds() {
        let nf = object_store::Error::NotFound {
            path: "a".into(),
            source: "gone".into(),
        };
        assert_eq!(Error::from(nf).exit_code(), 65);
        let denied = object_store::Error::PermissionDenied {
            path: "a".into(),
            source: "no".into(),
        };
        assert_eq!(Error::from(denied).exit_code(), 78);
        let generic = object_store::Error::Generic {
            store: "S3",
            source: "connection reset".into(),
        };
        assert_eq!(Error::from(generic).exit_code(), 75);
    }

    #[test]
    fn a_local_not_a_directory_is_configuration_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotADirectory);
        let shown = io.to_string();
        let err = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: format!("Unable to open file x/y: {shown}").into(),
        };
        // object_store's local store wraps the io error as a source
        let wrapped = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(Wrap(format!("Unable to open file x/y: {shown}"), io)),
        };
        assert_eq!(Error::from(err).exit_code(), 75, "no io source: may pass");
        let err = Error::from(wrapped).context("x/y");
        assert_eq!(err.exit_code(), 78);
        assert_eq!(err.to_string().matches(&shown).count(), 1, "{err}");
    }

    #[derive(Debug)]
    struct Wrap(String, std::io::Error);
    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn context_reads_as_one_line() {
        let err = Error::data("column `amount` has type Utf8, expected Float64").context("reading in.parquet");
        assert_eq!(
            err.to_string(),
            "reading in.parquet: column `amount` has type Utf8, expected Float64"
        );
        assert_eq!(err.kind(), Kind::Data);
    }
}
