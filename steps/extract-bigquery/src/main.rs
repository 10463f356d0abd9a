use std::process::ExitCode;

fn main() -> ExitCode {
    featurekit::step::main::<extract_bigquery::Args, _>(
        "extract-bigquery",
        env!("CARGO_PKG_VERSION"),
        extract_bigquery::run,
    )
}
