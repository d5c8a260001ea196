//! `kaq convert`: audit logs → Parquet (one file or Hive partitions), and Parquet → JSON lines.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use kaq_columnar::{
    Columns, EventBatchBuilder, PartitionedWriter, Partitioning, SortedParquetWriter, ToBatch, WriteOptions,
};
use kaq_input::{Counts, ReadOptions, Report, Source};
use kaq_schema::DecodeOptions;
use parquet::arrow::arrow_reader::ParquetRecordBatchReader;

use super::input::InputArgs;
use super::progress::bytes_bar;
use super::report::{Rejects, human_bytes, thousands};

/// Convert audit logs to Parquet (or Parquet back to JSON lines).
///
/// Inputs are kube-apiserver audit logs: JSON lines (one audit.k8s.io Event per line), gzip
/// (rotated `.gz` files), directories of them (read oldest rotation first), `-` for stdin,
/// EventList batches, pretty-printed events, or Parquet files written by kaq. Managed clusters'
/// exports are read too, recognised record by record: GKE Cloud Logging entries, EKS CloudWatch
/// Logs exports, AKS diagnostic records and AKSAudit rows (see --input-format).
///
/// Every record (a line, an EventList item, one event of a cloud wrapper) is either converted or
/// rejected: the first rejects are shown on stderr with file:line and the reason, `--rejects
/// FILE` keeps every rejected record whole, and the summary always adds up. Secret values in
/// request/response bodies are replaced by a hash marker unless `--keep-secrets` is given.
/// A line longer than --max-record-size (64 MiB) is rejected and read past without being held.
///
/// An input that cannot be read (in a directory: a dangling symbolic link, a symbolic link loop,
/// a subdirectory that cannot be listed; or a file that cannot be opened) is reported by its own
/// path with the reason, skipped, and the rest is converted; --strict stops at it instead.
///
/// Examples:
///
///   kaq convert audit.log -o audit.parquet
///
///   kaq convert /var/log/kubernetes/ --out-dir archive/ --partition-by hour
///
///   kaq convert audit.parquet -o audit.jsonl      (back to audit JSON)
///
///   gcloud logging read 'protoPayload.serviceName="k8s.io"' --format=json > gke.json
///   kaq convert gke.json -o gke.parquet
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct ConvertArgs {
    /// Files, directories or `-` (stdin) to read.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,

    /// Write one file: `.parquet`, or `.jsonl`/`.json`/`.log` (JSON lines, `.gz` to compress);
    /// `-` writes JSON lines to stdout.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "OUT",
        required_unless_present = "out_dir",
        conflicts_with = "out_dir"
    )]
    output: Option<PathBuf>,

    /// Write Hive-partitioned Parquet under DIR (date=YYYY-MM-DD/[hour=HH/]part-N.parquet). The
    /// files are put in place together at the end: a run that fails leaves none (so running it
    /// again with --append cannot duplicate a part).
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,

    /// How --out-dir splits files [default: day].
    #[arg(long, value_enum, requires = "out_dir")]
    partition_by: Option<PartitionBy>,

    /// Add files to a non-empty --out-dir instead of refusing.
    #[arg(long, requires = "out_dir")]
    append: bool,

    /// Write every rejected line, whole, to FILE (created private, 0600).
    #[arg(long, value_name = "FILE")]
    rejects: Option<PathBuf>,

    /// Stop at the first input that cannot be read (a dangling symbolic link, a symbolic link
    /// loop, a file or directory that cannot be opened) or that breaks off, with an error (exit
    /// 1), instead of reporting it, skipping it and going on; and exit with status 1 when
    /// anything was rejected.
    #[arg(long)]
    strict: bool,

    #[command(flatten)]
    input: InputArgs,

    /// Keep the values of Secret data (redacted by default).
    #[arg(long)]
    keep_secrets: bool,

    /// Decoding threads (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,

    /// No progress bar and no summary.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum PartitionBy {
    Day,
    Hour,
}

/// Where converted batches go.
enum Sink {
    Parquet(Box<SortedParquetWriter>, PathBuf),
    Partitioned(PartitionedWriter, PathBuf),
    Json(JsonSink),
}

struct JsonSink {
    out: Box<dyn Write>,
    /// (temporary file, final path) for file output.
    rename: Option<(PathBuf, PathBuf)>,
    /// Stdout is a terminal: DEL, C1 and bidi characters written as `\u` escapes (the same JSON).
    visible: bool,
}

