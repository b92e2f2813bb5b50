#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, and runs the quickstart
# comparison (configs/quickstart.yaml): memory-constrained FL on Fashion-MNIST (the Debian package
# dataset-fashion-mnist) with the cnn, several methods on the same clients, and a table of final
# accuracy, largest client memory and wall time. Extra arguments go to `fedgap run`
# (e.g. --set rounds=5, --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
exec build/fedgap run configs/quickstart.yaml "$@"
