#!/usr/bin/env bash
# Installs what is missing of the build dependencies (apt-get, as root), configures, builds, and runs the whole test
# suite with ctest. Exits non-zero on any failure.
#
#   scripts/test.sh              Release build in build/, all tests but those labelled "large"
#   scripts/test.sh --sanitize   the same under AddressSanitizer + UndefinedBehaviorSanitizer, in build-asan/
#   scripts/test.sh --large      also the tests labelled "large" (tensors of more than 2^31 elements)
# Extra arguments after -- go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

build_dir=build
cmake_args=(-DCMAKE_BUILD_TYPE=Release)
ctest_args=(-LE large)
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize)
      build_dir=build-asan
      cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIMDNORM_SANITIZE=ON -DSIMDNORM_BUILD_BENCHMARKS=OFF)
      # The out-of-memory test asks for an impossible allocation: let it fail as it would without ASan.
      export ASAN_OPTIONS="allocator_may_return_null=1:abort_on_error=1:${ASAN_OPTIONS:-}"
      export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
      ;;
    --large) ctest_args=() ;;
    --) shift; break ;;
    *) echo "usage: scripts/test.sh [--sanitize] [--large] [-- ctest args]" >&2; exit 2 ;;
  esac
  shift
done

# Open MPI (mpirun and the C library) for simdnorm::mpi and its tests, labelled mpi.
ensure_packages "${SIMDNORM_BUILD_PACKAGES[@]}" libgtest-dev libbenchmark-dev pkg-config python3 \
  openmpi-bin libopenmpi-dev

cmake -S . -B "$build_dir" "${cmake_args[@]}"
cmake --build "$build_dir" -j "$(nproc)"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" "${ctest_args[@]}" "$@"
