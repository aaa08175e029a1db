#!/usr/bin/env bash
# What simdnorm is worth on this machine: installs what is missing (apt-get, as root), builds the benchmark suite in
# Release (build-bench/), runs it and prints tables of simdnorm (batch norm, LayerNorm, RMSNorm, GroupNorm) against
# its naive reference, oneDNN, PyTorch and a streaming baseline. Leaves in bench-results/: results.json (Google
# Benchmark's raw JSON), console.txt, report.md and throughput_*.png plots. Where Open MPI is installed (it installs
# it), report.md ends with the cost of synchronising batch norm across two processes (bench/mpi).
#
#   scripts/bench.sh                 default grid: batch norm on 3 ResNet-50 layers at N = 1..64, 6 more at N = 1
#                                    and 32, a 1024-wide N x C matrix; LayerNorm and RMSNorm on 768, 1024 and 4096
#                                    columns at 1..16384 rows; GroupNorm on 3 UNet layers (about 25 minutes on 2 cores)
#   scripts/bench.sh --quick         a reduced set (a few minutes)
#   scripts/bench.sh --full          more layers and sizes of each
#
#   --threads N        threads of simdnorm, oneDNN, PyTorch and the streaming baseline (default: every core)
#   --filter REGEX     only the benchmarks whose name matches, e.g. 'C:256/HW:56' or 'nhwc|stream'; names are
#                      <op>/<layout>/<impl>/C:<c>/HW:<h=w>/N:<n> and stream/flat/stream/... for the baseline
#   --repetitions K    rounds over the whole grid; each benchmark is reported as its median (default 3)
#   --min-time S       minimum time of each benchmark in each round, in seconds (default 0.1; 0.05 with --quick)
#   --no-onednn        build without the oneDNN comparison (and do not install libdnnl-dev)
#   --no-torch         build without the PyTorch comparison (and do not install libtorch-dev)
#   --no-mpi           skip the synchronised batch norm benchmark (and do not install Open MPI)
#   --no-build         run the existing build-bench/ as it is
#   --out DIR          where to write the results (default bench-results)
#   -- ARGS            passed to simdnorm_bench as they are (see build-bench/bench/simdnorm_bench --help)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; }

command_line="scripts/bench.sh${*:+ $*}"
grid=default
threads=""
filter=""
repetitions=3
min_time=""
onednn=1
torch=1
mpi=1
build=1
out_dir=bench-results
passthrough=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) grid=quick ;;
    --full) grid=full ;;
    --threads) threads="${2:?--threads needs a number}"; shift ;;
    --threads=*) threads="${1#*=}" ;;
    --filter) filter="${2:?--filter needs a regular expression}"; shift ;;
    --filter=*) filter="${1#*=}" ;;
    --repetitions) repetitions="${2:?--repetitions needs a number}"; shift ;;
    --repetitions=*) repetitions="${1#*=}" ;;
    --min-time) min_time="${2:?--min-time needs seconds}"; shift ;;
    --min-time=*) min_time="${1#*=}" ;;
    --no-onednn) onednn=0 ;;
    --no-torch) torch=0 ;;
    --no-mpi) mpi=0 ;;
    --no-build) build=0 ;;
    --out) out_dir="${2:?--out needs a directory}"; shift ;;
    --out=*) out_dir="${1#*=}" ;;
    -h|--help) usage; exit 0 ;;
    --) shift; passthrough=("$@"); break ;;
    *) echo "scripts/bench.sh: unknown argument '$1'" >&2; usage; exit 2 ;;
  esac
  shift
done
case "$threads" in
  "") threads=$(nproc) ;;
  *[!0-9]*|0) echo "scripts/bench.sh: --threads wants a whole number >= 1, not '$threads'" >&2; exit 2 ;;
esac
case "$repetitions" in
  ""|*[!0-9]*|0) echo "scripts/bench.sh: --repetitions wants a whole number >= 1, not '$repetitions'" >&2; exit 2 ;;
esac
if [ -z "$min_time" ]; then
  if [ "$grid" = quick ]; then min_time=0.05; else min_time=0.1; fi
fi

