#!/usr/bin/env bash
# Builds the libFuzzer target with clang-14 under ASan + UBSan (single-threaded library) and fuzzes the C API for a
# fixed time from the committed seed corpus (tests/fuzz/corpus; new inputs go to a scratch copy, not the repo).
#
#   scripts/fuzz.sh [SECONDS]      default 60
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
seconds="${1:-60}"

ensure_packages "${SIMDNORM_BUILD_PACKAGES[@]}" clang-14 libclang-rt-14-dev

build_dir=build-fuzz
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DSIMDNORM_FUZZ=ON -DSIMDNORM_SANITIZE=ON -DSIMDNORM_OPENMP=OFF \
  -DSIMDNORM_BUILD_TESTS=OFF -DSIMDNORM_BUILD_BENCHMARKS=OFF -DSIMDNORM_INSTALL=OFF
cmake --build "$build_dir" -j "$(nproc)" --target simdnorm_fuzz_api

work="$build_dir/corpus"
mkdir -p "$work"
cp -n tests/fuzz/corpus/* "$work"/ 2>/dev/null || true
# Every ISA path gets a share of the time.
share=$(( (seconds + 2) / 3 ))
for isa in avx512 avx2 sse2; do
  echo "fuzzing the C API on the $isa path for ${share}s"
  SIMDNORM_MAX_ISA=$isa "$build_dir/tests/fuzz/simdnorm_fuzz_api" -max_total_time="$share" -max_len=4096 -artifact_prefix="$build_dir/" \
    -print_final_stats=1 "$work" > "$build_dir/fuzz-$isa.log" 2>&1 || { tail -n 40 "$build_dir/fuzz-$isa.log"; echo "fuzzing failed on the $isa path" >&2; exit 1; }
  tail -n 3 "$build_dir/fuzz-$isa.log"

done
echo "fuzzing: no failure in ${seconds}s"
