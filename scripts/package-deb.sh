#!/usr/bin/env bash
# Builds the Debian package of rtsp-proxy with cargo-deb (installed with
# `cargo install cargo-deb --locked` when missing): the static binary of
# scripts/build-static.sh as /usr/bin/rtsp-proxy, the man page, the hardened
# systemd unit (enabled and started on install), /etc/rtsp-proxy/rtsp-proxy.toml
# (no stream until one is configured) and /etc/default/rtsp-proxy, both
# conffiles. What goes in is [package.metadata.deb] in crates/proxy/Cargo.toml.
#
#   scripts/package-deb.sh             # builds the binary, then the package
#   scripts/package-deb.sh --no-build  # packages the binary already built
#
# Prints the .deb's path on stdout (target/debian/rtsp-proxy_<version>-1_<arch>.deb).
#   dpkg -i target/debian/rtsp-proxy_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0

build=1
case "${1:-}" in
--no-build) build=0 ;;
"") ;;
*) echo "usage: scripts/package-deb.sh [--no-build]" >&2; exit 2 ;;
esac

if ! cargo deb --version >/dev/null 2>&1; then
  echo "+ cargo install cargo-deb --locked --version $CARGO_DEB_VERSION" >&2
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" >&2
fi

target=${TARGET:-$(rustc -vV | sed -n 's/^host: //p')}
if ((build)); then
  scripts/build-static.sh >/dev/null
fi
profile=${STATIC_PROFILE:-release}
echo "+ cargo deb -p rtsp-proxy --no-build --strip --target $target --profile $profile" >&2
cargo deb -p rtsp-proxy --no-build --strip --target "$target" --profile "$profile" | tail -n 1
