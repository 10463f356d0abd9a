//! The spec parser: any text as features.yaml, through `Spec::parse` (what `Spec::load` runs
//! on a file's text). A rejection is an error naming the line; a spec it accepts has windows
//! and TTLs the steps can do arithmetic on (positive microseconds in an i64).
#![no_main]

use featurekit::spec::{Spec, Window};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = Spec::parse("features.yaml", text) else {
        return;
    };
    for view in &spec.feature_views {
        assert_usable(view.ttl);
        for feature in &view.features {
            assert_usable(feature.window);
        }
    }
});

fn assert_usable(w: Window) {
    assert!(w.micros() > 0, "window {w} is {} µs", w.micros());
    assert_eq!(
        w.micros() as u128,
        w.duration().as_micros(),
        "window {w} overflows i64 µs"
    );
}