# --- dependencies ---------------------------------------------------------------------------------------------------
packages=("${SIMDNORM_BUILD_PACKAGES[@]}" libbenchmark-dev gnuplot-nox python3)
# Debian's oneDNN CMake config requires OpenCL's development files, a package it only recommends.
[ "$onednn" = 1 ] && packages+=(libdnnl-dev ocl-icd-opencl-dev)
# libtorch 1.13: its CMake config needs nothing it only recommends. On a fresh Debian 12 it brings 157 packages
# (OpenCV, FFmpeg, Qt and GDAL libraries among them): 117 MB to download, 470 MB installed, 16-30 s here.
[ "$torch" = 1 ] && packages+=(libtorch-dev)
[ "$mpi" = 1 ] && packages+=(openmpi-bin libopenmpi-dev)
ensure_packages "${packages[@]}" || exit 1
# Debian's interpreter, which the report script is written for (standard library only).
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)

# --- build ----------------------------------------------------------------------------------------------------------
build_dir=build-bench
binary="$build_dir/bench/simdnorm_bench"
if [ "$build" = 1 ]; then
  cmake_args=(-DCMAKE_BUILD_TYPE=Release -DSIMDNORM_BUILD_TESTS=OFF -DSIMDNORM_BUILD_BENCHMARKS=ON
              -DCMAKE_DISABLE_FIND_PACKAGE_dnnl=$([ "$onednn" = 1 ] && echo OFF || echo ON)
              -DCMAKE_DISABLE_FIND_PACKAGE_Torch=$([ "$torch" = 1 ] && echo OFF || echo ON)
              -DSIMDNORM_MPI=$([ "$mpi" = 1 ] && echo AUTO || echo OFF))
  mkdir -p "$build_dir"
  log="$build_dir/bench-build.log"
  echo "Building simdnorm_bench (Release) in $build_dir/ ..."
  # simdnorm_bench_mpi exists only where CMake found MPI (bench/mpi is then configured).
  if ! { cmake -S . -B "$build_dir" "${cmake_args[@]}" &&
         cmake --build "$build_dir" -j "$(nproc)" --target simdnorm_bench &&
         { [ "$mpi" = 0 ] || [ ! -f "$build_dir/bench/mpi/Makefile" ] ||
           cmake --build "$build_dir" -j "$(nproc)" --target simdnorm_bench_mpi; }; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "scripts/bench.sh: the build failed; the full log is $log" >&2
    exit 1
  fi
  grep -h "oneDNN\|PyTorch\|simdnorm::mpi" "$log" | sed 's/^-- /  /' || true
elif [ ! -x "$binary" ]; then
  echo "scripts/bench.sh: --no-build, but $binary does not exist" >&2
  exit 1
fi

# --- run ------------------------------------------------------------------------------------------------------------
mkdir -p "$out_dir"
rm -rf "$out_dir/results.json" "$out_dir"/throughput_*.png "$out_dir/plot-data"
# Repetitions are rounds: the whole grid runs K times over, so the measurements of one benchmark are minutes apart
# and a burst of load from another process hits one of them; every round sizes its own iteration count, so such a
# burst cannot stretch a benchmark to many times its minimum time. The report takes the median.
# Every report names the commit it measured ("+changes" when the work tree differs from it).
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo "unknown")
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit+changes"
fi
bench_args=(--grid="$grid" --threads="$threads" --rounds="$repetitions" --benchmark_min_time="$min_time"
            --benchmark_display_aggregates_only=true --benchmark_color=false --benchmark_context=commit="$commit")
# Debian's version of the libtorch the suite was built against (its headers say 1.13.0 for 1.13.1).
torch_package=""
[ "$torch" = 1 ] && torch_package=$(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null || true)
[ -n "$torch_package" ] && bench_args+=(--benchmark_context=torch_package="libtorch-dev $torch_package")
[ -n "$filter" ] && bench_args+=(--benchmark_filter="$filter")
bench_args+=("${passthrough[@]+"${passthrough[@]}"}")

# OpenMP reads its environment at start-up: the thread count goes to simdnorm, oneDNN, PyTorch and the baseline alike.
export OMP_NUM_THREADS="$threads"
if ! listing=$("$binary" "${bench_args[@]}" --benchmark_list_tests=true 2>&1); then
  printf '%s\n' "$listing" >&2
  exit 2
fi
total=$(printf '%s\n' "$listing" | grep -c '/C:' || true)
if [ "$total" -eq 0 ]; then
  echo "scripts/bench.sh: no benchmark matches the filter '$filter'" >&2
  exit 1