impl Sink {
    fn write(&mut self, batch: arrow_array::RecordBatch) -> anyhow::Result<()> {
        match self {
            Sink::Parquet(w, _) => w.write(batch)?,
            Sink::Partitioned(w, _) => w.write(batch)?,
            Sink::Json(j) => {
                let cols = Columns::new(&batch)?;
                for i in 0..batch.num_rows() {
                    if j.visible {
                        let line = serde_json::to_string(&cols.event(i)?.to_json())?;
                        j.out.write_all(kaq_schema::visible::visible_json(&line).as_bytes())?;
                    } else {
                        serde_json::to_writer(&mut j.out, &cols.event(i)?.to_json())?;
                    }
                    j.out.write_all(b"\n")?;
                }
            }
        }
        Ok(())
    }

    /// Finishes; returns what was written and its size in bytes.
    fn finish(self) -> anyhow::Result<(String, u64)> {
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        Ok(match self {
            Sink::Parquet(w, path) => {
                w.finish()?;
                (path.display().to_string(), size(&path))
            }
            Sink::Partitioned(w, dir) => {
                let files = w.finish()?;
                let total = files.iter().map(|p| size(p)).sum();
                (
                    format!("{} file{} under {}", files.len(), if files.len() == 1 { "" } else { "s" }, dir.display()),
                    total,
                )
            }
            Sink::Json(mut j) => {
                j.out.flush()?;
                drop(j.out);
                match j.rename {
                    Some((tmp, path)) => {
                        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
                        (path.display().to_string(), size(&path))
                    }
                    None => ("to stdout".into(), 0),
                }
            }
        })
    }
}

