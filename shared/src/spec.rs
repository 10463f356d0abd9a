//! The feature spec: `features.yaml`, the single source of truth for every step.
//!
//! [`Spec::load`] parses the YAML, checks it, and returns plain types (no YAML
//! positions) for the steps to use. Every rejection names the file, line and column.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

/// A spec that could not be loaded: where, and why.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{file}: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
}

/// Value type of an entity's join key, as Feast names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ValueType {
    Int64,
    String,
}

/// Type of a raw source column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum ColumnType {
    Int32,
    Int64,
    Float32,
    Float64,
    String,
    Bool,
    Timestamp,
}

impl ColumnType {
    fn is_numeric(self) -> bool {
        matches!(
            self,
            ColumnType::Int32 | ColumnType::Int64 | ColumnType::Float32 | ColumnType::Float64
        )
    }
    fn is_float(self) -> bool {
        matches!(self, ColumnType::Float32 | ColumnType::Float64)
    }
}

/// Output type of a feature column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Dtype {
    Int64,
    Float32,
    Float64,
}

/// How a window's events are reduced to one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    CountDistinct,
}

impl Aggregation {
    pub fn name(self) -> &'static str {
        match self {
            Aggregation::Count => "count",
            Aggregation::Sum => "sum",
            Aggregation::Mean => "mean",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::CountDistinct => "count_distinct",
        }
    }
}

/// A positive duration written as `<n><unit>` parts: `90s`, `15m`, `1h`, `24h`, `7d`, `2w`, `1d12h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window(Duration);

impl Window {
    pub fn duration(self) -> Duration {
        self.0
    }
    pub fn micros(self) -> i64 {
        self.0.as_micros() as i64
    }
}

/// The longest window or TTL, 100 years: a timestamp minus or plus it stays far inside the
/// i64 microseconds the steps compute in.
const MAX_WINDOW_SECS: u64 = 36_500 * 86_400;

impl FromStr for Window {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid duration `{s}`: expected <n><unit> parts with unit s, m, h, d or w, like 1h, 7d or 1d12h")
        };
        let mut total: u64 = 0;
        let mut digits = String::new();
        let mut any = false;
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3_600,
                'd' => 86_400,
                'w' => 604_800,
                _ => return Err(bad()),
            };
            let n: u64 = digits.parse().map_err(|_| bad())?;
            total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
            digits.clear();
            any = true;
        }
        if !any || !digits.is_empty() {
            return Err(bad());
        }
        if total == 0 {
            return Err(format!("duration `{s}` must be positive"));
        }
        if total > MAX_WINDOW_SECS {
            return Err(format!(
                "duration `{s}` is longer than 100 years ({}d)",
                MAX_WINDOW_SECS / 86_400
            ));
        }
        Ok(Window(Duration::from_secs(total)))
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Window {
    /// The shortest exact form: `30d`, `24h` shows as `1d`, `90m` as `1h30m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// ---- the file as written -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    project: Spanned<String>,
    entities: Vec<RawEntity>,
    source: RawSource,
    feature_views: Vec<RawView>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntity {
    name: Spanned<String>,
    join_key: Spanned<String>,
    value_type: Spanned<ValueType>,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: String,
    timestamp_column: Spanned<String>,
    entity_column: Spanned<String>,
    columns: BTreeMap<String, Spanned<ColumnType>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawView {
    name: Spanned<String>,
    entities: Vec<Spanned<String>>,
    ttl: Window,
    #[serde(default = "yes")]
    online: bool,
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    features: Vec<RawFeature>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeature {
    name: Spanned<String>,
    aggregation: Spanned<Aggregation>,
    #[serde(default)]
    column: Option<Spanned<String>>,
    window: Window,
    dtype: Spanned<Dtype>,
    #[serde(default)]
    empty: Option<Spanned<f64>>,
    #[serde(default)]
    description: String,
}

// ---- the checked spec ----------------------------------------------------------------

/// A checked feature spec.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Spec {
    pub project: String,
    pub entities: Vec<Entity>,
    pub source: Source,
    pub feature_views: Vec<FeatureView>,
    /// SHA-256 of the file's bytes, hex: lineage for outputs and the registry.
    pub checksum: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Entity {
    pub name: String,
    pub join_key: String,
    pub value_type: ValueType,
    pub description: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Source {
    pub name: String,
    pub timestamp_column: String,
    pub entity_column: String,
    /// Column name and type, in name order.
    pub columns: Vec<(String, ColumnType)>,
}

impl Source {
    pub fn column_type(&self, name: &str) -> Option<ColumnType> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, t)| *t)
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FeatureView {
    pub name: String,
    /// Names of the view's entities.
    pub entities: Vec<String>,
    pub ttl: Window,
    pub online: bool,
    pub description: String,
    pub owner: String,
    pub tags: BTreeMap<String, String>,
    pub features: Vec<Feature>,
}

impl FeatureView {
    /// The longest window of the view: how far back raw events are needed.
    pub fn longest_window(&self) -> Option<Window> {
        self.features.iter().map(|f| f.window).max()
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Feature {
    pub name: String,
    pub aggregation: Aggregation,
    /// Input column; `None` for `count`.
    pub column: Option<String>,
    pub window: Window,
    pub dtype: Dtype,
    /// Value of an empty window.
    pub empty: f64,
    pub description: String,
}

impl Spec {
    /// Reads and checks a spec file.
    pub fn load(path: impl AsRef<Path>) -> Result<Spec, SpecError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            file: file.clone(),
            source,
        })?;
        Spec::parse(&file, &text)
    }

    /// Checks a spec held in memory; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Spec, SpecError> {
        let raw: RawSpec = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
            SpecError::Invalid {
                file: file.to_string(),
                line,
                column,
                message: strip_position(&one_line(&e.without_snippet().to_string())),
            }
        })?;
        let checksum = Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Checker { file }.check(raw, checksum)
    }

    /// All feature views' features, with their view.
    pub fn features(&self) -> impl Iterator<Item = (&FeatureView, &Feature)> {
        self.feature_views
            .iter()
            .flat_map(|v| v.features.iter().map(move |f| (v, f)))
    }

    /// The longest window of any feature: how far back raw events are needed.
    pub fn longest_window(&self) -> Option<Window> {
        self.features().map(|(_, f)| f.window).max()
    }

    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name == name)
    }

    pub fn feature_view(&self, name: &str) -> Option<&FeatureView> {
        self.feature_views.iter().find(|v| v.name == name)
    }
}

