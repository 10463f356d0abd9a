#!/usr/bin/env bash
# Side-by-side benchmarks; each step's issue adds its own. Usage: scripts/bench.sh BIN_DIR
set -euo pipefail
bin=${1:-target/bench-fast}
echo "no step benchmarks yet (bin: $bin)"
