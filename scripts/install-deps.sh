#!/usr/bin/env bash
# Installs the Debian packages fedgap needs, only those that are missing.
#   scripts/install-deps.sh            build + test + main-job packages
#   scripts/install-deps.sh --bench    also PyTorch (bench/ comparisons)
set -euo pipefail

pkgs=(build-essential cmake pkg-config git
      libopenblas-openmp-dev zlib1g-dev libcriterion-dev libyaml-dev libcjson-dev gnuplot-nox
      dataset-fashion-mnist openmpi-bin libopenmpi-dev)
if [[ "${1:-}" == "--bench" ]]; then pkgs+=(python3-torch python3-numpy); fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
echo "installing: ${missing[*]}" >&2
"${sudo_cmd[@]}" apt-get update -qq
log=$(mktemp)
if ! DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends \
     "${missing[@]}" >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-deps: apt-get install failed" >&2
  exit 1
fi
rm -f "$log"
