use std::path::PathBuf;

/// Errors that stop reading. Bad content never does: it is rejected line by line.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: {source}", path.display())]
    Open { path: PathBuf, source: std::io::Error },
}
