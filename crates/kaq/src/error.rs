//! One error type, with a variant per layer.

use crate::QueryError;

/// What went wrong, by layer. Every variant's message names what (and, for files, which file).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query does not compile; [`QueryError::render`] shows where.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Reading inputs (a file that cannot be opened, a directory, `--strict`).
    #[error(transparent)]
    Input(#[from] kaq_input::InputError),
    /// Running a query over files (a Parquet file that is not kaq's, cancelled).
    #[error(transparent)]
    Scan(#[from] kaq_query::scan::ScanError),
    /// The store (not a store, locked, damaged, an index).
    #[error(transparent)]
    Store(kaq_store::Error),
    /// Writing Parquet or Arrow.
    #[error(transparent)]
    Columnar(#[from] kaq_columnar::Error),
}

impl From<kaq_store::Error> for Error {
    fn from(e: kaq_store::Error) -> Error {
        match e {
            // Not reached through this crate (queries are compiled by `Query`), but kept whole.
            kaq_store::Error::Query(diagnostics) => Error::Query(QueryError::new(String::new(), diagnostics)),
            e => Error::Store(e),
        }
    }
}
