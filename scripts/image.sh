#!/usr/bin/env bash
# Builds the rtsp-proxy container image (Containerfile: FROM scratch) from the
# locally built static binary, with Debian's buildah (or podman), offline.
#
#   scripts/image.sh                 # builds the binary (scripts/build-static.sh), then the image
#   scripts/image.sh --no-build      # uses the binary already built
#   IMAGE=registry.example/rtsp-proxy:1 scripts/image.sh
#
# The context (target/image/) gets the stripped binary, the CA bundle of
# Debian's ca-certificates, passwd/group for the user rtsp-proxy (65532) and
# the example configuration with RTSP on 8554 (the user cannot bind 554).
# Prints the image's name on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
case "${1:-}" in
--no-build) build=0 ;;
"") ;;
*) echo "usage: scripts/image.sh [--no-build]" >&2; exit 2 ;;
esac

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
image=${IMAGE:-localhost/rtsp-proxy:$version}
target=${TARGET:-$(rustc -vV | sed -n 's/^host: //p')}
ca_bundle=/etc/ssl/certs/ca-certificates.crt

if ((build)); then
  binary=$(scripts/build-static.sh)
else
  target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  binary=$target_dir/$target/${STATIC_PROFILE:-release}/rtsp-proxy
fi
[[ -x "$binary" ]] || { echo "image.sh: no binary at $binary (run scripts/build-static.sh)" >&2; exit 1; }
[[ -s "$ca_bundle" ]] || { echo "image.sh: $ca_bundle missing (apt-get install ca-certificates)" >&2; exit 1; }

context=target/image
rm -rf "$context"
mkdir -p "$context"
strip -o "$context/rtsp-proxy" "$binary"
chmod 755 "$context/rtsp-proxy"
install -m 644 "$ca_bundle" "$context/ca-certificates.crt"
printf 'root:x:0:0:root:/:/sbin/nologin\nrtsp-proxy:x:65532:65532:rtsp-proxy:/nonexistent:/sbin/nologin\n' >"$context/passwd"
printf 'root:x:0:\nrtsp-proxy:x:65532:\n' >"$context/group"
chmod 644 "$context/passwd" "$context/group"
sed 's/^rtsp_port = 554 /rtsp_port = 8554/' packaging/config/rtsp-proxy.toml >"$context/rtsp-proxy.toml"
grep -q '^rtsp_port = 8554' "$context/rtsp-proxy.toml" || {
  echo "image.sh: packaging/config/rtsp-proxy.toml has no 'rtsp_port = 554 ' line to move to 8554" >&2
  exit 1
}
chmod 644 "$context/rtsp-proxy.toml"
cp Containerfile "$context/Containerfile"

if command -v buildah >/dev/null 2>&1; then
  echo "+ buildah build -f $context/Containerfile -t $image $context" >&2
  buildah build -f "$context/Containerfile" -t "$image" "$context" >&2
elif command -v podman >/dev/null 2>&1; then
  echo "+ podman build -f $context/Containerfile -t $image $context" >&2
  podman build -f "$context/Containerfile" -t "$image" "$context" >&2
else
  echo "image.sh: neither buildah nor podman found (apt-get install buildah)" >&2
  exit 1
fi
echo "$image"
