use std::process::ExitCode;

fn main() -> ExitCode {
    featurekit::step::main::<publish_registry::Args, _>(
        "publish-registry",
        env!("CARGO_PKG_VERSION"),
        publish_registry::run,
    )
}
