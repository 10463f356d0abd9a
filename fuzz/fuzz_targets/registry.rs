//! The Feast registry decoder: any bytes as registry.db, merged with the repo's
//! features.yaml through `merge::merge` (what publish-registry runs on the bytes it reads).
//! Bytes that are not a registry are a Data error; a registry it accepts is merged into one
//! that merges again.
#![no_main]

use std::sync::LazyLock;

use featurekit::Kind;
use featurekit::spec::Spec;
use libfuzzer_sys::fuzz_target;
use publish_registry::merge::{Desired, merge};
use publish_registry::proto::Timestamp;

static DESIRED: LazyLock<Desired> = LazyLock::new(|| {
    let spec = Spec::parse("features.yaml", include_str!("../../features.yaml")).expect("the repo's spec parses");
    publish_registry::desired(&spec, "memory://fuzz/offline", Some("fuzz"), Some(1))
});

/// 2025-11-15, and a day's materialization before it.
const NOW: i64 = 1_763_164_800_000_000;
const DAY: i64 = 86_400_000_000;

fuzz_target!(|data: &[u8]| {
    let now = Timestamp::from_micros(NOW);
    let materialized = Some((NOW - DAY, NOW));
    let merged = match merge(data, &DESIRED, now, "fuzz", materialized) {
        Ok(merged) => merged,
        Err(e) => {
            assert_eq!(e.kind(), Kind::Data, "{e}");
            return;
        }
    };
    if let Err(e) = merge(&merged.bytes, &DESIRED, now, "fuzz", materialized) {
        panic!("the merged registry does not merge again: {e}");
    }
});
