//! Feast 0.67's online-store encodings: the bytes its Redis store reads and writes.
//!
//! - a Redis key is the entity key serialized with `entity_key_serialization_version`
//!   3 (or 2) followed by the project name ([`EntityKeyCodec`]);
//! - a feature's hash field is murmur3 x86_32 (seed 0) of `"<view>:<feature>"`, as 4
//!   little-endian bytes ([`feature_field`]); the view's timestamp field is `_ts:<view>`;
//! - a feature value is a serialized `feast.types.Value` ([`Value`]) of the view's declared
//!   type, with an empty byte string for null and NaN; the timestamp is a serialized
//!   `google.protobuf.Timestamp` ([`Timestamp`]).
//!
//! The messages below are written from the field numbers of Feast's descriptors; only the
//! members we write, and the scalar ones a foreign writer may have stored instead, are
//! declared (prost skips unknown fields when decoding: a member not declared reads as null).
//! Reading goes the other way: [`EntityKeyCodec::decode_values`], [`Value::decode`] and
//! [`Timestamp::decode_bytes`].

use prost::Message;

use crate::spec::{Dtype, ValueType};

/// `feast.types.ValueType.Enum` numbers of the types an entity key may have.
pub mod value_type {
    pub const STRING: u32 = 2;
    pub const INT64: u32 = 4;
}

/// `feast.types.Value`: the members featurekit writes (string, int64, double, float) and the
/// other scalars, so that a value of another type is read as what it is.
#[derive(Clone, PartialEq, Message)]
pub struct Value {
    #[prost(oneof = "Val", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
    pub val: Option<Val>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Val {
    #[prost(bytes, tag = "1")]
    BytesVal(Vec<u8>),
    #[prost(string, tag = "2")]
    StringVal(String),
    #[prost(int32, tag = "3")]
    Int32Val(i32),
    #[prost(int64, tag = "4")]
    Int64Val(i64),
    #[prost(double, tag = "5")]
    DoubleVal(f64),
    #[prost(float, tag = "6")]
    FloatVal(f32),
    #[prost(bool, tag = "7")]
    BoolVal(bool),
    #[prost(int64, tag = "8")]
    UnixTimestampVal(i64),
}

impl Val {
    /// Equal member and equal value, floats bit for bit (`-0.0` is not `0.0`).
    pub fn same(&self, other: &Val) -> bool {
        match (self, other) {
            (Val::FloatVal(a), Val::FloatVal(b)) => a.to_bits() == b.to_bits(),
            (Val::DoubleVal(a), Val::DoubleVal(b)) => a.to_bits() == b.to_bits(),
            (a, b) => a == b,
        }
    }

    /// The protobuf member's name, as Feast's Python SDK calls it (`WhichOneof("val")`).
    pub fn member(&self) -> &'static str {
        match self {
            Val::BytesVal(_) => "bytes_val",
            Val::StringVal(_) => "string_val",
            Val::Int32Val(_) => "int32_val",
            Val::Int64Val(_) => "int64_val",
            Val::DoubleVal(_) => "double_val",
            Val::FloatVal(_) => "float_val",
            Val::BoolVal(_) => "bool_val",
            Val::UnixTimestampVal(_) => "unix_timestamp_val",
        }
    }
}

impl std::fmt::Display for Val {
    /// The value and its member: `12.5 (float_val)`; floats as their shortest exact text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Val::BytesVal(b) => write!(f, "{} bytes", b.len())?,
            Val::StringVal(s) => write!(f, "{s:?}")?,
            Val::Int32Val(v) => write!(f, "{v}")?,
            Val::Int64Val(v) => write!(f, "{v}")?,
            Val::DoubleVal(v) => write!(f, "{v:?}")?,
            Val::FloatVal(v) => write!(f, "{v:?}")?,
            Val::BoolVal(v) => write!(f, "{v}")?,
            Val::UnixTimestampVal(v) => write!(f, "{v}")?,
        }
        write!(f, " ({})", self.member())
    }
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    pub fn from_micros(us: i64) -> Timestamp {
        Timestamp {
            seconds: us.div_euclid(1_000_000),
            nanos: (us.rem_euclid(1_000_000) * 1_000) as i32,
        }
    }

    /// Nanoseconds since the epoch (saturating), the unit Feast compares `_ts` in.
    pub fn nanos_since_epoch(self) -> i128 {
        self.seconds as i128 * 1_000_000_000 + self.nanos as i128
    }

    /// Decodes a stored `_ts` value; empty bytes are the epoch, as Feast reads them.
    pub fn decode_bytes(bytes: &[u8]) -> Option<Timestamp> {
        Timestamp::decode(bytes).ok()
    }
}

