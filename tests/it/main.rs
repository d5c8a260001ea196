//! kaq's integration tests: one binary (ripgrep's habit), a module per concern.

mod accounting;
mod cli;
mod common;
mod compliance;
mod corpus;
mod detect;
mod entries;
mod hostile;
mod identity;
mod inputs;
mod partition;
mod python;
mod query;
mod repl;
mod roundtrip;
mod secrets;
mod serve;
mod sql;
mod store;
mod traps;
mod warnings;
mod watch;
