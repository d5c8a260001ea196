//! Reporting what was rejected: the first few on stderr, all of them in `--rejects FILE`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use kaq_input::{Reject, Report};

/// How many rejects are shown on stderr.
pub const SHOWN: usize = 10;

pub struct Rejects {
    shown: usize,
    file: Option<BufWriter<File>>,
    pub total: u64,
}

impl Rejects {
    /// Opens the rejects file, private (0600: rejected records are raw log text, which may hold
    /// what redaction could not recognise), or none.
    pub fn new(path: Option<&Path>) -> anyhow::Result<Self> {
        let file = match path {
            Some(p) => {
                let create = || -> std::io::Result<File> {
                    let f = File::options().write(true).create(true).truncate(true).mode(0o600).open(p)?;
                    // `mode` applies only to a new file: an existing one is made private too.
                    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                    Ok(f)
                };
                Some(BufWriter::new(create().with_context(|| format!("creating {}", p.display()))?))
            }
            None => None,
        };
        Ok(Rejects { shown: 0, file, total: 0 })
    }

    /// Prints the first [`SHOWN`] rejects with their reasons and writes each one whole to the
    /// rejects file.
    pub fn add(&mut self, r: &Reject, progress: &indicatif::ProgressBar) -> anyhow::Result<()> {
        self.total += 1;
        if self.shown < SHOWN {
            self.shown += 1;
            progress.suspend(|| eprintln!("kaq: rejected {}:{}: {}", r.source, r.line, r.reason));
        }
        if let Some(f) = &mut self.file {
            f.write_all(&r.raw)?;
            if !r.raw.ends_with(b"\n") {
                f.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    /// Ends the report: says how many were not shown, flushes the file.
    pub fn finish(mut self, report: &Report, rejects_path: Option<&Path>) -> anyhow::Result<()> {
        if let Some(f) = &mut self.file {
            f.flush()?;
        }
        let hidden = self.total.saturating_sub(self.shown as u64);
        if hidden > 0 {
            match rejects_path {
                Some(p) => eprintln!("kaq: … and {hidden} more rejected (all {} are in {})", self.total, p.display()),
                None => eprintln!("kaq: … and {hidden} more rejected (use --rejects FILE to keep them all)"),
            }
        }
        for e in &report.read_errors {
            eprintln!("kaq: warning: {e}");
        }
        Ok(())
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in human units.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// The note for files of input directories skipped because their names do not look like logs.
pub fn note_skipped(skipped: &[std::path::PathBuf]) {
    if let Some(first) = skipped.first() {
        eprintln!(
            "kaq: note: skipped {} file(s) in the input directories whose names do not look like logs ({}{}); name a file to read it anyway",
            skipped.len(),
            first.display(),
            if skipped.len() > 1 { ", …" } else { "" }
        );
    }
}
