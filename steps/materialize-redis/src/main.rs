use std::process::ExitCode;

fn main() -> ExitCode {
    featurekit::step::main::<materialize_redis::Args, _>(
        "materialize-redis",
        env!("CARGO_PKG_VERSION"),
        materialize_redis::run,
    )
}
