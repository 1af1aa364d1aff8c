#!/usr/bin/env bash
# The fan-out benchmark of rtsp-proxy: one command, figures on stdout.
#
#   scripts/bench.sh                                  # 200 UDP clients, 20 s measured
#   scripts/bench.sh --clients 200 --transport both --floor --duration 20
#   scripts/bench.sh --clients 50,100,200,400         # find the knee
#   scripts/bench.sh --clients 100,250,500 --transport udp,webrtc --floor   # RTSP UDP vs WHEP viewers
#   scripts/bench.sh --a '<proxy command>' --b '<other proxy command>'   # A/B
#   scripts/bench.sh --help                           # every option
#
# It builds the release binaries (rtsp-proxy, rtsp-bench), checks that taskset
# (util-linux) is there, and runs `target/release/rtsp-bench run` with the
# arguments given. That starts a synthetic H.264 RTSP source, the proxy pinned
# to CPU 0 and the clients (plus the source and the CPU/RSS sampler) on CPU 1,
# all on 127.0.0.1, and stops every process it started when it ends or on
# Ctrl-C. Logs of each process: target/bench-logs/. See README.md "Benchmark".
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "bench.sh: cargo not found (install Rust: https://rustup.rs)" >&2
  exit 1
fi
if ! command -v taskset >/dev/null 2>&1; then
  echo "bench.sh: taskset not found; install util-linux (apt-get install util-linux)" >&2
  exit 1
fi
if [[ "$(nproc)" -lt 2 ]]; then
  echo "bench.sh: warning: fewer than 2 CPUs; the proxy and the clients will share one" >&2
fi

cargo build --release -p rtsp-proxy -p rtsp-bench >&2

exec target/release/rtsp-bench run "$@"
