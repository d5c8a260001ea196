//! kaq's integration tests: one binary (ripgrep's habit), a module per concern.

mod accounting;
mod cli;
mod common;
mod corpus;
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
mod store;
mod traps;
mod warnings;
