#!/usr/bin/env bash
# Builds the image of each STEP from the static binaries in BIN_DIR, tags it
# featurekit/<step>:<version> and featurekit/<step>:<git short sha>, and prints its size:
#   images/build.sh BIN_DIR STEP...        (make images)
# The version is the binary's own (`<step> --version`); the sha gets "-dirty" when tracked files
# differ from HEAD. IMAGE_REPO=name replaces "featurekit".
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BIN_DIR STEP..." >&2; exit 2; }
bin_dir=$1; shift
here=$(cd "$(dirname "$0")" && pwd); top=$(cd "$here/.." && pwd)
repo=${IMAGE_REPO:-featurekit}

revision=$(git -C "$top" rev-parse HEAD)
short=$(git -C "$top" rev-parse --short HEAD)
if ! git -C "$top" diff --quiet HEAD; then revision=$revision-dirty; short=$short-dirty; fi
source=$(git -C "$top" remote get-url origin 2>/dev/null || echo "file://$top")
source=$(echo "$source" | sed -E 's#^git@([^:]+):#https://\1/#; s#\.git$##')
# A remote that is a local path (a clone of a clone, as CI's) becomes a file:// URL.
case $source in
  *://*) ;;
  *) source=file://$(cd "$top" && cd "$source" 2>/dev/null && pwd || echo "$top") ;;
esac

for step in "$@"; do
  context=$top/target/images/$step
  "$here/context.sh" "$bin_dir" "$step" "$context"
  version=$("$context/$step" --version | awk '{print $NF}')
  description=$(sed -n 's/^description = "\(.*\)"$/\1/p' "$top/steps/$step/Cargo.toml")
  docker build --quiet --file "$here/Dockerfile" --target "$step" \
    --build-arg VERSION="$version" --build-arg REVISION="$revision" \
    --build-arg SOURCE="$source" --build-arg DESCRIPTION="$description" \
    --tag "$repo/$step:$version" --tag "$repo/$step:$short" "$context" >/dev/null
  bytes=$(docker image inspect --format '{{.Size}}' "$repo/$step:$version")
  awk -v a="$repo/$step:$version" -v b="$repo/$step:$short" -v n="$bytes" \
    'BEGIN { printf "%-40s %-44s %5.1f MB (%d bytes)\n", a, b, n / 1e6, n }'
done
