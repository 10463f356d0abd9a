//! The parts of Feast 0.67's registry protobuf (`feast.core.Registry`) that publish-registry
//! writes, declared from the field numbers of Feast's descriptors. Objects publish-registry
//! does not own are never decoded into these types: they are kept as raw bytes (see
//! [`crate::merge`]), so fields declared nowhere here survive untouched.

use std::collections::BTreeMap;

pub use featurekit::feast::Timestamp;

/// `feast.core.Registry` fields, by number.
pub mod registry {
    pub const ENTITIES: u32 = 1;
    pub const REGISTRY_SCHEMA_VERSION: u32 = 3;
    pub const VERSION_ID: u32 = 4;
    pub const LAST_UPDATED: u32 = 5;
    pub const FEATURE_VIEWS: u32 = 6;
    pub const DATA_SOURCES: u32 = 12;
    pub const PROJECTS: u32 = 17;
}

/// `feast.core.FeatureViewState`.
pub mod state {
    pub const AVAILABLE_ONLINE: i32 = 4;
}

/// `feast.core.DataSource.SourceType.BATCH_FILE`.
pub const BATCH_FILE: i32 = 1;
pub const FILE_SOURCE_CLASS: &str = "feast.infra.offline_stores.file_source.FileSource";

#[derive(Clone, PartialEq, prost::Message)]
pub struct Duration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Entity {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<EntitySpec>,
    #[prost(message, optional, tag = "2")]
    pub meta: Option<Meta>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EntitySpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "2")]
    pub value_type: i32,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub join_key: String,
    #[prost(btree_map = "string, string", tag = "8")]
    pub tags: BTreeMap<String, String>,
    #[prost(string, tag = "9")]
    pub project: String,
    #[prost(string, tag = "10")]
    pub owner: String,
}

/// `EntityMeta` and `ProjectMeta`: created (1) and last updated (2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Meta {
    #[prost(message, optional, tag = "1")]
    pub created_timestamp: Option<Timestamp>,
    #[prost(message, optional, tag = "2")]
    pub last_updated_timestamp: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureView {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<FeatureViewSpec>,
    #[prost(message, optional, tag = "2")]
    pub meta: Option<FeatureViewMeta>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureViewSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
    #[prost(string, repeated, tag = "3")]
    pub entities: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub features: Vec<FeatureSpec>,
    #[prost(btree_map = "string, string", tag = "5")]
    pub tags: BTreeMap<String, String>,
    #[prost(message, optional, tag = "6")]
    pub ttl: Option<Duration>,
    #[prost(message, optional, tag = "7")]
    pub batch_source: Option<DataSource>,
    #[prost(bool, tag = "8")]
    pub online: bool,
    #[prost(string, tag = "10")]
    pub description: String,
    #[prost(string, tag = "11")]
    pub owner: String,
    #[prost(message, repeated, tag = "12")]
    pub entity_columns: Vec<FeatureSpec>,
    #[prost(string, tag = "18")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureViewMeta {
    #[prost(message, optional, tag = "1")]
    pub created_timestamp: Option<Timestamp>,
    #[prost(message, optional, tag = "2")]
    pub last_updated_timestamp: Option<Timestamp>,
    #[prost(message, repeated, tag = "3")]
    pub materialization_intervals: Vec<MaterializationInterval>,
    #[prost(int32, tag = "4")]
    pub current_version_number: i32,
    #[prost(string, tag = "5")]
    pub version_id: String,
    #[prost(int32, tag = "6")]
    pub state: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MaterializationInterval {
    #[prost(message, optional, tag = "1")]
    pub start_time: Option<Timestamp>,
    #[prost(message, optional, tag = "2")]
    pub end_time: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "2")]
    pub value_type: i32,
    #[prost(btree_map = "string, string", tag = "3")]
    pub tags: BTreeMap<String, String>,
    #[prost(string, tag = "4")]
    pub description: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DataSource {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "3")]
    pub timestamp_field: String,
    #[prost(string, tag = "5")]
    pub created_timestamp_column: String,
    #[prost(message, optional, tag = "11")]
    pub file_options: Option<FileOptions>,
    #[prost(string, tag = "17")]
    pub data_source_class_type: String,
    #[prost(string, tag = "20")]
    pub name: String,
    #[prost(string, tag = "21")]
    pub project: String,
    #[prost(string, tag = "23")]
    pub description: String,
    #[prost(btree_map = "string, string", tag = "24")]
    pub tags: BTreeMap<String, String>,
    #[prost(string, tag = "25")]
    pub owner: String,
    #[prost(message, optional, tag = "50")]
    pub meta: Option<SourceMeta>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FileOptions {
    #[prost(string, tag = "2")]
    pub uri: String,
    #[prost(string, tag = "3")]
    pub s3_endpoint_override: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SourceMeta {
    #[prost(message, optional, tag = "3")]
    pub created_timestamp: Option<Timestamp>,
    #[prost(message, optional, tag = "4")]
    pub last_updated_timestamp: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Project {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<ProjectSpec>,
    #[prost(message, optional, tag = "2")]
    pub meta: Option<Meta>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ProjectSpec {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// The head of a registry, to check that bytes are one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RegistryHead {
    #[prost(string, tag = "3")]
    pub registry_schema_version: String,
    #[prost(string, tag = "4")]
    pub version_id: String,
    #[prost(message, optional, tag = "5")]
    pub last_updated: Option<Timestamp>,
}
