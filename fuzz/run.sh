#!/usr/bin/env bash
# Runs fuzz targets built by build.sh for a while each: run.sh <seconds> <target>...
# Each target starts from its committed seeds (corpus/<target>/, only read) and the inputs
# earlier runs found (target/corpus/<target>/, where new ones go); a crash is written to
# artifacts/<target>/ and makes the run fail once every target has had its turn.
set -uo pipefail
cd "$(dirname "$0")"
bin=target/$(rustc -vV | sed -n 's/^host: //p')/release
seconds=$1
shift
failed=()
for t in "$@"; do
  mkdir -p "target/corpus/$t" "artifacts/$t"
  echo "fuzz: $t for ${seconds}s"
  "$bin/$t" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" "target/corpus/$t" "corpus/$t" 2>"target/$t.log"
  status=$?
  grep -E '^stat::number_of_executed_units|^stat::new_units_added' "target/$t.log" | tr '\n' ' '
  echo
  if [ "$status" -ne 0 ]; then
    tail -40 "target/$t.log"
    failed+=("$t")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashed: ${failed[*]} (inputs in fuzz/artifacts/; keep each as fuzz/regressions/<target>/)"
  exit 1
fi
