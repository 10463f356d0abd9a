//! The online store (cargo feature `online`): Feast's Redis, as the steps that talk to it see it.
//!
//! - [`store`]: where it is (every URL form, cluster and TLS included), connections,
//!   pipelined batches, the one retry policy, and how its failures map to exit codes;
//! - [`latest`]: each entity's latest row of a view in an interval, the row Feast's
//!   materialization serves: materialize-redis writes it, validate-features' audit expects it.
//!
//! The bytes themselves (keys, fields, values) are [`crate::feast`]'s.

pub mod latest;
pub mod store;

use crate::spec::{FeatureView, Spec};
use crate::{Error, Result};

/// The views served online: the named ones (`flag` names them in errors), else every view
/// with `online: true`.
pub fn online_views<'a>(spec: &'a Spec, flag: &str, names: &[String]) -> Result<Vec<&'a FeatureView>> {
    if names.is_empty() {
        let online: Vec<_> = spec.feature_views.iter().filter(|v| v.online).collect();
        if online.is_empty() {
            return Err(Error::config("no feature view in the spec has online: true"));
        }
        return Ok(online);
    }
    names
        .iter()
        .map(|n| match spec.feature_view(n) {
            Some(v) if v.online => Ok(v),
            Some(_) => Err(Error::usage(format!("{flag} {n}: the view has online: false"))),
            None => Err(Error::usage(format!(
                "{flag} {n}: no such view in the spec (it has {})",
                spec.feature_views
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        })
        .collect()
}
