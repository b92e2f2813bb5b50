#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, and trains the default `cnn`
# on Fashion-MNIST (the Debian package dataset-fashion-mnist) for a few epochs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
exec build/fedgap train --model cnn --dataset fashion-mnist --epochs "${EPOCHS:-3}" --batch 64 \
  --lr 0.02 --momentum 0.9 --weight-decay 5e-4 --seed 1 "$@"
