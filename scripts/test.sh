#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs the whole test suite.
#   scripts/test.sh            all tests (labels cpu, slow; mpi and cuda where compiled)
#   scripts/test.sh -L cpu     any ctest selection
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
cd build
ctest --output-on-failure -j "$(nproc)" "$@"
