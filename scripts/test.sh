#!/usr/bin/env bash
# The test suite of rtsp-proxy: unit tests of every crate and the end-to-end
# tests (the real binary between a GStreamer RTSP back end and real clients:
# ffprobe, ffmpeg, gst-launch-1.0).
#
#   scripts/test.sh                 # everything, as CI runs it
#   scripts/test.sh -p rtsp         # extra arguments go to the test runner
#   scripts/test.sh --test core_proxy
#
# The runner is cargo-nextest where it is installed (every test in a process
# of its own, four at once, the heavy ones taking turns in the groups of
# .config/nextest.toml; about three times faster), `cargo test` otherwise
# (one test binary after the other; TEST_RUNNER=cargo chooses it).
#
# First it checks the tools the end-to-end tests need (Debian 12 packages). If
# some are missing it installs them when run as root, otherwise it prints the
# apt-get command to run and exits with 1.
#
# Before the tests: `cargo fmt --all --check` and
# `cargo clippy --workspace --all-targets -- -D warnings` (either failing stops the run).
# Logs of every process an end-to-end test started: target/e2e-logs/.
# After the tests, a bounded smoke run of every fuzz target
# (scripts/fuzz-smoke.sh; FUZZ_SMOKE=0 skips it).
# The whole suite builds the static binary (tests/packaging.rs) and
# the fuzz targets in the background, at the lowest priority, while the
# tests run: target/static-build.log, target/fuzz-smoke-build.log.
set -euo pipefail
cd "$(dirname "$0")/.."

# A clean clone gains nothing from incremental compilation, and its caches
# took a third of target/ (3.4 GB): CI's disk is not ours to fill.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# The static binary of tests/packaging.rs without optimisation (Cargo.toml's
# `static-check` profile): a release build took 15 of the suite's minutes.
export STATIC_PROFILE="${STATIC_PROFILE:-static-check}"

PYTHON=/usr/bin/python3

missing_packages=()
problems=()

need() { # need <package> <problem description>
  problems+=("$2")
  local p
  for p in "${missing_packages[@]+"${missing_packages[@]}"}"; do
    [[ "$p" == "$1" ]] && return 0
  done
  missing_packages+=("$1")
}

have_element() {
  command -v gst-inspect-1.0 >/dev/null 2>&1 && gst-inspect-1.0 --exists "$1" >/dev/null 2>&1
}

