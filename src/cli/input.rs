//! Options shared by every command that reads audit logs (`convert` now; `query`, `ingest`…).

use clap::{Args, ValueEnum};
use kaq_input::InputFormat;

/// How to read the inputs. Flatten into a command's arguments with `#[command(flatten)]`.
#[derive(Args, Clone, Copy, Debug)]
pub struct InputArgs {
    /// The inputs' format. `auto` recognises, record by record, native audit Events and the
    /// exports of managed clusters: GKE Cloud Logging entries (`protoPayload`, serviceName
    /// k8s.io), EKS CloudWatch Logs exports (subscription payloads, also base64 gzip; `aws logs
    /// filter-log-events` and Logs Insights output), AKS diagnostic records (`properties.log`)
    /// and Log Analytics AKSAudit rows. Forcing one format rejects records of any other, with a
    /// reason saying what they are. What each wrapper keeps and loses: docs/inputs.md.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = FormatArg::Auto)]
    pub input_format: FormatArg,

    /// The largest record (line) read. A longer line is rejected with its file, line and size
    /// ("record of N bytes exceeds the limit of 64 MiB"), read past to its end without being
    /// held, and the lines after it are read. A file of pretty-printed JSON, read whole, must fit
    /// in it too. Units: KiB, MiB, GiB (K, M, G), KB, MB, GB, or bytes. Memory stays within a
    /// small multiple of it (docs/inputs.md).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_record_size)]
    pub max_record_size: usize,
}

/// A record size such as `64MiB`, `1KiB` or `500MB`.
fn parse_record_size(text: &str) -> Result<usize, String> {
    match kaq_input::parse_size(text) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(format!("`{text}` is not a size (for example 64MiB, 1KiB, 500MB)")),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Detect each record's shape.
    #[default]
    Auto,
    /// kube-apiserver audit Events only (log backend lines, EventList, arrays).
    K8s,
    /// GKE Cloud Logging entries (gcloud logging read --format=json, exports).
    Gke,
    /// EKS CloudWatch Logs exports (subscription payloads, base64 gzip, CLI output).
    Eks,
    /// AKS diagnostic records (Event Hubs, storage) and AKSAudit rows.
    Aks,
}

impl InputArgs {
    pub fn format(&self) -> InputFormat {
        match self.input_format {
            FormatArg::Auto => InputFormat::Auto,
            FormatArg::K8s => InputFormat::K8s,
            FormatArg::Gke => InputFormat::Gke,
            FormatArg::Eks => InputFormat::Eks,
            FormatArg::Aks => InputFormat::Aks,
        }
    }
}
