//! BigQuery's JSON rows into typed Arrow columns: the result's schema checked against the
//! spec's source columns, each cell parsed from its string form (INT64 and TIMESTAMP arrive
//! as strings; a TIMESTAMP as integer microseconds or as float seconds, parsed as decimal
//! text, never through f64), nulls kept.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, BooleanBuilder, Float32Array, Float32Builder, Float64Array, Float64Builder,
    Int32Array, Int32Builder, Int64Array, Int64Builder, StringBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use featurekit::exit::{Error, Result};
use featurekit::spec::{ColumnType, Source};
use serde::Deserialize;

/// A column of the result's schema, as BigQuery names it.
#[derive(Debug, Clone, Deserialize)]
pub struct BqField {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub mode: Option<String>,
}

/// One row of a result page: `{"f": [{"v": ...}, ...]}`.
#[derive(Debug, Deserialize)]
pub struct Row<'a> {
    #[serde(borrow)]
    pub f: Vec<Cell<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Cell<'a> {
    #[serde(borrow, default)]
    pub v: Scalar<'a>,
}

/// A cell's value: BigQuery writes every scalar as a JSON string, NULL as null; arrays and
/// records (REPEATED and RECORD columns) are refused by the schema check before any row is read.
#[derive(Debug, Default, PartialEq)]
pub enum Scalar<'a> {
    #[default]
    Null,
    Text(Cow<'a, str>),
    Nested,
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a cell value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Owned(v)))
            }
            fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> std::result::Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_string())))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Scalar::Nested)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Scalar::Nested)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// The BigQuery types a spec column type is read from (legacy names first, as results carry).
fn accepts(want: ColumnType) -> &'static [&'static str] {
    match want {
        ColumnType::Int32 | ColumnType::Int64 => &["INTEGER", "INT64"],
        ColumnType::Float32 | ColumnType::Float64 => &["FLOAT", "FLOAT64"],
        ColumnType::String => &["STRING"],
        ColumnType::Bool => &["BOOLEAN", "BOOL"],
        ColumnType::Timestamp => &["TIMESTAMP"],
    }
}

fn arrow_type(t: ColumnType) -> DataType {
    match t {
        ColumnType::Int32 => DataType::Int32,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float32 => DataType::Float32,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::String => DataType::Utf8,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

/// How the result's columns become the output's: the spec's source columns, in its order,
/// each read from its position in the result.
#[derive(Debug, Clone)]
pub struct Layout {
    pub schema: SchemaRef,
    columns: Vec<(String, ColumnType, usize)>,
    /// The position of the timestamp column among the output's.
    ts: usize,
    width: usize,
}

impl Layout {
    /// Checks the result's schema against the spec's source: the same column names, each of
    /// a type the spec's reads from, none repeated or nested. The error names the column and
    /// both types.
    pub fn new(source: &Source, fields: &[BqField]) -> Result<Layout> {
        let mut columns = Vec::new();
        for (name, want) in &source.columns {
            let Some(at) = fields.iter().position(|f| &f.name == name) else {
                let got: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                return Err(Error::data(format!(
                    "the query's result has no column `{name}` ({want:?} in the spec's source); it has {}",
                    got.join(", ")
                )));
            };
            let field = &fields[at];
            let mode = field.mode.as_deref().unwrap_or("NULLABLE");
            if !accepts(*want).contains(&field.kind.as_str()) || mode == "REPEATED" {
                let shown = if mode == "REPEATED" {
                    format!("ARRAY<{}>", field.kind)
                } else {
                    field.kind.clone()
                };
                return Err(Error::data(format!(
                    "column `{name}` of the query's result is {shown}, but the spec's source says {want:?} \
                     (read from {})",
                    accepts(*want).join(" or ")
                )));
            }
            columns.push((name.clone(), *want, at));
        }
        if let Some(extra) = fields.iter().find(|f| source.column_type(&f.name).is_none()) {
            return Err(Error::data(format!(
                "the query's result has column `{}` ({}), which is not among the spec's source columns",
                extra.name, extra.kind
            )));
        }
        let ts = columns
            .iter()
            .position(|(n, _, _)| *n == source.timestamp_column)
            .ok_or_else(|| Error::bug("the spec's timestamp column is not a source column"))?;
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(n, t, _)| Field::new(n, arrow_type(*t), true))
                .collect::<Vec<_>>(),
        ));
        Ok(Layout {
            schema,
            columns,
            ts,
            width: fields.len(),
        })
    }

    /// The event time's column.
    pub fn timestamp_name(&self) -> &str {
        &self.columns[self.ts].0
    }

    /// The names of the output's columns, in its order.
    pub fn names(&self) -> Vec<String> {
        self.columns.iter().map(|(n, _, _)| n.clone()).collect()
    }

    /// A batch of the Storage Read API in the output's schema: its columns by name, each of
    /// the spec's type (an INT64 that does not fit an Int32 is an error, never a null); and
    /// each row's event time.
    pub fn conform(&self, batch: &RecordBatch) -> Result<(RecordBatch, Vec<i64>)> {
        let mut arrays = Vec::with_capacity(self.columns.len());
        for (name, want, _) in &self.columns {
            let column = batch
                .column_by_name(name)
                .ok_or_else(|| Error::data(format!("a record batch of the result has no column `{name}`")))?;
            arrays.push(narrow(name, column, *want)?);
        }
        let out = RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| Error::bug(e.to_string()))?;
        let ts = out.column(self.ts);
        let name = &self.columns[self.ts].0;
        if ts.null_count() > 0 {
            return Err(Error::data(format!(
                "`{name}` is null in {} rows of the result; every event needs a time",
                ts.null_count()
            )));
        }
        let times = ts
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .ok_or_else(|| Error::bug("the timestamp column is not in microseconds"))?
            .values()
            .to_vec();
        Ok((out, times))
    }

    /// The event time of a row, in microseconds; `row` counts from 1 over the whole result.
    pub fn event_time(&self, cells: &[Cell], row: u64) -> Result<i64> {
        self.check_width(cells, row)?;
        let (name, _, at) = &self.columns[self.ts];
        match &cells[*at].v {
            Scalar::Text(s) => parse_timestamp(s).ok_or_else(|| bad_cell(row, name, s, "TIMESTAMP")),
            _ => Err(Error::data(format!(
                "row {row} of the result: `{name}` is null; every event needs a time"
            ))),
        }
    }

    fn check_width(&self, cells: &[Cell], row: u64) -> Result<()> {
        if cells.len() != self.width {
            return Err(Error::data(format!(
                "row {row} of the result has {} cells, its schema {} columns",
                cells.len(),
                self.width
            )));
        }
        Ok(())
    }
}

