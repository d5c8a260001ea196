//! Options shared by every command that reads audit logs (`convert` now; `query`, `ingest`…).

use clap::{Args, ValueEnum};
use kaq_input::InputFormat;

/// How to read the inputs. Flatten into a command's arguments with `#[command(flatten)]`.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct InputArgs {
    /// The inputs' format. `auto` recognises, record by record, native audit Events and the
    /// exports of managed clusters: GKE Cloud Logging entries (`protoPayload`, serviceName
    /// k8s.io), EKS CloudWatch Logs exports (subscription payloads, also base64 gzip; `aws logs
    /// filter-log-events` and Logs Insights output), AKS diagnostic records (`properties.log`)
    /// and Log Analytics AKSAudit rows. Forcing one format rejects records of any other, with a
    /// reason saying what they are. What each wrapper keeps and loses: docs/inputs.md.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = FormatArg::Auto)]
    pub input_format: FormatArg,
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
