//! The contract: thresholds from the rules file, and the row rules features.yaml implies.

use std::collections::BTreeMap;
use std::str::FromStr;

use featurekit::spec::{Aggregation, Dtype, FeatureView, Window};
use featurekit::{Error, Result};
use serde::Deserialize;

/// The rules file (every key optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub freshness: Freshness,
    pub volume: Volume,
    pub drift: Drift,
    /// Per feature: inclusive bounds every non-null value must respect.
    pub bounds: BTreeMap<String, Bounds>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Freshness {
    /// The newest event_timestamp may be at most this much older than --end.
    pub max_lag: String,
}

impl Default for Freshness {
    fn default() -> Freshness {
        Freshness { max_lag: "6h".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Volume {
    /// |rows - baseline rows| / baseline rows above this warns ...
    pub baseline_warn: f64,
    /// ... and above this fails.
    pub baseline_fail: f64,
}

impl Default for Volume {
    fn default() -> Volume {
        Volume {
            baseline_warn: 0.2,
            baseline_fail: 0.5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Drift {
    pub psi: Threshold,
    pub null_rate: Threshold,
}

impl Default for Drift {
    fn default() -> Drift {
        Drift {
            psi: Threshold { warn: 0.1, fail: 0.25 },
            null_rate: Threshold { warn: 0.02, fail: 0.1 },
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub warn: f64,
    pub fail: f64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Config {
    pub fn load(path: Option<&std::path::Path>) -> Result<Config> {
        let Some(path) = path else { return Ok(Config::default()) };
        let text = std::fs::read_to_string(path).map_err(|e| Error::config(format!("{}: {e}", path.display())))?;
        let config: Config =
            serde_saphyr::from_str(&text).map_err(|e| Error::config(format!("{}: {e}", path.display())))?;
        config
            .max_lag_micros()
            .map_err(|e| Error::config(format!("{}: freshness.max_lag: {e}", path.display())))?;
        Ok(config)
    }

    pub fn max_lag_micros(&self) -> std::result::Result<i64, String> {
        Window::from_str(&self.freshness.max_lag).map(|w| w.micros())
    }
}

/// A rule checked on every row of a view, between feature columns (by index in the view).
#[derive(Debug, Clone, PartialEq)]
pub enum RowRule {
    /// A count or distinct count is >= 0.
    NonNegative(usize),
    /// `small` <= `large`: a longer window's count or max, a distinct count and its count,
    /// a mean and the max of the same column and window.
    AtMost { small: usize, large: usize },
    /// User bounds.
    Within {
        feature: usize,
        min: Option<f64>,
        max: Option<f64>,
    },
}

/// A named row rule.
#[derive(Debug, Clone)]
pub struct Named {
    pub name: String,
    pub description: String,
    pub rule: RowRule,
}

/// The row rules a view's features imply, plus the rules file's bounds.
pub fn row_rules(view: &FeatureView, config: &Config) -> Result<Vec<Named>> {
    let f = &view.features;
    let mut rules = Vec::new();
    for (i, a) in f.iter().enumerate() {
        if matches!(a.aggregation, Aggregation::Count | Aggregation::CountDistinct) {
            rules.push(Named {
                name: format!("non_negative.{}", a.name),
                description: format!("{} >= 0", a.name),
                rule: RowRule::NonNegative(i),
            });
        }
    }
    for (i, a) in f.iter().enumerate() {
        for (j, b) in f.iter().enumerate() {
            if i == j {
                continue;
            }
            let same_input = a.column == b.column;
            let monotone = matches!(
                a.aggregation,
                Aggregation::Count | Aggregation::CountDistinct | Aggregation::Max
            );
            if a.aggregation == b.aggregation && same_input && monotone && a.window < b.window {
                rules.push(Named {
                    name: format!("monotonic.{}.{}", a.name, b.name),
                    description: format!("{} <= {} (a longer window holds more)", a.name, b.name),
                    rule: RowRule::AtMost { small: i, large: j },
                });
            }
            if a.aggregation == Aggregation::CountDistinct
                && b.aggregation == Aggregation::Count
                && a.window == b.window
            {
                rules.push(Named {
                    name: format!("distinct_le_count.{}.{}", a.name, b.name),
                    description: format!("{} <= {}", a.name, b.name),
                    rule: RowRule::AtMost { small: i, large: j },
                });
            }
            if a.aggregation == Aggregation::Mean
                && b.aggregation == Aggregation::Max
                && same_input
                && a.window == b.window
            {
                rules.push(Named {
                    name: format!("mean_le_max.{}.{}", a.name, b.name),
                    description: format!("{} <= {}", a.name, b.name),
                    rule: RowRule::AtMost { small: i, large: j },
                });
            }
        }
    }
    for (name, b) in &config.bounds {
        let Some(i) = f.iter().position(|x| &x.name == name) else {
            return Err(Error::config(format!(
                "rules: bounds: view {} has no feature `{name}`",
                view.name
            )));
        };
        let shown = match (b.min, b.max) {
            (Some(lo), Some(hi)) => format!("{lo} <= {name} <= {hi}"),
            (Some(lo), None) => format!("{name} >= {lo}"),
            (None, Some(hi)) => format!("{name} <= {hi}"),
            (None, None) => continue,
        };
        rules.push(Named {
            name: format!("bounds.{name}"),
            description: shown,
            rule: RowRule::Within {
                feature: i,
                min: b.min,
                max: b.max,
            },
        });
    }
    Ok(rules)
}

/// The Arrow types a dtype's column may have.
pub fn dtype_name(d: Dtype) -> &'static str {
    match d {
        Dtype::Int64 => "Int64",
        Dtype::Float32 => "Float32",
        Dtype::Float64 => "Float64",
    }
}
