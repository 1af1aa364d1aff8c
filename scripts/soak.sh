#!/usr/bin/env bash
# The soak of rtsp-proxy: churning clients, back-end restarts, RSS/fds/CPU over time.
#
#   scripts/soak.sh --duration 3600                   # 1 hour: 200 clients, restart every 600 s
#   scripts/soak.sh --duration 600 --restart-every 120
#   scripts/soak.sh --proxy '<proxy command with {port} and {source}>'
#   scripts/soak.sh --help                            # every option
#
# It builds the release binaries (rtsp-proxy, rtsp-bench) and runs
# `target/release/rtsp-bench soak` with the arguments given: the synthetic
# source, the proxy, 200 clients (UDP and TCP alternately) of which about 2 a
# second leave and are replaced, the source killed and started again on the
# same port every --restart-every seconds, and a line of proxy RSS, open
# descriptors and CPU every --sample seconds. It exits non-zero when the
# descriptors or RSS do not come back to their starting level (within
# --max-fd-growth / --max-rss-growth) once the clients left. Every process it
# starts is stopped at the end and on Ctrl-C. Logs: target/soak-logs/.
# See README.md "Soak".
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "soak.sh: cargo not found (install Rust: https://rustup.rs)" >&2
  exit 1
fi

cargo build --release -p rtsp-proxy -p rtsp-bench >&2

exec target/release/rtsp-bench soak "$@"