/// The hash field of a feature: murmur3 x86_32 (seed 0) of `"<view>:<feature>"`, little-endian.
pub fn feature_field(view: &str, feature: &str) -> [u8; 4] {
    let name = format!("{view}:{feature}");
    let hash = murmur3::murmur3_32(&mut std::io::Cursor::new(name.as_bytes()), 0).expect("reading memory cannot fail");
    hash.to_le_bytes()
}

/// The hash field holding a view's event timestamp.
pub fn timestamp_field(view: &str) -> Vec<u8> {
    format!("_ts:{view}").into_bytes()
}

/// The `feast.types.Value` member Feast stores for an integer column's value: the member
/// comes from the declared dtype; `None` (null) is the empty Value.
pub fn int_value(dtype: Dtype, v: Option<i64>) -> Option<Val> {
    let v = v?;
    Some(match dtype {
        Dtype::Int64 => Val::Int64Val(v),
        Dtype::Float64 => Val::DoubleVal(v as f64),
        Dtype::Float32 => Val::FloatVal(v as f32),
    })
}

/// As [`int_value`] for a float column; NaN is stored as null, as Feast does.
pub fn float_value(dtype: Dtype, v: Option<f64>) -> Option<Val> {
    let v = v.filter(|v| !v.is_nan())?;
    Some(match dtype {
        Dtype::Int64 => Val::Int64Val(v as i64),
        Dtype::Float64 => Val::DoubleVal(v),
        Dtype::Float32 => Val::FloatVal(v as f32),
    })
}

/// Appends the serialized `feast.types.Value` of a feature ([`int_value`]); null appends
/// nothing, the empty Value.
pub fn encode_int(dtype: Dtype, v: Option<i64>, out: &mut Vec<u8>) {
    encode(int_value(dtype, v), out);
}

/// As [`encode_int`] for a float column ([`float_value`]).
pub fn encode_float(dtype: Dtype, v: Option<f64>, out: &mut Vec<u8>) {
    encode(float_value(dtype, v), out);
}

fn encode(val: Option<Val>, out: &mut Vec<u8>) {
    if val.is_some() {
        Value { val }.encode(out).expect("a Vec grows");
    }
}

/// An entity key value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyValue<'a> {
    Int64(i64),
    String(&'a str),
}

/// `entity_key_serialization_version`: 3 is Feast's default, 2 is deprecated but readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyVersion {
    V2,
    V3,
}

/// Serializes entity keys for one set of join keys, as Feast's `serialize_entity_key`:
/// names and values in the join keys' sorted order.
#[derive(Debug, Clone)]
pub struct EntityKeyCodec {
    version: KeyVersion,
    /// Position in the caller's order of each join key, in sorted order.
    order: Vec<usize>,
    /// The serialized names (and count, in v3): the same for every key.
    prefix: Vec<u8>,
    types: Vec<ValueType>,
}

impl EntityKeyCodec {
    /// `join_keys` in the caller's order, with their declared types.
    pub fn new(version: KeyVersion, join_keys: &[(&str, ValueType)]) -> EntityKeyCodec {
        let mut order: Vec<usize> = (0..join_keys.len()).collect();
        order.sort_by(|&a, &b| join_keys[a].0.as_bytes().cmp(join_keys[b].0.as_bytes()));
        let mut prefix = Vec::new();
        if version == KeyVersion::V3 {
            prefix.extend_from_slice(&(join_keys.len() as u32).to_le_bytes());
        }
        for &i in &order {
            let name = join_keys[i].0.as_bytes();
            prefix.extend_from_slice(&value_type::STRING.to_le_bytes());
            if version == KeyVersion::V3 {
                prefix.extend_from_slice(&(name.len() as u32).to_le_bytes());
            }
            prefix.extend_from_slice(name);
        }
        EntityKeyCodec {
            version,
            order,
            prefix,
            types: join_keys.iter().map(|k| k.1).collect(),
        }
    }

