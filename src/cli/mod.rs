//! Subcommands and the pieces they share.

pub mod compliance;
pub mod convert;
pub mod demo;
pub mod detect;
pub mod diagnostics;
pub mod input;
pub mod progress;
pub mod query;
pub mod render;
pub mod repl;
pub mod report;
pub mod saved;
pub mod serve;
pub mod sql;
pub mod store;
pub mod watch;

/// Whether an error comes from writing to a closed pipe (`kaq … | head`): not worth a message.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.to_string().contains("Broken pipe")
    })
}
