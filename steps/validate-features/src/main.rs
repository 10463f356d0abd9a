use std::process::ExitCode;

fn main() -> ExitCode {
    featurekit::step::main::<validate_features::Args, _>(
        "validate-features",
        env!("CARGO_PKG_VERSION"),
        validate_features::run,
    )
}
