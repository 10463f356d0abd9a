#!/usr/bin/env bash
# Lays out the build context of a step's image (see images/Dockerfile) in OUT_DIR:
#   images/context.sh BIN_DIR STEP OUT_DIR
# BIN_DIR holds the static release binaries (`make image-bins`: target/<target>/release). The CA
# bundle is Debian's (and Ubuntu's) Mozilla set from the ca-certificates package, not the build
# machine's /etc/ssl/certs, which may carry local additions; CA_BUNDLE=FILE uses FILE instead.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 BIN_DIR STEP OUT_DIR" >&2; exit 2; }
bin=$1/$2; step=$2; out=$3
root=$(cd "$(dirname "$0")" && pwd)

[ -x "$bin" ] || { echo "$bin is not built: run make image-bins" >&2; exit 1; }
# a dynamic binary would fail on scratch at its first start: refuse it here
if readelf -lW "$bin" | grep -q 'program interpreter' || readelf -dW "$bin" | grep -q '(NEEDED)'; then
  echo "$bin is dynamically linked; build it with make image-bins (RUSTFLAGS, when set, drops +crt-static)" >&2
  exit 1
fi

rm -rf "$out"
mkdir -p "$out/etc/ssl/certs"
install -m 0755 "$bin" "$out/$step"
install -m 0644 "$root/rootfs/etc/passwd" "$root/rootfs/etc/group" "$out/etc/"
if [ -n "${CA_BUNDLE:-}" ]; then
  install -m 0644 "$CA_BUNDLE" "$out/etc/ssl/certs/ca-certificates.crt"
else
  shopt -s nullglob
  certs=(/usr/share/ca-certificates/mozilla/*.crt)
  [ ${#certs[@]} -gt 0 ] || { echo "no CA certificates in /usr/share/ca-certificates/mozilla: apt-get install ca-certificates, or set CA_BUNDLE" >&2; exit 1; }
  cat "${certs[@]}" > "$out/etc/ssl/certs/ca-certificates.crt"
  chmod 0644 "$out/etc/ssl/certs/ca-certificates.crt"
fi
