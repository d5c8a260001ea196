use std::path::PathBuf;

/// Errors of the columnar layer; foreign errors are wrapped whole.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cause is in the message (not a `source()`, which would print it twice in error chains).
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A Parquet file that kaq cannot read back as audit events.
    #[error("not a kaq Parquet file: {0}")]
    NotKaqParquet(String),
    /// `--out-dir` holds files already and appending was not asked for.
    #[error("{0}: the output directory is not empty (use --append to add files beside what is there)")]
    OutDirNotEmpty(PathBuf),
    /// Publishing the files of a partitioned output failed part way: `published` are in place.
    #[error("{error}; {} file(s) had been put in place before this error, remove them before running again with --append: {}", published.len(), published.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    PartlyPublished { published: Vec<PathBuf>, error: Box<Error> },
    /// A [`RowSink`](crate::RowSink) failed (building an index beside the file).
    #[error("{0}")]
    Sink(String),
}

pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, Error>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, Error> {
        self.map_err(|source| Error::Io { path: path.to_path_buf(), error: source })
    }
}
