#!/usr/bin/env bash
# Builds rtsp-proxy as one statically linked executable (glibc included:
# `-C target-feature=+crt-static` on the GNU target, offline, no musl needed)
# for the container image (scripts/image.sh) and the Debian package
# (scripts/package-deb.sh), and checks that it needs no shared library.
#
#   scripts/build-static.sh        # prints the binary's path on stdout
#
# TARGET=<triple> builds another target (default: the host's);
# STATIC_PROFILE=<cargo profile> another profile than `release` (the test
# suite uses `static-check`: no optimisation, built in a fraction of the
# time). Extra RUSTFLAGS
# are kept. Any crate that links C code (ring today) is compiled into the same
# static executable by its build script; a crate that needs a system library
# must find its static archive (lib*.a) or the check below fails.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${TARGET:-$(rustc -vV | sed -n 's/^host: //p')}
profile=${STATIC_PROFILE:-release}
case "$target" in
*-linux-gnu*) ;;
*) echo "build-static.sh: $target: only the GNU Linux targets are supported" >&2; exit 1 ;;
esac
# Called from a test, cargo's variables of the crate under test are set; some
# build scripts (ring's) rerun when they change: drop them so that a test and a
# shell share one build.
for v in $(compgen -e); do
  case "$v" in
  CARGO_MANIFEST_* | CARGO_PKG_* | CARGO_CRATE_NAME | CARGO_BIN_* | CARGO_TARGET_TMPDIR | CARGO_PRIMARY_PACKAGE | OUT_DIR) unset "$v" ;;
  esac
done
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static"
echo "+ RUSTFLAGS='$RUSTFLAGS' cargo build --profile $profile --locked -p rtsp-proxy --target $target" >&2
cargo build --profile "$profile" --locked -p rtsp-proxy --target "$target" >&2

target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
binary=$target_dir/$target/$profile/rtsp-proxy
# Static: no program interpreter, no NEEDED library.
if readelf -l "$binary" | grep -q 'INTERP' || readelf -d "$binary" | grep -q '(NEEDED)'; then
  echo "build-static.sh: $binary is not static:" >&2
  readelf -d "$binary" | grep '(NEEDED)' >&2 || true
  exit 1
fi
echo "$binary"
