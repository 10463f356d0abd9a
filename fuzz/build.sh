#!/usr/bin/env bash
# Builds the fuzz targets with plain cargo on the stable toolchain: libFuzzer (libfuzzer-sys)
# and LLVM's SanitizerCoverage switched on by stable rustc flags, as cargo fuzz does it (the
# layout is cargo fuzz's too). `--target` keeps the flags off build scripts and proc macros.
set -euo pipefail
cd "$(dirname "$0")"
triple=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=target
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
${CARGO:-cargo} build --release --locked --target "$triple" --bins "$@"
