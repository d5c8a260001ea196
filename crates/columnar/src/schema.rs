//! The Arrow/Parquet schema of audit events (documented for users in docs/schema.md).

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// The value of the `kaq.schema_version` key in every Parquet file kaq writes.
pub const SCHEMA_VERSION: &str = "1";
/// Parquet key-value metadata key naming the schema version.
pub const SCHEMA_VERSION_KEY: &str = "kaq.schema_version";
/// The key in the `unmapped` column listing typed fields that were absent from the input even
/// though a column holds a value for them (`time` derived from an older timestamp).
pub const ABSENT_KEY: &str = "kaq:absent";

/// How a column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    /// Timestamp, microseconds, UTC.
    Time,
    I32,
    Bool,
    /// Plain UTF-8 string.
    Str,
    /// A string with few distinct values: UTF-8 in Arrow, dictionary-encoded in Parquet. (Arrow
    /// dictionaries cost more to build than they save when writing: a reader that wants them asks
    /// for them with a schema hint.)
    Dict,
    /// List of strings.
    List,
    /// Map of string to string.
    Map,
}

/// Every column, in file order: (name, storage).
pub const COLUMNS: &[(&str, Col)] = &[
    ("time", Col::Time),
    ("stage_time", Col::Time),
    ("id", Col::Str),
    ("stage", Col::Dict),
    ("level", Col::Dict),
    ("verb", Col::Dict),
    ("uri", Col::Str),
    ("user", Col::Dict),
    ("uid", Col::Str),
    ("groups", Col::List),
    ("user_extra", Col::Str),
    ("as", Col::Str),
    ("as_uid", Col::Str),
    ("as_groups", Col::List),
    ("as_extra", Col::Str),
    ("ip", Col::List),
    ("ua", Col::Dict),
    ("resource", Col::Dict),
    ("subresource", Col::Dict),
    ("ns", Col::Dict),
    ("name", Col::Str),
    ("apigroup", Col::Dict),
    ("apiversion", Col::Dict),
    ("object_uid", Col::Str),
    ("resource_version", Col::Str),
    ("code", Col::I32),
    ("status", Col::Dict),
    ("reason", Col::Dict),
    ("message", Col::Str),
    ("status_metadata", Col::Dict),
    ("status_details", Col::Str),
    ("decision", Col::Dict),
    ("authz_reason", Col::Str),
    ("annotations", Col::Map),
    ("request", Col::Str),
    ("response", Col::Str),
    ("user_kind", Col::Dict),
    ("exec_command", Col::Str),
    ("privileged", Col::Bool),
    ("host_network", Col::Bool),
    ("host_pid", Col::Bool),
    ("host_ipc", Col::Bool),
    ("host_paths", Col::List),
    ("event_kind", Col::Dict),
    ("event_version", Col::Dict),
    ("unmapped", Col::Str),
];

/// The Arrow type of a storage kind.
pub fn data_type(c: Col) -> DataType {
    match c {
        Col::Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Col::I32 => DataType::Int32,
        Col::Bool => DataType::Boolean,
        Col::Str | Col::Dict => DataType::Utf8,
        Col::List => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        Col::Map => DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("keys", DataType::Utf8, false),
                    Field::new("values", DataType::Utf8, true),
                ])),
                false,
            )),
            false,
        ),
    }
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(COLUMNS.iter().map(|(name, c)| Field::new(*name, data_type(*c), true)).collect::<Vec<_>>()))
});

/// The schema of every batch and file.
pub fn audit_schema() -> SchemaRef {
    SCHEMA.clone()
}

/// The position of a column in [`audit_schema`].
pub fn column_index(name: &str) -> Option<usize> {
    COLUMNS.iter().position(|(n, _)| *n == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalogue and the file schema must agree: every stored field has its column.
    #[test]
    fn every_catalogue_column_exists() {
        for f in kaq_schema::FIELDS {
            if let Some(col) = f.column {
                assert!(column_index(col).is_some(), "field {} names missing column {col}", f.name);
            }
        }
    }
}
