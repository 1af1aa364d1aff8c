#!/usr/bin/env bash
# Long fuzzing runs: every cargo-fuzz target of fuzz/ in turn, one at a time,
# each for the given number of seconds, from its growing corpus
# (fuzz/corpus/<target>/, not committed) and its committed seeds
# (fuzz/seeds/<target>/). Prints the executions and crashes of each target.
#
#   scripts/fuzz-long.sh 600                  # 10 minutes per target
#   scripts/fuzz-long.sh 3600 handler sdp     # only these targets
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# Crashes land in fuzz/artifacts/<target>/; replay one with
#   cd fuzz && cargo +nightly fuzz run <target> artifacts/<target>/<file>
# Logs: fuzz/target/fuzz-logs/<target>.log. Exits 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

if [[ $# -lt 1 || ! "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 <seconds-per-target> [target...]" >&2
  exit 2
fi
seconds=$1
shift

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz-long: needs a nightly toolchain (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-long: needs cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
  exit 2
fi

if (($# > 0)); then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# One build of every target (release, debug assertions and overflow checks on,
# as `cargo fuzz run` builds them), then the binaries are run directly.
echo "+ cargo +nightly fuzz build"
cargo +nightly fuzz build
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin=target/$triple/release
mkdir -p target/fuzz-logs

crashed=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  seeds=()
  [[ -d "seeds/$t" ]] && seeds=("seeds/$t")
  log=target/fuzz-logs/$t.log
  before=$(find "artifacts/$t" -type f | wc -l)
  echo "+ $t: ${seconds}s"
  status=0
  "$bin/$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$t/" "corpus/$t" "${seeds[@]}" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  after=$(find "artifacts/$t" -type f | wc -l)
  found=$((after - before))
  if ((status != 0)); then
    crashed=1
    reason=$(grep -m1 -E "panicked at|ERROR: libFuzzer|SUMMARY:" "$log" || true)
    summary+=("$(printf '%-18s %12s execs  CRASH (exit %d, %d new artifact(s)): %s' "$t" "${execs:-?}" "$status" "$found" "$reason")")
  else
    summary+=("$(printf '%-18s %12s execs  0 crashes' "$t" "${execs:-?}")")
  fi
done

echo
echo "fuzz-long: ${seconds}s per target"
printf '%s\n' "${summary[@]}"
if ((crashed)); then
  echo "fuzz-long: crashes in fuzz/artifacts/; logs in fuzz/target/fuzz-logs/" >&2
  exit 1
fi
