#!/usr/bin/env bash
# Bounded smoke run of every cargo-fuzz target of fuzz/ (a step of
# scripts/test.sh, after `cargo test`): one build of all targets, then each
# target runs its committed seeds (fuzz/seeds/<target>/) and fuzzes on for a
# few seconds from them. A crash fails the step and is kept in
# fuzz/artifacts/<target>/ (replay: cd fuzz && cargo +nightly fuzz run
# <target> artifacts/<target>/<file>). For long runs see scripts/fuzz-long.sh.
#
# Needs a nightly toolchain; without one the step is skipped (exit 0) with a
# message. Without cargo-fuzz it installs it (`cargo install cargo-fuzz
# --locked`, about 2 minutes on 2 cores), or skips when FUZZ_SMOKE_INSTALL=0.
#
#   FUZZ_SMOKE=0                  skip the step
#   FUZZ_SMOKE_SECONDS=5          seconds of fuzzing per target (default 5)
#   FUZZ_SMOKE_INSTALL=0          never install cargo-fuzz, skip instead
#   FUZZ_TARGET_DIR=<dir>         cargo target directory (default fuzz/target)
#   FUZZ_SMOKE_PHASE=build|run    only build (install cargo-fuzz if need be), or
#                                 only run what a build phase built (default: both;
#                                 scripts/test.sh builds while the tests run)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SMOKE_SECONDS:-5}
phase=${FUZZ_SMOKE_PHASE:-all}
skip() {
  echo "fuzz-smoke: SKIPPED: $*"
  exit 0
}

[[ "${FUZZ_SMOKE:-1}" == 0 ]] && skip "FUZZ_SMOKE=0"
if ! cargo +nightly --version >/dev/null 2>&1; then
  skip "no nightly toolchain (rustup toolchain install nightly), so the fuzz targets cannot be built"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  [[ "${FUZZ_SMOKE_INSTALL:-1}" == 0 ]] && skip "cargo-fuzz is not installed (cargo install cargo-fuzz --locked) and FUZZ_SMOKE_INSTALL=0"
  echo "+ cargo install cargo-fuzz --locked"
  cargo install cargo-fuzz --locked
fi

start=$SECONDS
target_dir=${FUZZ_TARGET_DIR:-target}
built=0
if [[ "$phase" != run ]]; then
  # Release with debug assertions and overflow checks, as `cargo fuzz run`
  # builds; one build for all targets, then the binaries run directly.
  echo "+ cargo +nightly fuzz build --target-dir $target_dir"
  cargo +nightly fuzz build --target-dir "$target_dir"
  built=$((SECONDS - start))
  if [[ "$phase" == build ]]; then
    echo "fuzz-smoke: built in ${built}s"
    exit 0
  fi
fi
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin=$target_dir/$triple/release

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mapfile -t targets < <(cargo fuzz list)
passed=0
failed=0
for t in "${targets[@]}"; do
  # A scratch corpus: the smoke run starts from the seeds every time and
  # leaves nothing behind but crashes.
  mkdir -p "$work/$t" "artifacts/$t"
  seeds=()
  [[ -d "seeds/$t" ]] && seeds=("seeds/$t")
  log=$work/$t.log
  status=0
  "$bin/$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$t/" "$work/$t" "${seeds[@]}" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if ((status == 0)); then
    passed=$((passed + 1))
    printf 'fuzz-smoke: %-18s ok, %s executions in %ss\n' "$t" "${execs:-?}" "$seconds"
  else
    failed=$((failed + 1))
    printf 'fuzz-smoke: %-18s FAILED (exit %d); last lines of its log:\n' "$t" "$status"
    grep -v '^#' "$log" | tail -40 | sed 's/^/    /'
  fi
done
echo "fuzz-smoke: build ${built}s, total $((SECONDS - start))s"
echo "fuzz-smoke: $passed passed, $failed failed"
((failed == 0))