    /// The bytes every key of these join keys starts with.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Appends the value part of a key (`values` in the caller's join-key order): with
    /// [`prefix`](Self::prefix) before it and the project after it, a Redis key.
    pub fn encode_values(&self, values: &[KeyValue<'_>], out: &mut Vec<u8>) {
        for &i in &self.order {
            // the declared type decides the encoding, as in Feast
            match (self.types[i], values[i]) {
                (ValueType::Int64, KeyValue::Int64(v)) => {
                    out.extend_from_slice(&value_type::INT64.to_le_bytes());
                    out.extend_from_slice(&8u32.to_le_bytes());
                    out.extend_from_slice(&v.to_le_bytes());
                }
                (ValueType::String, KeyValue::String(s)) => {
                    out.extend_from_slice(&value_type::STRING.to_le_bytes());
                    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
                (ValueType::Int64, KeyValue::String(_)) | (ValueType::String, KeyValue::Int64(_)) => {
                    panic!("entity key value does not match its declared type (checked on input)")
                }
            }
        }
    }

    /// Reads back what [`encode_values`](Self::encode_values) wrote: the values in the
    /// caller's join-key order, or `None` when the bytes are not such a value part.
    pub fn decode_values<'a>(&self, mut bytes: &'a [u8]) -> Option<Vec<KeyValue<'a>>> {
        let mut sorted = Vec::with_capacity(self.order.len());
        let u32_at = |b: &mut &'a [u8]| -> Option<u32> {
            let (head, rest) = b.split_first_chunk::<4>()?;
            *b = rest;
            Some(u32::from_le_bytes(*head))
        };
        for _ in &self.order {
            let (kind, len) = (u32_at(&mut bytes)?, u32_at(&mut bytes)? as usize);
            let payload = bytes.get(..len)?;
            bytes = &bytes[len..];
            sorted.push(match kind {
                value_type::INT64 => KeyValue::Int64(i64::from_le_bytes(payload.try_into().ok()?)),
                value_type::STRING => KeyValue::String(std::str::from_utf8(payload).ok()?),
                _ => return None,
            });
        }
        if !bytes.is_empty() {
            return None;
        }
        let mut values = sorted.clone();
        for (&caller, v) in self.order.iter().zip(sorted) {
            values[caller] = v;
        }
        Some(values)
    }

    pub fn version(&self) -> KeyVersion {
        self.version
    }
}

impl std::fmt::Display for KeyValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyValue::Int64(v) => write!(f, "{v}"),
            KeyValue::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// The whole Redis key of one entity: prefix, values, project.
