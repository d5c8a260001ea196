//! `kaq demo`: a generated cluster's audit log (kaq-demo), ingested into a temporary store, then
//! the REPL on it, with three questions to start from.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use kaq_demo::DemoOptions;
use kaq_store::{IngestOptions, Store};

use super::repl::{Settings, Source};
use super::report::thousands;

/// Try kaq on a demo cluster: its audit log is made in memory, ingested into a temporary
/// store, and the REPL opens on it.
///
/// The log covers the last four hours of a small cluster — people at kubectl, controllers,
/// kubelets, service accounts, anonymous probes — with incidents to find: deletions in
/// production, a burst of 401s from one address, a shell in a production pod, secret reads,
/// a cluster-admin binding, a privileged pod. Three questions are suggested to start; Tab
/// completes every word of a query from what the store holds.
///
///   kaq demo
///
///   kaq demo --events 200000 --seed 7
///
///   kaq demo --keep demo-store        (then: kaq repl --store demo-store)
///
/// The store is removed when you leave, unless --keep. Piped on stdin, queries are answered
/// in turn (see `kaq repl --help`).
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct DemoArgs {
    /// Events in the log (at least 204: the incidents alone).
    #[arg(long, value_name = "N", default_value_t = DemoOptions::default().events)]
    events: usize,

    /// The generator's seed: the same seed and size give the same cluster.
    #[arg(long, value_name = "N", default_value_t = DemoOptions::default().seed)]
    seed: u64,

    /// Keep the store in DIR (which must not exist yet) instead of removing it on exit.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

/// Removes the temporary store when the demo ends, however it ends (but a kill): on return, and
/// on Ctrl-C between queries without a terminal (`repl::remove_on_interrupt`).
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let (dir, _cleanup) = match &args.keep {
        Some(dir) if dir.exists() => bail!("{}: already exists; --keep makes a new store", dir.display()),
        Some(dir) => (dir.clone(), Cleanup(None)),
        None => {
            let dir = std::env::temp_dir().join(format!("kaq-demo-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir); // a leftover of an earlier process with our pid
            super::repl::remove_on_interrupt(&dir);
            (dir.clone(), Cleanup(Some(dir)))
        }
    };
    let started = Instant::now();
    let opts = DemoOptions { seed: args.seed, events: args.events, ..DemoOptions::ending_now() };
    let demo = kaq_demo::generate(&opts);
    let mut store = Store::create(&dir).with_context(|| format!("creating the demo store in {}", dir.display()))?;
    let report = store.ingest_reader("demo", &demo.log[..], &IngestOptions::default())?;
    drop(store); // releases the writer's lock
    let store = Store::open(&dir)?;
    let welcome = welcome(report.counts.events, &dir, args.keep.is_some(), started);
    super::repl::start(Source::store(store), Settings::default(), Some(welcome))
}

fn welcome(events: u64, dir: &Path, kept: bool, started: Instant) -> String {
    let mut s = format!(
        "A demo cluster: {} audit events over the last {} hours (made and indexed in {:.1}s) —\n\
         people, controllers, kubelets, service accounts, and a few incidents to find.\n\
         Three questions to start (type them; Tab completes every word):\n",
        thousands(events),
        kaq_demo::SPAN_HOURS,
        started.elapsed().as_secs_f64()
    );
    for (question, query) in kaq_demo::suggested() {
        s.push_str(&format!("\n  {question}\n    {query}\n"));
    }
    s.push_str("\nMore: .help, .fields, @<Tab> for named searches (@secret-reads, @exec…).\n");
    if kept {
        s.push_str(&format!("The store stays in {} (kaq repl --store {0}).\n", dir.display()));
    } else {
        s.push_str("The demo store is removed when you leave (--keep DIR keeps it).\n");
    }
    s
}
