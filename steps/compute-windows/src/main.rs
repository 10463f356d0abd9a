use std::process::ExitCode;

fn main() -> ExitCode {
    featurekit::malloc::tune_for_batch();
    featurekit::step::main::<compute_windows::Args, _>(
        "compute-windows",
        env!("CARGO_PKG_VERSION"),
        compute_windows::run,
    )
}
