//! The Parquet input path: any bytes as a raw input file, read as compute-windows reads raw/
//! (`compute_windows::read_raw`: `ParquetScan` over the store, the footer, the schema check
//! against features.yaml's source columns, every row group decoded and split). A file that is
//! not a valid raw file is a Data error, never a panic or another kind.
#![no_main]

use std::sync::{LazyLock, Once};

use featurekit::Kind;
use featurekit::artifact::Location;
use featurekit::spec::Spec;
use libfuzzer_sys::fuzz_target;

static SPEC: LazyLock<Spec> = LazyLock::new(|| {
    Spec::parse("features.yaml", include_str!("../../features.yaml")).expect("the repo's spec parses")
});

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime")
});

/// libfuzzer-sys aborts at every panic, caught or not; the reader turns the decoder's own
/// into a Data error. Here a panic is only said, so that a crash is one that reaches
/// libfuzzer-sys (which then aborts) or a caught one that came out as another kind.
static PANICS_UNWIND: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    PANICS_UNWIND.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            eprintln!("{info}\n{}", std::backtrace::Backtrace::capture());
        }))
    });
    let file = Location::parse("memory://fuzz/raw/part-00000.parquet").expect("a memory URL");
    RUNTIME.block_on(async {
        file.write(data.to_vec()).await.expect("a memory store takes the file");
        if let Err(e) = compute_windows::read_raw(&SPEC, &file, i64::MIN / 2, i64::MAX / 2).await {
            assert_eq!(e.kind(), Kind::Data, "{e}");
        }
    });
});
