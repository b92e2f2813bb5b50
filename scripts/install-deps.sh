#!/usr/bin/env bash
# Installs the Debian packages fedgap needs, only those that are missing.
#   scripts/install-deps.sh            build + test + main-job packages
#   scripts/install-deps.sh --bench    also PyTorch (bench/ comparisons)
#   scripts/install-deps.sh --aarch64  also the aarch64 cross compiler, the arm64 libraries (the
#                                      MQTT transport's included) and qemu user-mode emulation
#                                      (scripts/test-aarch64.sh)
#   scripts/install-deps.sh --fuzz     also clang with its libFuzzer runtime and OpenMP (scripts/fuzz.sh)
set -euo pipefail

sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)

pkgs=(build-essential cmake pkg-config git
      libopenblas-openmp-dev zlib1g-dev libcriterion-dev libyaml-dev libcjson-dev gnuplot-nox
      dataset-fashion-mnist openmpi-bin libopenmpi-dev
      mosquitto libmosquitto-dev libssl-dev openssl)
for arg in "$@"; do
  case "$arg" in
    --bench) pkgs+=(python3-torch python3-numpy) ;;
    --aarch64)
      # Criterion for arm64 conflicts with the native one: scripts/test-aarch64.sh unpacks it.
      pkgs+=(gcc-aarch64-linux-gnu qemu-user qemu-user-binfmt binfmt-support libc6-dev:arm64
             libopenblas-openmp-dev:arm64 zlib1g-dev:arm64 libyaml-dev:arm64 libcjson-dev:arm64
             libgomp1:arm64 libgit2-1.5:arm64 libffi8:arm64 libmosquitto-dev:arm64 libssl-dev:arm64)
      if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        "${sudo_cmd[@]}" dpkg --add-architecture arm64
      fi
      ;;
    --fuzz) pkgs+=(clang libclang-rt-dev libomp-dev) ;;
    *) echo "install-deps: unknown option '$arg' (expected --bench, --aarch64 or --fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

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