fn bad_cell(row: u64, column: &str, text: &str, kind: &str) -> Error {
    let text: String = text.chars().take(40).collect();
    Error::data(format!(
        "row {row} of the result, column `{column}`: `{text}` is not a valid {kind}"
    ))
}

/// Rows being gathered for one output file, a builder per column.
pub struct Rows {
    builders: Vec<Builder>,
}

enum Builder {
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Str(StringBuilder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
}

impl Rows {
    pub fn new(layout: &Layout) -> Rows {
        let builders = layout
            .columns
            .iter()
            .map(|(_, t, _)| match t {
                ColumnType::Int32 => Builder::I32(Int32Builder::new()),
                ColumnType::Int64 => Builder::I64(Int64Builder::new()),
                ColumnType::Float32 => Builder::F32(Float32Builder::new()),
                ColumnType::Float64 => Builder::F64(Float64Builder::new()),
                ColumnType::String => Builder::Str(StringBuilder::new()),
                ColumnType::Bool => Builder::Bool(BooleanBuilder::new()),
                ColumnType::Timestamp => Builder::Ts(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
            })
            .collect();
        Rows { builders }
    }

    pub fn len(&self) -> usize {
        self.builders.first().map_or(0, |b| b.as_dyn().len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one row (its width checked by [`Layout::event_time`] first).
    pub fn push(&mut self, layout: &Layout, cells: &[Cell], row: u64) -> Result<()> {
        for (b, (name, _, at)) in self.builders.iter_mut().zip(&layout.columns) {
            let text = match &cells[*at].v {
                Scalar::Null => None,
                Scalar::Text(s) => Some(s.as_ref()),
                Scalar::Nested => {
                    return Err(Error::data(format!(
                        "row {row} of the result, column `{name}`: an array or record, not a scalar"
                    )));
                }
            };
            b.push(text, name, row)?;
        }
        Ok(())
    }

    /// The rows gathered so far as a batch; the builders start empty again.
    pub fn take(&mut self, layout: &Layout) -> Result<RecordBatch> {
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.as_dyn_mut().finish()).collect();
        RecordBatch::try_new(layout.schema.clone(), arrays).map_err(|e| Error::bug(format!("a batch of rows: {e}")))
    }
}

impl Builder {
    fn as_dyn(&self) -> &dyn ArrayBuilder {
        match self {
            Builder::I32(b) => b,
            Builder::I64(b) => b,
            Builder::F32(b) => b,
            Builder::F64(b) => b,
            Builder::Str(b) => b,
            Builder::Bool(b) => b,
            Builder::Ts(b) => b,
        }
    }

    fn as_dyn_mut(&mut self) -> &mut dyn ArrayBuilder {
        match self {
            Builder::I32(b) => b,
            Builder::I64(b) => b,
            Builder::F32(b) => b,
            Builder::F64(b) => b,
            Builder::Str(b) => b,
            Builder::Bool(b) => b,
            Builder::Ts(b) => b,
        }
    }

    fn push(&mut self, text: Option<&str>, name: &str, row: u64) -> Result<()> {
        let Some(s) = text else {
            match self {
                Builder::I32(b) => b.append_null(),
                Builder::I64(b) => b.append_null(),
                Builder::F32(b) => b.append_null(),
                Builder::F64(b) => b.append_null(),
                Builder::Str(b) => b.append_null(),
                Builder::Bool(b) => b.append_null(),
                Builder::Ts(b) => b.append_null(),
            }
            return Ok(());
        };
        let bad = |kind: &str| bad_cell(row, name, s, kind);
        match self {
            Builder::I32(b) => {
                let v: i64 = s.parse().map_err(|_| bad("INT64"))?;
                let v = i32::try_from(v).map_err(|_| {
                    Error::data(format!(
                        "row {row} of the result, column `{name}`: {v} does not fit the spec's Int32"
                    ))
                })?;
                b.append_value(v);
            }
            Builder::I64(b) => b.append_value(s.parse().map_err(|_| bad("INT64"))?),
            Builder::F32(b) => b.append_value(parse_float(s).ok_or_else(|| bad("FLOAT64"))? as f32),
            Builder::F64(b) => b.append_value(parse_float(s).ok_or_else(|| bad("FLOAT64"))?),
            Builder::Str(b) => b.append_value(s),
            Builder::Bool(b) => b.append_value(match s {
                "true" => true,
                "false" => false,
                _ => return Err(bad("BOOL")),
            }),
            Builder::Ts(b) => b.append_value(parse_timestamp(s).ok_or_else(|| bad("TIMESTAMP"))?),
        }
        Ok(())
    }
}

/// A column of a record batch as the spec's type: as it is when BigQuery's Arrow type is the
/// spec's (a TIMESTAMP is microseconds in UTC), an INT64 narrowed to an Int32 with a check, a
/// FLOAT64 rounded to a Float32; anything else names the column and both types. (No general
/// cast: Arrow's cast kernels would be a tenth of the binary.)
fn narrow(name: &str, column: &ArrayRef, want: ColumnType) -> Result<ArrayRef> {
    let target = arrow_type(want);
    let got = column.data_type();
    if *got == target {
        return Ok(column.clone());
    }
    let mismatch = || {
        Error::data(format!(
            "column `{name}` of the result is Arrow {got}, but the spec's source says {want:?}"
        ))
    };
    match (got, want) {
        (DataType::Int64, ColumnType::Int32) => {
            let wide = column.as_any().downcast_ref::<Int64Array>().ok_or_else(mismatch)?;
            let narrow: Int32Array = wide
                .iter()
                .map(|v| v.map(i32::try_from).transpose())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| {
                    Error::data(format!(
                        "column `{name}` of the result: a value does not fit the spec's Int32"
                    ))
                })?;
            Ok(Arc::new(narrow))
        }
        (DataType::Float64, ColumnType::Float32) => {
            let wide = column.as_any().downcast_ref::<Float64Array>().ok_or_else(mismatch)?;
            let narrow: Float32Array = wide.iter().map(|v| v.map(|x| x as f32)).collect();
            Ok(Arc::new(narrow))
        }
        (DataType::Timestamp(TimeUnit::Microsecond, _), ColumnType::Timestamp) => {
            let ts = column
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .ok_or_else(mismatch)?;
            Ok(Arc::new(ts.clone().with_timezone("UTC")))
        }
        _ => Err(mismatch()),
    }
}

/// A FLOAT64 cell: a decimal, or BigQuery's `NaN`, `Infinity`, `-Infinity`.
fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

/// A TIMESTAMP cell in microseconds since the epoch: an integer is microseconds (what
/// `formatOptions.useInt64Timestamp` asks for); a decimal or one in scientific notation
/// (`1.704103200123456E9`) is seconds, scaled exactly by its digits (never through f64) and
/// rounded to the nearest microsecond.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    if !s.contains(['.', 'e', 'E']) {
        return s.parse().ok();
    }
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => (&s[..at], s[at + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty() || !(whole.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = whole
        .bytes()
        .chain(fraction.bytes())
        .try_fold(0i128, |acc, b| acc.checked_mul(10)?.checked_add(i128::from(b - b'0')))?;
    // the value is digits * 10^(exponent - fraction digits) seconds
    let scale = exponent + 6 - i32::try_from(fraction.len()).ok()?;
    let micros = if scale >= 0 {
        digits.checked_mul(10i128.checked_pow(scale.unsigned_abs())?)?
    } else {
        let div = 10i128.checked_pow(scale.unsigned_abs())?;
        (digits + div / 2) / div
    };
    let micros = i64::try_from(micros).ok()?;
    Some(if negative { -micros } else { micros })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_exactly_in_both_forms() {
        assert_eq!(parse_timestamp("1704103200123456"), Some(1_704_103_200_123_456));
        assert_eq!(parse_timestamp("1.704103200123456E9"), Some(1_704_103_200_123_456));
        assert_eq!(parse_timestamp("1704103200.123456"), Some(1_704_103_200_123_456));
        assert_eq!(parse_timestamp("1.7041032E9"), Some(1_704_103_200_000_000));
        // 17 significant digits, as a float's shortest form may have: rounded to the microsecond
        assert_eq!(parse_timestamp("1.7041032001234567E9"), Some(1_704_103_200_123_457));
        assert_eq!(parse_timestamp("-1.5E0"), Some(-1_500_000));
        assert_eq!(parse_timestamp("0.000001"), Some(1));
        assert_eq!(parse_timestamp("1.0e-6"), Some(1));
        // 2^53 + 1 microseconds would not survive an f64 of seconds
        assert_eq!(parse_timestamp("9007199254.740993"), Some(9_007_199_254_740_993));
        for bad in [
            "",
            ".",
            "abc",
            "1.2.3",
            "1e",
            "1E99999",
            "1,5",
            "9999999999999999999999",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn storage_columns_are_narrowed_to_the_spec_with_a_check() {
        let wide: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(i64::from(i32::MAX))]));
        let narrow32 = narrow("n", &wide, ColumnType::Int32).unwrap();
        assert_eq!(narrow32.data_type(), &DataType::Int32);
        assert!(narrow32.is_null(1));
        let over: ArrayRef = Arc::new(Int64Array::from(vec![i64::from(i32::MAX) + 1]));
        let e = narrow("n", &over, ColumnType::Int32).unwrap_err();
        assert!(e.to_string().contains("does not fit the spec's Int32"), "{e}");
        let ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![5]));
        let utc = narrow("t", &ts, ColumnType::Timestamp).unwrap();
        assert_eq!(utc.data_type(), &arrow_type(ColumnType::Timestamp));
        let e = narrow("t", &wide, ColumnType::String).unwrap_err();
        assert!(
            e.to_string()
                .contains("column `t` of the result is Arrow Int64, but the spec's source says String"),
            "{e}"
        );
        assert_eq!(narrow("n", &wide, ColumnType::Int64).unwrap().len(), 3);
    }

    #[test]
    fn floats_take_bigquerys_special_values() {
        assert_eq!(parse_float("1.5"), Some(1.5));
        assert!(parse_float("NaN").unwrap().is_nan());
        assert_eq!(parse_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float("inf"), None);
        assert_eq!(parse_float("1_0"), None);
    }

    #[test]
    fn cells_keep_strings_borrowed_and_nulls_null() {
        let row: Row = serde_json::from_str(r#"{"f":[{"v":"1"},{"v":null},{"v":[{"v":"x"}]},{}]}"#).unwrap();
        assert_eq!(row.f[0].v, Scalar::Text(Cow::Borrowed("1")));
        assert!(matches!(row.f[0].v, Scalar::Text(Cow::Borrowed(_))));
        assert_eq!(row.f[1].v, Scalar::Null);
        assert_eq!(row.f[2].v, Scalar::Nested);
        assert_eq!(row.f[3].v, Scalar::Null);
    }
}
