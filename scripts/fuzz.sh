#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 under ASan + UBSan (single-threaded library) and fuzzes them for a fixed
# time, each from its committed seed corpus (new inputs go to scratch copies, not the repo):
#   simdnorm_fuzz_api    batch norm's C API               tests/fuzz/corpus
#   simdnorm_fuzz_norms  LayerNorm, RMSNorm, GroupNorm    tests/fuzz/corpus_norms
#
#   scripts/fuzz.sh [SECONDS]      default 60, split evenly over the targets and the three ISA paths
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
seconds="${1:-60}"

ensure_packages "${SIMDNORM_BUILD_PACKAGES[@]}" clang-14 libclang-rt-14-dev

build_dir=build-fuzz
targets=(api norms)
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DSIMDNORM_FUZZ=ON -DSIMDNORM_SANITIZE=ON -DSIMDNORM_OPENMP=OFF \
  -DSIMDNORM_BUILD_TESTS=OFF -DSIMDNORM_BUILD_BENCHMARKS=OFF -DSIMDNORM_INSTALL=OFF
cmake --build "$build_dir" -j "$(nproc)" --target "${targets[@]/#/simdnorm_fuzz_}"

# Every target gets an equal share of the time on every ISA path (at least a second).
share=$(( (seconds + 5) / 6 ))
[ "$share" -ge 1 ] || share=1
for target in "${targets[@]}"; do
  seeds=tests/fuzz/corpus
  [ "$target" = api ] || seeds="tests/fuzz/corpus_$target"
  work="$build_dir/corpus_$target"
  mkdir -p "$work"
  cp -n "$seeds"/* "$work"/ 2>/dev/null || true
  for isa in avx512 avx2 sse2; do
    echo "fuzzing simdnorm_fuzz_$target on the $isa path for ${share}s"
    log="$build_dir/fuzz-$target-$isa.log"
    SIMDNORM_MAX_ISA=$isa "$build_dir/tests/fuzz/simdnorm_fuzz_$target" -max_total_time="$share" -max_len=4096 \
      -artifact_prefix="$build_dir/$target-" -print_final_stats=1 "$work" > "$log" 2>&1 ||
      { tail -n 40 "$log"; echo "fuzzing simdnorm_fuzz_$target failed on the $isa path" >&2; exit 1; }
    tail -n 3 "$log"
  done
done
echo "fuzzing: no failure in ${seconds}s"
