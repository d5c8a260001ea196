use std::path::PathBuf;

/// Errors that stop reading. Bad content never does: it is rejected line by line.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The cause is in the message (not a `source()`, which would print it twice in error chains).
    #[error("{}: {error}", path.display())]
    Open { path: PathBuf, error: std::io::Error },
}
