#!/usr/bin/env bash
# Long fuzzing runs: every cargo-fuzz target of fuzz/ (or the ones named), each
# for a time or a number of executions, from its growing corpus
# (fuzz/corpus/<target>/, not committed) and its committed seeds
# (fuzz/seeds/<target>/). Prints the executions and crashes of each target.
#
#   scripts/fuzz-long.sh 600                          # 10 minutes per target
#   scripts/fuzz-long.sh 3600 handler sdp             # only these targets
#   scripts/fuzz-long.sh --runs 10000000 --jobs 2 --sanitizer none
#                                                     # 10 M executions each, two
#                                                     # targets at a time, no ASan
#
# Options (before the targets):
#   --runs N        stop each target after N executions (libFuzzer -runs=N)
#                   instead of after <seconds>
#   --jobs J        run J targets at a time (default 1; the machines have 2
#                   cores)
#   --sanitizer S   address (default, as `cargo fuzz run`) or none: about 3 to 7
#                   times faster; the fuzzed crates have no unsafe code of
#                   their own (`rtsp` forbids it), and debug assertions and
#                   overflow checks stay on either way
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# Crashes land in fuzz/artifacts/<target>/; replay one with
#   cd fuzz && cargo +nightly fuzz run <target> artifacts/<target>/<file>
# Logs: fuzz/target/fuzz-logs/<target>.log. Exits 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

usage() {
  echo "usage: $0 [--runs N] [--jobs J] [--sanitizer address|none] [<seconds-per-target>] [target...]" >&2
  exit 2
}

runs=""
jobs=1
sanitizer=address
seconds=""
while (($# > 0)); do
  case "$1" in
    --runs) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage; runs=$2; shift 2 ;;
    --jobs) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || usage; jobs=$2; shift 2 ;;
    --sanitizer) [[ $# -ge 2 && "$2" =~ ^(address|none)$ ]] || usage; sanitizer=$2; shift 2 ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) break ;;
  esac
done
if [[ -z "$runs" ]]; then
  [[ $# -ge 1 && "$1" =~ ^[0-9]+$ ]] || usage
  seconds=$1
  shift
elif [[ $# -ge 1 && "$1" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi

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
# as `cargo fuzz run` builds them), then the binaries are run directly. The
# builds without a sanitizer go to their own folder, so that the smoke run's
# ASan build stays as it is.
target_dir=target
[[ "$sanitizer" == none ]] && target_dir=target/no-sanitizer
echo "+ cargo +nightly fuzz build --sanitizer $sanitizer --target-dir $target_dir"
cargo +nightly fuzz build --sanitizer "$sanitizer" --target-dir "$target_dir"
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin=$target_dir/$triple/release
logs=target/fuzz-logs
mkdir -p "$logs"

limit=()
[[ -n "$seconds" ]] && limit+=("-max_total_time=$seconds")
[[ -n "$runs" ]] && limit+=("-runs=$runs")

# One target: its result line goes to $logs/<target>.result.
run_target() {
  local t=$1 log=$logs/$1.log before after status=0 execs reason
  mkdir -p "corpus/$t" "artifacts/$t"
  local seeds=()
  [[ -d "seeds/$t" ]] && seeds=("seeds/$t")
  before=$(find "artifacts/$t" -type f | wc -l)
  echo "+ $t: ${limit[*]}"
  "$bin/$t" "${limit[@]}" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$t/" "corpus/$t" "${seeds[@]}" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  after=$(find "artifacts/$t" -type f | wc -l)
  if ((status != 0)); then
    reason=$(grep -m1 -E "panicked at|ERROR: libFuzzer|SUMMARY:" "$log" || true)
    printf '%-18s %12s execs  CRASH (exit %d, %d new artifact(s)): %s\n' \
      "$t" "${execs:-?}" "$status" "$((after - before))" "$reason" >"$logs/$t.result"
    return 1
  fi
  printf '%-18s %12s execs  0 crashes\n' "$t" "${execs:-?}" >"$logs/$t.result"
}

pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap stop INT TERM

crashed=0
started=$(date +%s)
for t in "${targets[@]}"; do
  rm -f "$logs/$t.result"
  run_target "$t" &
  pids+=("$!")
  # At most $jobs at a time: wait for any one to end before the next.
  while (($(jobs -rp | wc -l) >= jobs)); do
    wait -n || crashed=1
  done
done
while (($(jobs -rp | wc -l) > 0)); do
  wait -n || crashed=1
done

echo
echo "fuzz-long: ${seconds:+${seconds}s }${runs:+$runs runs }per target, sanitizer $sanitizer, $jobs at a time, $(($(date +%s) - started))s"
for t in "${targets[@]}"; do
  cat "$logs/$t.result" 2>/dev/null || printf '%-18s  no result (interrupted?)\n' "$t"
done
if ((crashed)); then
  echo "fuzz-long: crashes in fuzz/artifacts/; logs in fuzz/$logs/" >&2
  exit 1
fi