fn open_sink(args: &ConvertArgs) -> anyhow::Result<Sink> {
    let opts = WriteOptions::default();
    if let Some(dir) = &args.out_dir {
        let by = match args.partition_by.unwrap_or(PartitionBy::Day) {
            PartitionBy::Day => Partitioning::Day,
            PartitionBy::Hour => Partitioning::Hour,
        };
        return Ok(Sink::Partitioned(PartitionedWriter::create(dir, by, opts, args.append)?, dir.clone()));
    }
    let out = args.output.as_ref().expect("clap requires -o or --out-dir");
    if out == Path::new("-") {
        return Ok(Sink::Json(JsonSink {
            out: Box::new(BufWriter::new(std::io::stdout().lock())),
            rename: None,
            visible: std::io::stdout().is_terminal(),
        }));
    }
    let name = out.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let (stem, gz) = match name.strip_suffix(".gz") {
        Some(s) => (s.to_string(), true),
        None => (name.clone(), false),
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    if stem.ends_with(".parquet") && !gz {
        return Ok(Sink::Parquet(Box::new(SortedParquetWriter::create(out, opts)?), out.clone()));
    }
    if [".jsonl", ".json", ".log", ".ndjson"].iter().any(|e| stem.ends_with(e)) {
        let tmp = out.with_file_name(format!(".{name}.kaq-tmp"));
        let file = BufWriter::with_capacity(
            1 << 20,
            File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        let w: Box<dyn Write> = if gz {
            Box::new(flate2::write::GzEncoder::new(file, flate2::Compression::default()))
        } else {
            Box::new(file)
        };
        return Ok(Sink::Json(JsonSink { out: w, rename: Some((tmp, out.clone())), visible: false }));
    }
    bail!(
        "{}: unknown output type; name it .parquet for Parquet, or .jsonl / .json / .log (optionally .gz) for JSON lines, or use --out-dir",
        out.display()
    )
}

/// A Parquet batch in kaq's schema, rebuilt through the event model: a file written with
/// --keep-secrets (or by another tool, or by an older kaq) is checked like any other input
/// ([`kaq_schema::redact::sanitize`]: Secrets redacted unless kept, values nested too deep
/// replaced).
fn normalize(batch: arrow_array::RecordBatch, keep_secrets: bool) -> anyhow::Result<arrow_array::RecordBatch> {
    let cols = Columns::new(&batch)?;
    let mut b = EventBatchBuilder::new();
    for i in 0..batch.num_rows() {
        let mut ev = cols.event(i)?;
        kaq_schema::redact::sanitize(&mut ev, keep_secrets);
        b.append(&ev);
    }
    Ok(b.finish())
}

pub fn run(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    // clap's `requires` is not enforced beside `-o` (which conflicts with --out-dir): check here.
    if args.out_dir.is_none() && (args.partition_by.is_some() || args.append) {
        eprintln!(
            "kaq: error: --partition-by and --append go with --out-dir DIR (Hive-partitioned output), not with -o"
        );
        return Ok(ExitCode::from(2));
    }
    let start = Instant::now();
    let expanded = kaq_input::expand(&args.inputs)?;
    expanded.check(args.strict)?;
    super::report::note_skipped(&expanded.skipped);
    let unreadable = expanded.messages();
    let sources = expanded.sources;
    if sources.is_empty() {
        for e in &unreadable {
            eprintln!("kaq: warning: {e}");
        }
        bail!(
            "no input files found in {}",
            args.inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let bytes_in: Option<u64> = sources.iter().map(Source::size).sum();
    // The bar counts bytes after decompression: with gzip inputs the total is unknown.
    let any_gzip = sources.iter().any(|s| matches!(s, Source::File(p) if kaq_input::is_gzip(p)));
    let progress = bytes_bar(bytes_in.filter(|_| !any_gzip), args.quiet);
    let mut sink = open_sink(&args)?;
    let mut rejects = Rejects::new(args.rejects.as_deref())?;
    let read_opts = ReadOptions {
        decode: DecodeOptions::keeping_secrets(args.keep_secrets),
        input_format: args.input.format(),
        threads: args.threads.unwrap_or_else(|| ReadOptions::default().threads),
        max_record_size: args.input.max_record_size,
        strict: args.strict,
        ..ReadOptions::default()
    };
    let mut report = Report { sources: sources.len(), read_errors: unreadable, ..Report::default() };
    let to_batch = ToBatch::default();

    // Parquet inputs are read as batches; runs of log inputs between them go through the decoder.
    let mut logs: Vec<Source> = Vec::new();
    let flush_logs =
        |logs: &mut Vec<Source>, sink: &mut Sink, rejects: &mut Rejects, report: &mut Report| -> anyhow::Result<()> {
            if logs.is_empty() {
                return Ok(());
            }
            let r = kaq_input::read(logs, &read_opts, &to_batch, |chunk| -> anyhow::Result<()> {
                progress.inc(chunk.counts.bytes);
                for rej in &chunk.rejects {
                    rejects.add(rej, &progress)?;
                }
                if let Some(batch) = chunk.output {
                    sink.write(batch)?;
                }
                Ok(())
            })?;
            r.check(read_opts.strict)?;
            report.counts.add(&r.counts);
            report.read_errors.extend(r.read_errors);
            logs.clear();
            Ok(())
        };
    for source in sources {
        match &source {
            Source::File(p) if kaq_columnar::read::is_parquet(p) => {
                flush_logs(&mut logs, &mut sink, &mut rejects, &mut report)?;
                let reader: ParquetRecordBatchReader = kaq_columnar::read::open(p, 8192)?;
                for batch in reader {
                    let batch =
                        normalize(batch.with_context(|| format!("reading {}", p.display()))?, args.keep_secrets)
                            .with_context(|| format!("reading {}", p.display()))?;
                    report.counts.add(&Counts { events: batch.num_rows() as u64, ..Counts::default() });
                    sink.write(batch)?;
                }
                progress.inc(source.size().unwrap_or(0));
            }
            _ => logs.push(source),
        }
    }
    flush_logs(&mut logs, &mut sink, &mut rejects, &mut report)?;
    let (written, bytes_out) = sink.finish()?;
    progress.finish_and_clear();
    rejects.finish(&report, args.rejects.as_deref())?;

    let c = report.counts;
    if !args.quiet {
        let secs = start.elapsed().as_secs_f64();
        let read = c.bytes.max(bytes_in.unwrap_or(0));
        let on_disk = match bytes_in {
            Some(d) if d != read => format!(" ({} on disk)", human_bytes(d)),
            _ => String::new(),
        };
        let size = if bytes_out > 0 { format!(" ({})", human_bytes(bytes_out)) } else { String::new() };
        eprintln!(
            "kaq: converted {} events, rejected {}, skipped {} empty lines; read {}{on_disk} in {:.2} s ({}/s); wrote {}{size}",
            thousands(c.events),
            thousands(c.rejected),
            thousands(c.blank),
            human_bytes(read),
            secs,
            human_bytes((read as f64 / secs.max(1e-9)) as u64),
            kaq_schema::visible(&written),
        );
    }
    let failed = c.rejected > 0 || !report.read_errors.is_empty();
    Ok(if args.strict && failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