fi
echo "Running $total benchmarks (grid $grid, $threads threads, median of $repetitions x ${min_time}s) ..."
read -r load1 _ </proc/loadavg 2>/dev/null || load1=0
if awk -v l="$load1" 'BEGIN { exit !(l >= 0.5) }'; then
  echo "  note: the load average is $load1 before starting: other processes compete for the $(nproc) cores," \
       "expect noisy figures (marked ~ in the tables)"
fi
echo "  Google Benchmark's output goes to $out_dir/console.txt"

# The console output goes to console.txt; the terminal gets a progress line (a line every 10% when it is not a
# tty) and any error as it happens.
start=$(date +%s)
set +e
"$binary" "${bench_args[@]}" --benchmark_out="$out_dir/results.json" --benchmark_out_format=json \
    2>"$out_dir/console.stderr" | tee "$out_dir/console.txt" |
  awk -v total="$total" -v tty="$([ -t 2 ] && echo 1 || echo 0)" -v start="$start" '
    function now() { srand(); return srand() }  # POSIX awk: srand() returns the previous seed, the time of day
    /ERROR OCCURRED/ { printf "%s  %s\n", (tty ? "\r\033[K" : ""), $0 > "/dev/stderr"; fflush("/dev/stderr") }
    /^[a-z_]+\/[a-z]+\/[a-z_]+\/C:/ {
      name = $1; sub(/_(mean|median|stddev|cv)$/, "", name)
      if (name in seen) next
      seen[name] = 1; done++
      sub(/\/(min_time|min_warmup_time|repeats|real_time).*$/, "", name)
      t = now() - start
      if (tty) {
        printf "\r\033[K  %dm%02ds  %d/%d complete  %s", t / 60, t % 60, done, total, name > "/dev/stderr"
      } else if (int(10 * done / total) > int(10 * (done - 1) / total)) {
        printf "  %dm%02ds  %d/%d complete  %s\n", t / 60, t % 60, done, total, name > "/dev/stderr"
      }
      fflush("/dev/stderr")
    }
    END { if (tty) printf "\r\033[K" > "/dev/stderr" }'
status=${PIPESTATUS[0]}
set -e
# The one-off check of every implementation against the reference runs before the benchmarks (bench/check.cpp).
grep -h "check against the reference" "$out_dir/console.stderr" >&2 || true
cat "$out_dir/console.stderr" >>"$out_dir/console.txt"
elapsed=$(( $(date +%s) - start ))

if [ ! -s "$out_dir/results.json" ]; then
  cat "$out_dir/console.stderr" >&2
  rm -f "$out_dir/console.stderr"
  echo "scripts/bench.sh: simdnorm_bench wrote no results (exit status $status)" >&2
  exit 1
fi
rm -f "$out_dir/console.stderr"

# --- report ---------------------------------------------------------------------------------------------------------
"$python" scripts/bench_report.py "$out_dir/results.json" --out "$out_dir" \
  --command "$command_line" --load-after "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null | tr ' ' ',' | sed 's/,/, /g')"
printf 'Benchmarks took %dm%02ds.\n' $((elapsed / 60)) $((elapsed % 60))

# --- synchronised batch norm over MPI: two ranks of one thread each ----------------------------------------------
mpi_binary="$build_dir/bench/mpi/simdnorm_bench_mpi"
if [ "$mpi" = 1 ] && [ -x "$mpi_binary" ] && command -v mpirun >/dev/null 2>&1; then
  echo "Timing batch norm synchronised over MPI (mpirun -np 2, one thread a rank) ..."
  reps=31
  [ "$grid" = quick ] && reps=5
  if table=$(OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
             timeout 600 mpirun --oversubscribe -np 2 "$mpi_binary" --reps "$reps" 2>"$out_dir/mpi.stderr"); then
    printf '\n## Synchronised batch norm over MPI\n\n%s\n' "$table" >>"$out_dir/report.md"
    printf '%s\n' "$table" | grep '^|'
    echo "  (also at the end of $out_dir/report.md)"
    rm -f "$out_dir/mpi.stderr"
  else
    cat "$out_dir/mpi.stderr" >&2
    echo "scripts/bench.sh: the MPI benchmark failed" >&2
    exit 1
  fi
elif [ "$mpi" = 1 ]; then
  echo "  (simdnorm::mpi was not built: no MPI benchmark)"
fi
if [ "$status" -ne 0 ]; then
  echo "scripts/bench.sh: simdnorm_bench exited with status $status (some benchmarks failed; see above)" >&2
  exit "$status"
fi
