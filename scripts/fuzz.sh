#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/, clang with ASan and UBSan) and runs each in turn.
#   scripts/fuzz.sh [SECONDS] [HARNESS...]    default: 60 seconds each, every harness
# Each harness starts from its seed corpus (fuzz/corpus/NAME, read only) and the inputs it found
# before (build-fuzz/corpus/NAME, where new ones go); a crash, leak, hang (over 10 s) or broken
# invariant leaves its input in build-fuzz/artifacts/NAME/ and makes the script fail. Copy such
# an input into fuzz/regressions/NAME/ once fixed: tests/cpu/test_fuzz_replay.c replays it.
# Prints per harness: executions, coverage (edges), features, corpus size, seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
all=(config safetensors checkpoint idx cifar stl10 svhn partition)
if [[ $# -gt 0 ]]; then harnesses=("$@"); else harnesses=("${all[@]}"); fi

scripts/install-deps.sh --fuzz
dir=build-fuzz
CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DFEDGAP_FUZZ=ON -DFEDGAP_CUDA=OFF \
  -DFEDGAP_BUILD_TESTS=OFF >/dev/null
targets=()
for h in "${harnesses[@]}"; do targets+=("fuzz_$h"); done
cmake --build "$dir" -j "$(nproc)" --target "${targets[@]}"

# Inputs up to this size (bytes): large enough for a few records of each format.
declare -A max_len=([config]=16384 [safetensors]=16384 [checkpoint]=65536 [idx]=8192 [cifar]=16384
                    [stl10]=65536 [svhn]=16384 [partition]=16384)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
printf '%-12s %12s %8s %8s %8s %8s\n' harness executions cov ft corpus seconds
for h in "${harnesses[@]}"; do
  mkdir -p "$dir/corpus/$h" "$dir/artifacts/$h"
  log="$dir/fuzz-$h.log"
  start=$(date +%s)
  status=0
  "$dir/fuzz/fuzz_$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len="${max_len[$h]}" -print_final_stats=1 -artifact_prefix="$dir/artifacts/$h/" \
    "$dir/corpus/$h" "fuzz/corpus/$h" >"$log" 2>&1 || status=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  printf '%-12s %12s %8s %8s %8s %8s\n' "$h" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$took"
  if [[ $status -ne 0 ]]; then
    failed+=("$h")
    echo "fuzz_$h failed (status $status): see $log and $dir/artifacts/$h/" >&2
    grep -E 'ERROR|SUMMARY|broken invariant|runtime error' "$log" | head -5 >&2 || true
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: ${failed[*]} found a problem" >&2
  exit 1
fi
