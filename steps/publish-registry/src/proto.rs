//! The parts of Feast 0.67's registry protobuf (`feast.core.Registry`) that publish-registry
//! writes, declared from the field numbers of Feast's descriptors. Objects publish-registry
//! does not own are never decoded into these types: they are kept as raw bytes (see
//! [`crate::merge`]), so fields declared nowhere here survive untouched. Inside the objects it
//! owns, [`shape`] says which fields these types declare, so that the merge puts back every
//! other field, at every depth.

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

/// The fields of a message publish-registry owns: what its type here declares. Every other
/// field of the message, as the registry had it, is kept when the message is rewritten.
pub struct Shape(pub &'static [Owned]);

pub enum Owned {
    /// A scalar, string, enum, map or packed field: replaced as a whole.
    Value(u32),
    /// A message field (singular or repeated): replaced, but the fields its shape does not own
    /// are kept from the registry's message of the same number and, when `paired_by` is set,
    /// the same bytes in that field (a feature's name, an interval's start).
    Message {
        number: u32,
        shape: &'static Shape,
        paired_by: Option<u32>,
    },
    /// Another member of a oneof one of our fields belongs to: owned with it, since a parser
    /// keeps only the member it reads last.
    Oneof(u32),
}

impl Shape {
    pub fn owns(&self, number: u32) -> bool {
        self.0.iter().any(|f| match *f {
            Owned::Value(n) | Owned::Oneof(n) | Owned::Message { number: n, .. } => n == number,
        })
    }

    /// The shape of field `number` and what pairs its occurrences, when it is a message.
    pub fn message(&self, number: u32) -> Option<(&'static Shape, Option<u32>)> {
        self.0.iter().find_map(|f| match *f {
            Owned::Message {
                number: n,
                shape,
                paired_by,
            } if n == number => Some((shape, paired_by)),
            _ => None,
        })
    }
}

/// The shape of each message above (a unit test checks them against the types).
pub mod shape {
    use super::Owned::{Message, Oneof, Value};
    use super::{Owned, Shape};

    const fn one(number: u32, shape: &'static Shape) -> Owned {
        Message {
            number,
            shape,
            paired_by: None,
        }
    }

    const fn each_by(number: u32, shape: &'static Shape, key: u32) -> Owned {
        Message {
            number,
            shape,
            paired_by: Some(key),
        }
    }

    /// `google.protobuf.Timestamp` and `Duration`.
    pub const SECONDS_NANOS: Shape = Shape(&[Value(1), Value(2)]);
    pub const META: Shape = Shape(&[one(1, &SECONDS_NANOS), one(2, &SECONDS_NANOS)]);
    pub const ENTITY_SPEC: Shape = Shape(&[Value(1), Value(2), Value(3), Value(4), Value(8), Value(9), Value(10)]);
    pub const ENTITY: Shape = Shape(&[one(1, &ENTITY_SPEC), one(2, &META)]);
    pub const FILE_OPTIONS: Shape = Shape(&[Value(2), Value(3)]);
    pub const SOURCE_META: Shape = Shape(&[one(3, &SECONDS_NANOS), one(4, &SECONDS_NANOS)]);
    pub const DATA_SOURCE: Shape = Shape(&[
        Value(1),
        Value(3),
        Value(5),
        one(11, &FILE_OPTIONS),
        Value(17),
        Value(20),
        Value(21),
        Value(23),
        Value(24),
        Value(25),
        one(50, &SOURCE_META),
        // the rest of the `options` oneof file_options (11) belongs to
        Oneof(12),
        Oneof(13),
        Oneof(14),
        Oneof(15),
        Oneof(16),
        Oneof(18),
        Oneof(19),
        Oneof(22),
        Oneof(27),
        Oneof(30),
        Oneof(35),
    ]);
    pub const FEATURE: Shape = Shape(&[Value(1), Value(2), Value(3), Value(4)]);
    /// A feature and an entity column are paired by name (1), the batch source by name (20):
    /// a source of another name does not inherit the old one's fields.
    pub const FEATURE_VIEW_SPEC: Shape = Shape(&[
        Value(1),
        Value(2),
        Value(3),
        each_by(4, &FEATURE, 1),
        Value(5),
        one(6, &SECONDS_NANOS),
        each_by(7, &DATA_SOURCE, 20),
        Value(8),
        Value(10),
        Value(11),
        each_by(12, &FEATURE, 1),
        Value(18),
    ]);
    pub const INTERVAL: Shape = Shape(&[one(1, &SECONDS_NANOS), one(2, &SECONDS_NANOS)]);
    /// An interval is paired by its start (1).
    pub const FEATURE_VIEW_META: Shape = Shape(&[
        one(1, &SECONDS_NANOS),
        one(2, &SECONDS_NANOS),
        each_by(3, &INTERVAL, 1),
        Value(4),
        Value(5),
        Value(6),
    ]);
    pub const FEATURE_VIEW: Shape = Shape(&[one(1, &FEATURE_VIEW_SPEC), one(2, &FEATURE_VIEW_META)]);
}
