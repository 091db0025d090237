#!/usr/bin/env bash
# Configure and build csumfix into build/ (or $CSUMFIX_BUILD_DIR). Extra args go to cmake.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${CSUMFIX_BUILD_DIR:-$top/build}
# csumfix's own builds treat warnings as errors (a consumer's plain cmake build does not).
cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=${CSUMFIX_BUILD_TYPE:-RelWithDebInfo} \
  -DCSUMFIX_WERROR=ON "$@" >/dev/null
ninja -C "$build"