pub fn redis_key(codec: &EntityKeyCodec, values: &[KeyValue<'_>], project: &str) -> Vec<u8> {
    let mut key = codec.prefix().to_vec();
    codec.encode_values(values, &mut key);
    key.extend_from_slice(project.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn keys_match_feasts_vectors() {
        let v3 = EntityKeyCodec::new(KeyVersion::V3, &[("user_id", ValueType::Int64)]);
        assert_eq!(
            hex(&redis_key(&v3, &[KeyValue::Int64(1001)], "")),
            "010000000200000007000000757365725f69640400000008000000e903000000000000"
        );
        let v2 = EntityKeyCodec::new(KeyVersion::V2, &[("user_id", ValueType::Int64)]);
        assert_eq!(
            hex(&redis_key(&v2, &[KeyValue::Int64(1001)], "")),
            "02000000757365725f69640400000008000000e903000000000000"
        );
        assert_eq!(
            hex(&redis_key(&v3, &[KeyValue::Int64(1001)], "fraud_detection")),
            "010000000200000007000000757365725f69640400000008000000e90300000000000066726175645f646574656374696f6e"
        );
    }

    #[test]
    fn several_join_keys_are_sorted_by_name() {
        let codec = EntityKeyCodec::new(
            KeyVersion::V3,
            &[("user_id", ValueType::Int64), ("merchant_id", ValueType::String)],
        );
        let key = redis_key(&codec, &[KeyValue::Int64(1), KeyValue::String("m")], "");
        let mut want = vec![];
        want.extend(2u32.to_le_bytes());
        for name in ["merchant_id", "user_id"] {
            want.extend(2u32.to_le_bytes());
            want.extend((name.len() as u32).to_le_bytes());
            want.extend(name.as_bytes());
        }
        want.extend(2u32.to_le_bytes());
        want.extend(1u32.to_le_bytes());
        want.extend(b"m");
        want.extend(4u32.to_le_bytes());
        want.extend(8u32.to_le_bytes());
        want.extend(1i64.to_le_bytes());
        assert_eq!(key, want);
        let mut values = vec![];
        codec.encode_values(&[KeyValue::Int64(-7), KeyValue::String("m€")], &mut values);
        assert_eq!(
            codec.decode_values(&values),
            Some(vec![KeyValue::Int64(-7), KeyValue::String("m€")]),
            "read back in the caller's order"
        );
        assert_eq!(codec.decode_values(&values[..values.len() - 1]), None);
        values.push(0);
        assert_eq!(codec.decode_values(&values), None, "trailing bytes");
    }

    #[test]
    fn values_read_back_as_their_member() {
        let read = |hex_value: &str| {
            let bytes: Vec<u8> = (0..hex_value.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex_value[i..i + 2], 16).unwrap())
                .collect();
            Value::decode(&bytes[..]).unwrap().val
        };
        assert_eq!(read("3500004841"), Some(Val::FloatVal(12.5)));
        assert_eq!(read("290000000000002940"), Some(Val::DoubleVal(12.5)));
        assert_eq!(read("2003"), Some(Val::Int64Val(3)));
        assert_eq!(read("1805"), Some(Val::Int32Val(5)));
        assert_eq!(read("3801"), Some(Val::BoolVal(true)));
        assert_eq!(read(""), None, "the empty Value is null");
        assert_eq!(read("980100"), None, "null_val reads as null, as in Feast");
        let f = Val::FloatVal(12.5);
        assert!(f.same(&Val::FloatVal(12.5)));
        assert!(!f.same(&Val::DoubleVal(12.5)), "the member counts");
        assert!(!Val::DoubleVal(0.0).same(&Val::DoubleVal(-0.0)), "bit for bit");
        assert_eq!(f.to_string(), "12.5 (float_val)");
        assert_eq!(float_value(Dtype::Float32, Some(0.1)), Some(Val::FloatVal(0.1f32)));
        assert_eq!(float_value(Dtype::Float64, Some(f64::NAN)), None);
    }

    #[test]
    fn fields_match_feasts_hashes() {
        let view = "user_transaction_features";
        for (feature, want) in [
            ("transaction_count_1h", "48ebbaa1"),
            ("transaction_count_24h", "559c8b59"),
            ("avg_transaction_amount_7d", "dc18cbbf"),
            ("avg_transaction_amount_30d", "81290f41"),
            ("max_transaction_amount_7d", "c5a97b00"),
            ("distinct_merchant_count_7d", "38dfa013"),
        ] {
            assert_eq!(hex(&feature_field(view, feature)), want, "{feature}");
        }
    }

    #[test]
    fn values_match_feasts_bytes() {
        let enc_i = |d, v| {
            let mut out = vec![];
            encode_int(d, v, &mut out);
            hex(&out)
        };
        let enc_f = |d, v| {
            let mut out = vec![];
            encode_float(d, v, &mut out);
            hex(&out)
        };
        assert_eq!(enc_i(Dtype::Int64, Some(3)), "2003");
        assert_eq!(enc_i(Dtype::Int64, Some(-9)), "20f7ffffffffffffffff01");
        assert_eq!(enc_i(Dtype::Int64, Some(0)), "2000");
        assert_eq!(enc_i(Dtype::Int64, None), "");
        assert_eq!(enc_f(Dtype::Float32, Some(12.5)), "3500004841");
        assert_eq!(enc_f(Dtype::Float64, Some(12.5)), "290000000000002940");
        assert_eq!(enc_f(Dtype::Float32, Some(f32::MAX as f64)), "35ffff7f7f");
        assert_eq!(enc_f(Dtype::Float64, Some(f64::NAN)), "");
        assert_eq!(enc_f(Dtype::Float64, None), "");
        assert_eq!(enc_f(Dtype::Float64, Some(0.0)), "290000000000000000");
    }

    #[test]
    fn timestamps_match_feasts_bytes() {
        // 2025-01-03T10:00:00.123456Z and a whole second
        let us = 1_735_898_400_123_456;
        assert_eq!(
            hex(&Timestamp::from_micros(us).encode_to_vec()),
            "08a0eadebb06108094ef3a"
        );
        assert_eq!(
            hex(&Timestamp::from_micros(1_735_815_600_000_000).encode_to_vec()),
            "08b0e3d9bb06"
        );
        let back = Timestamp::decode_bytes(&Timestamp::from_micros(us).encode_to_vec()).unwrap();
        assert_eq!(back, Timestamp::from_micros(us));
        assert_eq!(Timestamp::decode_bytes(b""), Some(Timestamp::default()));
        assert_eq!(
            Timestamp::from_micros(-1),
            Timestamp {
                seconds: -1,
                nanos: 999_999_000
            }
        );
    }
}
