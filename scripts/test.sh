#!/usr/bin/env bash
# Set up, build and run every csumfix test, as root:  scripts/test.sh
#   --quick      fewer generated differential cases (10,000 instead of 200,000)
#   --asan       build with ASan+UBSan into build-asan/ and run the tests there
#   --vm         then boot every kernel of vmtests/kernels.txt under QEMU and test there (slow)
# Environment: CSUMFIX_DIFF_SEED replays a differential run; CSUMFIX_DIFF_CASES sets its size;
#   CSUMFIX_FUZZ_SECONDS sets the libFuzzer run (default 60).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
source "$top/scripts/lib.sh"
csf_need_root

quick=0 asan=0 vm=0
for a in "$@"; do
  case $a in
    --quick) quick=1 ;;
    --asan) asan=1 ;;
    --vm) vm=1 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option $a (see --help)" >&2; exit 2 ;;
  esac
done

"$top/scripts/deps.sh"
csf_ensure_bpffs
build=$top/build
extra=()
if [[ $asan == 1 ]]; then build=$top/build-asan; extra=(-DCSUMFIX_SANITIZE=ON); fi
CSUMFIX_BUILD_DIR=$build "$top/scripts/build.sh" "${extra[@]}"

[[ $quick == 1 ]] && export CSUMFIX_DIFF_CASES=${CSUMFIX_DIFF_CASES:-10000}
export CSUMFIX_BIN=$build/userspace/csumfix
cd "$build"
ctest --output-on-failure --timeout 1500
# The flavour packagers build: Release with Debian's hardening flags (dpkg-buildflags), no
# -Werror, only what is installed. It must build; its warnings are listed, not fatal.
rel=$top/build-release
rel_start=$(date +%s)
(eval "$(dpkg-buildflags --export=sh)"
 cmake -S "$top" -B "$rel" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCSUMFIX_BUILD_TESTS=OFF \
   -DCSUMFIX_BUILD_BENCH=OFF >/dev/null
 ninja -C "$rel" csumfix csumfix_docs > "$rel/build.log" 2>&1) \
  || { tail -50 "$rel/build.log" >&2; echo "test.sh: the Release build failed" >&2; exit 1; }
"$rel/userspace/csumfix" --version
echo "test.sh: Release build (dpkg-buildflags, no -Werror) ok in $(( $(date +%s) - rel_start )) s;" \
     "$(grep -c 'warning:' "$rel/build.log" || true) compiler warnings"
# Bounded libFuzzer run on the reference (clang-19 build in build-fuzz/; docs/FUZZING.md).
"$top/tests/fuzz/run_fuzz.sh" --time "${CSUMFIX_FUZZ_SECONDS:-60}"
# The kernel matrix (vmtests/run.sh, docs/KERNELS.md), with the binaries just tested.
# Two VMs at once by default (each QEMU is one single-threaded TCG host thread).
if [[ $vm == 1 ]]; then
  "$top/vmtests/run.sh" --no-build --build-dir "$build" --jobs "${CSUMFIX_VM_JOBS:-2}"
fi
