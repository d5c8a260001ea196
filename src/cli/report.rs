//! Reporting what was rejected: the first few on stderr, all of them in `--rejects FILE`; and
//! [`shown`], how every message names a file.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use kaq_input::{Reject, Report};
use kaq_schema::visible;

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
                    let f = private_file(p)?;
                    // `mode` applies only to a new file: an existing regular file is made private
                    // too (a device such as /dev/stderr keeps its mode).
                    if f.metadata()?.is_file() {
                        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                    }
                    Ok(f)
                };
                Some(BufWriter::new(create().with_context(|| format!("creating {}", shown(p)))?))
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
            progress.suspend(|| eprintln!("kaq: rejected {}:{}: {}", visible(&r.source), r.line, visible(&r.reason)));
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
                Some(p) => eprintln!("kaq: … and {hidden} more rejected (all {} are in {})", self.total, shown(p)),
                None => eprintln!("kaq: … and {hidden} more rejected (use --rejects FILE to keep them all)"),
            }
        }
        for e in &report.read_errors {
            eprintln!("kaq: warning: {}", visible(e));
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
            shown(first),
            if skipped.len() > 1 { ", …" } else { "" }
        );
    }
}

/// A path as messages show it: control characters and bidi overrides in its name as escapes
/// (`kaq_schema::visible`), so that a file named to drive a terminal cannot.
pub fn shown(p: &Path) -> String {
    visible::visible_owned(p.display().to_string())
}

/// Opens `p` for writing (truncated), created 0600 when it does not exist: for files that hold
/// log lines or queries (the rejects file, the REPL's saved searches).
pub fn private_file(p: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(p)
}

/// Makes `p` a private file (0600) without touching its content: created empty when missing,
/// its mode tightened when others may read it. For the REPL's history, which the line editor
/// opens itself. `dir` (its directory) is created 0700 when missing.
pub fn keep_private(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    match std::fs::metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            OpenOptions::new().write(true).create_new(true).mode(0o600).open(p).map(drop)
        }
        Err(e) => Err(e),
        Ok(m) if m.is_file() && m.permissions().mode() & 0o077 != 0 => {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
        }
        Ok(_) => Ok(()),
    }
}
