use std::path::PathBuf;

/// Errors that stop reading. Bad content never does: it is rejected line by line.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The cause is in the message (not a `source()`, which would print it twice in error chains).
    #[error("{}: {error}", path.display())]
    Open { path: PathBuf, error: std::io::Error },
    /// With [`crate::ReadOptions::strict`]: the first input or directory entry that could not be
    /// read (or broke off), which stopped the read.
    #[error("{0}; stopped there (--strict)")]
    Strict(String),
}