check_tools() {
  missing_packages=()
  problems=()

  command -v ffmpeg >/dev/null 2>&1 || need ffmpeg "ffmpeg not found"
  command -v ffprobe >/dev/null 2>&1 || need ffmpeg "ffprobe not found"
  command -v gst-launch-1.0 >/dev/null 2>&1 || need gstreamer1.0-tools "gst-launch-1.0 not found"
  # tests/join_latency.rs: a player's lag after joining through the keyframe cache.
  command -v mpv >/dev/null 2>&1 || need mpv "mpv not found"
  command -v ffplay >/dev/null 2>&1 || need ffmpeg "ffplay not found"
  command -v gst-inspect-1.0 >/dev/null 2>&1 || need gstreamer1.0-tools "gst-inspect-1.0 not found"
  # The admin dashboard's browser check (crates/proxy/tests/admin.rs).
  command -v chromium >/dev/null 2>&1 || need chromium "chromium not found (headless browser for the dashboard and WebRTC tests)"
  # tests/operations.rs: the systemd unit and the man page (skipped without them).
  command -v systemd-analyze >/dev/null 2>&1 || need systemd "systemd-analyze not found"
  command -v man >/dev/null 2>&1 || need man-db "man not found"
  # tests/proxy_protocol.rs: HAProxy in front of the proxy, sending the PROXY protocol.
  command -v haproxy >/dev/null 2>&1 || need haproxy "haproxy not found (the load balancer of tests/proxy_protocol.rs)"
  # tests/packaging.rs: the static binary's checks (file, readelf, strip), the
  # Debian package (dpkg-deb), the image (buildah, the CA bundle; podman runs it
  # where it can, buildah's chroot otherwise).
  command -v buildah >/dev/null 2>&1 || need buildah "buildah not found (the container image)"
  command -v file >/dev/null 2>&1 || need file "file not found"
  command -v readelf >/dev/null 2>&1 || need binutils "readelf not found"
  command -v strip >/dev/null 2>&1 || need binutils "strip not found"
  command -v dpkg-deb >/dev/null 2>&1 || need dpkg "dpkg-deb not found"
  [[ -s /etc/ssl/certs/ca-certificates.crt ]] || need ca-certificates "/etc/ssl/certs/ca-certificates.crt missing"
  # tests/tls.rs: self-signed certificates made as users make them (openssl req -x509).
  command -v openssl >/dev/null 2>&1 || need openssl "openssl not found"

  if [[ ! -x "$PYTHON" ]]; then
    need python3-gi "$PYTHON not found"
  elif ! "$PYTHON" -c 'import gi' >/dev/null 2>&1; then
    need python3-gi "python module gi (PyGObject) not importable by $PYTHON"
  fi
  # tests/deployment.rs reads the Kubernetes manifests with PyYAML.
  if [[ -x "$PYTHON" ]] && ! "$PYTHON" -c 'import yaml' >/dev/null 2>&1; then
    need python3-yaml "python module yaml (PyYAML) not importable by $PYTHON"
  fi
  if [[ -x "$PYTHON" ]] && ! "$PYTHON" -c '
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtsp, GstRtspServer
' >/dev/null 2>&1; then
    need gir1.2-gst-rtsp-server-1.0 "GstRtspServer 1.0 introspection data not importable"
  fi

  local element package
  # element:package (Debian 12)
  for pair in \
    videotestsrc:gstreamer1.0-plugins-base \
    audiotestsrc:gstreamer1.0-plugins-base \
    audioconvert:gstreamer1.0-plugins-base \
    audioresample:gstreamer1.0-plugins-base \
    decodebin:gstreamer1.0-plugins-base \
    opusenc:gstreamer1.0-plugins-base \
    rtspsrc:gstreamer1.0-plugins-good \
    rtph264pay:gstreamer1.0-plugins-good \
    rtph265pay:gstreamer1.0-plugins-good \
    rtpjpegpay:gstreamer1.0-plugins-good \
    rtpopuspay:gstreamer1.0-plugins-good \
    rtpmp4gpay:gstreamer1.0-plugins-good \
    alawenc:gstreamer1.0-plugins-good \
    rtppcmapay:gstreamer1.0-plugins-good \
    jpegenc:gstreamer1.0-plugins-good \
    x264enc:gstreamer1.0-plugins-ugly \
    x265enc:gstreamer1.0-plugins-bad \
    mpegtsmux:gstreamer1.0-plugins-bad \
    tsparse:gstreamer1.0-plugins-bad \
    h264parse:gstreamer1.0-plugins-bad \
    aacparse:gstreamer1.0-plugins-good \
    multifilesrc:gstreamer1.0-plugins-good \
    rtpmp2tpay:gstreamer1.0-plugins-good \
    avdec_h264:gstreamer1.0-libav; do
    element=${pair%%:*}
    package=${pair#*:}
    have_element "$element" || need "$package" "GStreamer element $element missing"
  done
  # Any AAC encoder will do: avenc_aac (gstreamer1.0-libav) is the usual one.
  if ! have_element avenc_aac && ! have_element voaacenc && ! have_element fdkaacenc; then
    need gstreamer1.0-libav "no GStreamer AAC encoder (avenc_aac, voaacenc or fdkaacenc)"
  fi
}

check_tools
if ((${#missing_packages[@]} > 0)); then
  printf 'test.sh: %s\n' "${problems[@]}" >&2
  install=(apt-get install -y --no-install-recommends "${missing_packages[@]}")
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "test.sh: install the missing tools, then run again:" >&2
    echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive ${install[*]}" >&2
    exit 1
  fi
  echo "+ apt-get update"
  apt-get update
  echo "+ DEBIAN_FRONTEND=noninteractive ${install[*]}"
  DEBIAN_FRONTEND=noninteractive "${install[@]}"
  check_tools
  if ((${#missing_packages[@]} > 0)); then
    printf 'test.sh: still missing after install: %s\n' "${problems[@]}" >&2
    exit 1
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo not found (install Rust: https://rustup.rs)" >&2
  exit 1
fi

# Style and lints before any test: a commit that does not pass them is not green.
echo "+ cargo fmt --all --check"
if ! cargo fmt --all --check; then
  echo "test.sh: FAILED: the code is not rustfmt-formatted; run \`cargo fmt --all\` and commit the result" >&2
  exit 1
fi
echo "+ cargo clippy --workspace --all-targets --locked -- -D warnings"
if ! cargo clippy --workspace --all-targets --locked -- -D warnings; then
  echo "test.sh: FAILED: clippy reported warnings (listed above); fix them (or allow one with a reason) and run again" >&2
  exit 1
fi

export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
status=0
fuzz_build=
static_build=
# A process and all its descendants, parents first.
descendants() { # descendants <pid>
  local child
  echo "$1"
  for child in $(pgrep -P "$1" 2>/dev/null); do descendants "$child"; done
}
# Ends a background build and waits for it: every process under it, down to
# the compilers (`cargo fuzz` runs `cargo build`, which runs rustc: stopping
# only the script's children left a build running on into the next run).
stop_build() { # stop_build <pid>
  local p
  [[ -n "$1" ]] || return 0
  for p in $(descendants "$1"); do kill -STOP "$p" 2>/dev/null || true; done
  for p in $(descendants "$1"); do kill -TERM "$p" 2>/dev/null || true; done
  for p in $(descendants "$1"); do kill -CONT "$p" 2>/dev/null || true; done
  wait "$1" 2>/dev/null || true
}
# Waits for a build started in the background at the lowest priority. On a
# busy machine it may have had almost no CPU while the tests ran: as root it
# is raised to normal priority first (cargo first, so that the compilers it
# starts from then on inherit it); otherwise it goes on as it is.
finish_build() { # finish_build <pid>
  local p
  [[ -n "$1" ]] || return 0
  if ((EUID == 0)); then
    for p in $(descendants "$1"); do renice -n 0 -p "$p" >/dev/null 2>&1 || true; done
  fi
  wait "$1"
}
fail() { # fail <what failed>
  echo "test.sh: FAILED: $*" >&2
  stop_build "$static_build"
  stop_build "$fuzz_build"
  exit 1
}

runner="${TEST_RUNNER:-}"
if [[ -z "$runner" ]]; then
  if cargo nextest --version >/dev/null 2>&1; then runner=nextest; else runner=cargo; fi
fi
if [[ "$runner" != nextest && "$runner" != cargo ]]; then
  echo "test.sh: TEST_RUNNER must be nextest or cargo, not $runner" >&2
  exit 2
fi

if (($# > 0)); then
  # Some tests, as asked (without --workspace, which would override -p): no
  # background builds (tests/packaging.rs builds the static binary itself).
  if [[ "$runner" == nextest ]]; then
    cmd=(cargo nextest run --locked --no-tests=warn "$@")
  else
    cmd=(cargo test --locked "$@" -- --test-threads=2)
  fi
  echo "+ ${cmd[*]}"
  "${cmd[@]}" || fail "exit $?; end-to-end process logs: target/e2e-logs/"
  exit 0
fi

# The whole suite. Build the tests first; then the static binary
# (STATIC_PROFILE, for tests/packaging.rs) and the fuzz targets build in the
# background at the lowest priority while the tests run (the end-to-end tests
# mostly wait for real-time media, and never wait for these builds); what is
# left of them when the tests are done finishes at normal priority.
echo "+ cargo test --workspace --locked --no-run"
cargo test --workspace --locked --no-run || exit $?
mkdir -p target
echo "+ nice -n 19 scripts/build-static.sh > target/static-build.log &"
nice -n 19 scripts/build-static.sh >target/static-build.log 2>&1 &
static_build=$!
echo "+ FUZZ_SMOKE_PHASE=build nice -n 19 scripts/fuzz-smoke.sh > target/fuzz-smoke-build.log &"
FUZZ_SMOKE_PHASE=build nice -n 19 scripts/fuzz-smoke.sh >target/fuzz-smoke-build.log 2>&1 &
fuzz_build=$!

if [[ "$runner" == nextest ]]; then
  # nextest does not run doctests: they run here (none so far, but one added
  # later is not silently skipped).
  echo "+ cargo test --workspace --locked --doc"
  cargo test --workspace --locked --doc || fail "doctests (exit $?)"
  # Every test but the packaging ones, which need the static binary.
  cmd=(cargo nextest run --workspace --locked -E 'not binary(packaging)')
  echo "+ ${cmd[*]}"
  "${cmd[@]}" || status=$?
  echo "+ wait for the static build (target/static-build.log)"
  finish_build "$static_build" || fail "building the static binary (target/static-build.log)"
  static_build=
  cmd=(cargo nextest run --workspace --locked -E 'binary(packaging)')
  echo "+ ${cmd[*]}"
  "${cmd[@]}" || status=$?
else
  # One test binary after the other; tests/packaging.rs waits for the static
  # build's lock on target/<host triple>/$STATIC_PROFILE and finds it fresh.
  cmd=(cargo test --workspace --locked -- --test-threads=2)
  echo "+ ${cmd[*]}"
  "${cmd[@]}" || status=$?
fi
if ((status != 0)); then
  fail "exit $status; end-to-end process logs: target/e2e-logs/"
fi

# The fuzz targets (fuzz/), a few seconds each from their seeds, skipped with a
# message where no nightly toolchain is installed (scripts/fuzz-smoke.sh;
# about 1 minute, 2 with a cold build).
build_status=0
echo "+ wait for the fuzz targets' build (target/fuzz-smoke-build.log)"
finish_build "$fuzz_build" || build_status=$?
fuzz_build=
cat target/fuzz-smoke-build.log
if ((build_status != 0)); then
  echo "test.sh: building the fuzz targets FAILED (exit $build_status)" >&2
  exit "$build_status"
fi
echo "+ FUZZ_SMOKE_PHASE=run scripts/fuzz-smoke.sh"
FUZZ_SMOKE_PHASE=run scripts/fuzz-smoke.sh || status=$?
if ((status != 0)); then
  echo "test.sh: fuzz smoke run FAILED (exit $status); crashes in fuzz/artifacts/" >&2
fi
exit "$status"
