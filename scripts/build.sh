#!/usr/bin/env bash
# Configure and build csumfix into build/ (or $CSUMFIX_BUILD_DIR). Extra args go to cmake.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${CSUMFIX_BUILD_DIR:-$top/build}
cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=${CSUMFIX_BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
ninja -C "$build"
