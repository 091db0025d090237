#!/usr/bin/env bash
# Build the libFuzzer target (clang-19, ASan+UBSan, build-fuzz/) and run it for a bounded time.
#   tests/fuzz/run_fuzz.sh [--time SECONDS] [--corpus DIR] [--build DIR]
#     --time    how long to fuzz (default 60; docs/FUZZING.md has the 1-hour command)
#     --corpus  the working corpus directory, kept between runs (default BUILD/corpus)
#     --build   the fuzz build directory (default build-fuzz at the top of the tree)
# Fails (exit 1) when the fuzzer finds a crash, a sanitizer report or a broken invariant; the
# input is left in BUILD/artifacts/ (replay: BUILD/tests/fuzz/refcsum_fuzz FILE).
# Needs clang-19 and libclang-rt-19-dev (scripts/deps.sh installs them; scripts/test.sh runs it).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=60 build=$top/build-fuzz corpus=
while [[ $# -gt 0 ]]; do
  case $1 in
    --time) secs=$2; shift 2 ;;
    --corpus) corpus=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "run_fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
corpus=${corpus:-$build/corpus}
for tool in clang++-19 cmake ninja; do
  command -v "$tool" >/dev/null || {
    echo "run_fuzz.sh: $tool not found; run scripts/deps.sh as root first" >&2; exit 1; }
done
rt=$(clang++-19 -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a
[[ -f $rt ]] || { echo "run_fuzz.sh: libFuzzer runtime $rt missing; install libclang-rt-19-dev (scripts/deps.sh)" >&2; exit 1; }

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$top" -B "$build" -G Ninja -DCSUMFIX_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-19 -DCMAKE_C_COMPILER=clang-19 "${launcher[@]}" >/dev/null
ninja -C "$build" refcsum_fuzz make_seed_corpus

# Seeds from the test generator (deterministic), regenerated each run.
rm -rf "$build/seed"
"$build/tests/fuzz/make_seed_corpus" "$build/seed" 500 1
mkdir -p "$corpus" "$build/artifacts"
before=$(find "$build/artifacts" -type f | wc -l)
log=$build/fuzz-last.log
echo "run_fuzz.sh: fuzzing for ${secs}s, corpus $corpus, log $log"
set +e
"$build/tests/fuzz/refcsum_fuzz" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$build/artifacts/" "$corpus" "$build/seed" >"$log" 2>&1
rc=$?
set -e
after=$(find "$build/artifacts" -type f | wc -l)
grep -E 'DONE|^stat::' "$log" || true
if [[ $rc -ne 0 || $after -ne $before ]]; then
  echo "run_fuzz.sh: FAILED (exit $rc): the fuzzer found a problem; tail of $log:" >&2
  tail -40 "$log" >&2
  ls -t "$build/artifacts" | head -5 >&2
  exit 1
fi
echo "run_fuzz.sh: ok, no crash in ${secs}s"