/// serde-saphyr's messages may span lines; a log line and an exit message may not.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The position is already in front of the message: drop serde-saphyr's own suffix.
fn strip_position(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) if s[i..].contains(", column ") => s[..i].to_string(),
        _ => s.to_string(),
    }
}

struct Checker<'a> {
    file: &'a str,
}

impl Checker<'_> {
    fn err<T>(&self, at: &Spanned<T>, message: impl Into<String>) -> SpecError {
        SpecError::Invalid {
            file: self.file.to_string(),
            line: at.referenced.line(),
            column: at.referenced.column(),
            message: message.into(),
        }
    }

    /// Rejects the second of two equal names, pointing at it and at the first.
    fn unique<'s>(&self, what: &str, names: impl IntoIterator<Item = &'s Spanned<String>>) -> Result<(), SpecError> {
        let mut seen: HashMap<&str, u64> = HashMap::new();
        for name in names {
            if let Some(first) = seen.insert(&name.value, name.referenced.line()) {
                return Err(self.err(
                    name,
                    format!("duplicate {what} `{}` (first at line {first})", name.value),
                ));
            }
        }
        Ok(())
    }

    /// Names become Feast object names, Parquet column names and path segments (a view's
    /// folder): Feast's own rule for project names (letters, digits and `_`, not starting
    /// with `_`), which also keeps out `..`, `/`, hidden names and control characters.
    fn name(&self, what: &str, at: &Spanned<String>) -> Result<(), SpecError> {
        let n = &at.value;
        let first_ok = n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if first_ok && n.len() <= 255 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Ok(());
        }
        let shown: String = n.escape_debug().collect();
        Err(self.err(
            at,
            format!(
                "{what} name \"{shown}\": use letters, digits and `_`, starting with a letter or digit (at most 255)"
            ),
        ))
    }

    fn check(&self, raw: RawSpec, checksum: String) -> Result<Spec, SpecError> {
        self.name("project", &raw.project)?;
        for e in &raw.entities {
            self.name("entity", &e.name)?;
        }
        for v in &raw.feature_views {
            self.name("feature view", &v.name)?;
            for f in &v.features {
                self.name("feature", &f.name)?;
            }
        }
        let source = &raw.source;
        for col in [&source.timestamp_column, &source.entity_column] {
            if !source.columns.contains_key(&col.value) {
                return Err(self.err(col, format!("column `{}` is not among the source's columns", col.value)));
            }
        }
        let ts_type = source.columns[&source.timestamp_column.value].value;
        if ts_type != ColumnType::Timestamp {
            return Err(self.err(
                &source.timestamp_column,
                format!(
                    "timestamp column `{}` has type {ts_type:?}, expected Timestamp",
                    source.timestamp_column.value
                ),
            ));
        }

        self.unique("entity", raw.entities.iter().map(|e| &e.name))?;
        for e in &raw.entities {
            let Some(col) = source.columns.get(&e.join_key.value) else {
                return Err(self.err(
                    &e.join_key,
                    format!("join key `{}` is not a source column", e.join_key.value),
                ));
            };
            let fits = matches!(
                (e.value_type.value, col.value),
                (ValueType::Int64, ColumnType::Int64 | ColumnType::Int32) | (ValueType::String, ColumnType::String)
            );
            if !fits {
                return Err(self.err(
                    &e.value_type,
                    format!(
                        "entity `{}` is {:?} but source column `{}` is {:?}",
                        e.name.value, e.value_type.value, e.join_key.value, col.value
                    ),
                ));
            }
        }

        self.unique("feature view", raw.feature_views.iter().map(|v| &v.name))?;
        let mut views = Vec::new();
        for v in &raw.feature_views {
            for ent in &v.entities {
                let Some(e) = raw.entities.iter().find(|e| e.name.value == ent.value) else {
                    return Err(self.err(
                        ent,
                        format!("feature view `{}` names unknown entity `{}`", v.name.value, ent.value),
                    ));
                };
                if e.join_key.value != source.entity_column.value {
                    return Err(self.err(
                        ent,
                        format!(
                            "entity `{}` joins on `{}`, but the source's entity column is `{}`",
                            ent.value, e.join_key.value, source.entity_column.value
                        ),
                    ));
                }
            }
            if v.entities.is_empty() {
                return Err(self.err(&v.name, format!("feature view `{}` has no entities", v.name.value)));
            }
            if v.features.is_empty() {
                return Err(self.err(&v.name, format!("feature view `{}` has no features", v.name.value)));
            }
            self.unique("feature", v.features.iter().map(|f| &f.name))?;
            let mut features = Vec::new();
            for f in &v.features {
                features.push(self.feature(source, f)?);
            }
            views.push(FeatureView {
                name: v.name.value.clone(),
                entities: v.entities.iter().map(|e| e.value.clone()).collect(),
                ttl: v.ttl,
                online: v.online,
                description: v.description.clone(),
                owner: v.owner.clone(),
                tags: v.tags.clone(),
                features,
            });
        }

        Ok(Spec {
            project: raw.project.value,
            entities: raw
                .entities
                .into_iter()
                .map(|e| Entity {
                    name: e.name.value,
                    join_key: e.join_key.value,
                    value_type: e.value_type.value,
                    description: e.description,
                })
                .collect(),
            source: Source {
                name: raw.source.name,
                timestamp_column: raw.source.timestamp_column.value,
                entity_column: raw.source.entity_column.value,
                columns: raw.source.columns.into_iter().map(|(n, t)| (n, t.value)).collect(),
            },
            feature_views: views,
            checksum,
        })
    }

    fn feature(&self, source: &RawSource, f: &RawFeature) -> Result<Feature, SpecError> {
        let agg = f.aggregation.value;
        let name = &f.name.value;
        let column_type = match (&f.column, agg) {
            (Some(c), Aggregation::Count) => {
                return Err(self.err(c, format!("feature `{name}`: count takes no column (it counts events)")));
            }
            (None, Aggregation::Count) => None,
            (None, _) => {
                return Err(self.err(
                    &f.aggregation,
                    format!("feature `{name}`: {} needs a column", agg.name()),
                ));
            }
            (Some(c), _) => match source.columns.get(&c.value) {
                Some(t) => Some(t.value),
                None => {
                    return Err(self.err(
                        c,
                        format!("feature `{name}`: column `{}` is not a source column", c.value),
                    ));
                }
            },
        };
        if let Some(t) = column_type {
            let aggregatable = agg == Aggregation::CountDistinct || t.is_numeric();
            if !aggregatable || (agg == Aggregation::CountDistinct && t.is_float()) {
                return Err(self.err(
                    f.column.as_ref().expect("column checked above"),
                    format!("feature `{name}`: {} cannot aggregate a {t:?} column", agg.name()),
                ));
            }
        }
        let dtype = f.dtype.value;
        let holds = match agg {
            Aggregation::Count | Aggregation::CountDistinct => dtype == Dtype::Int64,
            Aggregation::Mean => dtype != Dtype::Int64,
            Aggregation::Sum | Aggregation::Min | Aggregation::Max => {
                !(dtype == Dtype::Int64 && column_type.is_some_and(ColumnType::is_float))
            }
        };
        if !holds {
            return Err(self.err(
                &f.dtype,
                format!(
                    "feature `{name}`: dtype {dtype:?} cannot hold a {} of {}",
                    agg.name(),
                    match &f.column {
                        Some(c) => format!("{:?} column `{}`", column_type.expect("typed above"), c.value),
                        None => "events".to_string(),
                    }
                ),
            ));
        }
        let empty = match &f.empty {
            Some(e) if !e.value.is_finite() => {
                return Err(self.err(e, format!("feature `{name}`: empty value must be a finite number")));
            }
            Some(e) if dtype == Dtype::Int64 && e.value.fract() != 0.0 => {
                return Err(self.err(
                    e,
                    format!("feature `{name}`: empty value {} does not fit Int64", e.value),
                ));
            }
            Some(e) => e.value,
            None => 0.0,
        };
        Ok(Feature {
            name: name.clone(),
            aggregation: agg,
            column: f.column.as_ref().map(|c| c.value.clone()),
            window: f.window,
            dtype,
            empty,
            description: f.description.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../features.yaml");

    #[test]
    fn the_shipped_example_is_the_seed_view() {
        let spec = Spec::parse("features.yaml", EXAMPLE).unwrap();
        assert_eq!(spec.project, "fraud_detection");
        assert_eq!(spec.entities.len(), 1);
        assert_eq!(spec.entities[0].join_key, "user_id");
        assert_eq!(spec.entities[0].value_type, ValueType::Int64);
        let view = spec.feature_view("user_transaction_features").unwrap();
        assert!(view.online);
        assert_eq!(view.ttl.to_string(), "30d");
        let got: Vec<(String, &str, Option<&str>, String, Dtype)> = view
            .features
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    f.aggregation.name(),
                    f.column.as_deref(),
                    f.window.to_string(),
                    f.dtype,
                )
            })
            .collect();
        let want = vec![
            (
                "transaction_count_1h".to_string(),
                "count",
                None,
                "1h".to_string(),
                Dtype::Int64,
            ),
            ("transaction_count_24h".into(), "count", None, "1d".into(), Dtype::Int64),
            (
                "avg_transaction_amount_7d".into(),
                "mean",
                Some("amount"),
                "7d".into(),
                Dtype::Float64,
            ),
            (
                "avg_transaction_amount_30d".into(),
                "mean",
                Some("amount"),
                "30d".into(),
                Dtype::Float64,
            ),
            (
                "max_transaction_amount_7d".into(),
                "max",
                Some("amount"),
                "7d".into(),
                Dtype::Float64,
            ),
            (
                "distinct_merchant_count_7d".into(),
                "count_distinct",
                Some("merchant_id"),
                "7d".into(),
                Dtype::Int64,
            ),
        ];
        assert_eq!(got, want);
        assert!(view.features.iter().all(|f| f.empty == 0.0));
        assert_eq!(spec.longest_window().unwrap().to_string(), "30d");
        assert_eq!(spec.checksum.len(), 64);
    }

    #[test]
    fn windows_parse_and_print() {
        for (text, secs, shown) in [
            ("1h", 3600, "1h"),
            ("24h", 86400, "1d"),
            ("7d", 604800, "7d"),
            ("90m", 5400, "1h30m"),
            ("1d12h", 129600, "1d12h"),
            ("2w", 1209600, "14d"),
            ("45s", 45, "45s"),
        ] {
            let w: Window = text.parse().unwrap();
            assert_eq!(w.duration().as_secs(), secs, "{text}");
            assert_eq!(w.to_string(), shown);
        }
        for bad in [
            "",
            "0h",
            "0d0h",
            "-1h",
            "1",
            "h",
            "1y",
            "1.5h",
            "7 d x",
            "36500d1s",
            "300000000w",
        ] {
            assert!(bad.parse::<Window>().is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            "36500d".parse::<Window>().unwrap().micros(),
            36_500 * 86_400 * 1_000_000
        );
    }

    /// The inputs the fuzz target `spec` (fuzz/) crashed on: each is rejected now, or a spec
    /// whose windows and TTLs are positive microseconds in an i64, what the steps compute in.
    #[test]
    fn inputs_the_fuzzer_crashed_on_are_rejected_or_usable() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/regressions/spec");
        let files: Vec<_> = std::fs::read_dir(dir).expect(dir).map(|e| e.unwrap().path()).collect();
        assert!(!files.is_empty(), "{dir} holds no input");
        for path in files {
            let bytes = std::fs::read(&path).unwrap();
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            let Ok(spec) = Spec::parse("features.yaml", text) else {
                continue;
            };
            for (view, feature) in spec.features() {
                for w in [view.ttl, feature.window] {
                    assert!(w.micros() > 0, "{}: window {w}", path.display());
                    assert_eq!(
                        w.micros() as u128,
                        w.duration().as_micros(),
                        "{}: window {w}",
                        path.display()
                    );
                }
            }
        }
    }

    /// Replaces `from` by `to` in the example (exactly once) and returns the rejection.
    fn rejection(from: &str, to: &str) -> String {
        assert_eq!(
            EXAMPLE.matches(from).count(),
            1,
            "{from:?} must occur once in features.yaml"
        );
        let text = EXAMPLE.replacen(from, to, 1);
        match Spec::parse("features.yaml", &text) {
            Ok(_) => panic!("spec with {to:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn line_of(needle: &str) -> usize {
        EXAMPLE
            .lines()
            .position(|l| l.contains(needle))
            .expect("needle in example")
            + 1
    }

    #[test]
    fn rejections_name_file_line_and_cause() {
        let agg_line = line_of("aggregation: max");
        let cases = [
            (
                "    owner: fraud-ml",
                "    owner: fraud-ml\n    colour: blue",
                "unknown field `colour`",
                line_of("owner: fraud-ml") + 1,
            ),
            ("aggregation: max", "aggregation: median", "median", agg_line),
            (
                "name: transaction_count_24h",
                "name: transaction_count_1h",
                "duplicate feature `transaction_count_1h`",
                line_of("transaction_count_24h"),
            ),
            ("window: 24h", "window: 0h", "must be positive", line_of("window: 24h")),
            ("window: 24h", "window: -3h", "invalid duration", line_of("window: 24h")),
            (
                "window: 24h",
                "window: soon",
                "invalid duration",
                line_of("window: 24h"),
            ),
            (
                "column: merchant_id",
                "column: merchant",
                "column `merchant` is not a source column",
                line_of("column: merchant_id"),
            ),
            (
                "dtype: Float64   # mean 7d",
                "dtype: Int64",
                "dtype Int64 cannot hold a mean",
                line_of("# mean 7d"),
            ),
            ("ttl: 30d", "ttl: 0d", "must be positive", line_of("ttl: 30d")),
            (
                "    entities: [user]",
                "    entities: [account]",
                "unknown entity `account`",
                line_of("entities: [user]"),
            ),
        ];
        for (from, to, want, line) in cases {
            let got = rejection(from, to);
            check(got, want, line, to);
        }
    }

    fn check(got: String, want: &str, line: usize, to: &str) {
        assert!(got.starts_with(&format!("features.yaml:{line}:")), "{to:?}: {got}");
        assert!(got.contains(want), "{to:?}: {got}");
        assert!(!got.contains('\n'), "{to:?}: one line expected, got {got}");
        assert!(!got.contains(", column "), "{to:?}: position given twice: {got}");
    }

    #[test]
    fn names_that_are_not_safe_path_segments_are_refused() {
        let view = "name: user_transaction_features";
        let feature = "name: transaction_count_24h";
        let cases = [
            (view, "name: \"../x\"", "feature view name \"../x\""),
            (view, "name: a/b", "feature view name \"a/b\""),
            (view, "name: \"\"", "feature view name \"\""),
            (view, "name: _hidden", "feature view name \"_hidden\""),
            (view, "name: \"tab\\tin\"", "feature view name \"tab\\tin\""),
            (feature, "name: \"..\"", "feature name \"..\""),
            ("name: user\n", "name: \"us er\"\n", "entity name \"us er\""),
            (
                "project: fraud_detection",
                "project: \"a\\u0001b\"",
                "project name \"a\\u{1}b\"",
            ),
        ];
        for (from, to, want) in cases {
            check(rejection(from, to), want, line_of(from.trim_end()), to);
        }
    }
}
