#!/usr/bin/env bash
# Cross-builds fedgap for aarch64 Linux (engine, CPU backend, FL, CLI and tests; no CUDA) with
# Debian's cross compiler, then runs the fast CPU suites under qemu user-mode emulation.
#   scripts/test-aarch64.sh            the fast suites (ctest -L cpu -LE slow)
#   scripts/test-aarch64.sh -R core    any ctest selection instead
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --aarch64

sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)

# Criterion (and its nanomsg) for arm64 cannot be installed beside the native packages: unpack
# them into a folder of their own, once.
deps=$PWD/build-aarch64-deps
if [[ ! -e $deps/usr/lib/aarch64-linux-gnu/libcriterion.so ]]; then
  rm -rf "$deps" && mkdir -p "$deps/debs"
  (cd "$deps/debs" && apt-get download libcriterion3:arm64 libcriterion-dev:arm64 libnanomsg5:arm64 2>/dev/null)
  for d in "$deps"/debs/*.deb; do dpkg -x "$d" "$deps"; done
  # Point the pkg-config file at the folder; fedgap links Criterion dynamically, so the static-only
  # requirements (boxfort, libgit2, ... without arm64 .pc files here) are dropped.
  sed -i -e "s|^prefix=/usr\$|prefix=$deps/usr|" -e '/^Requires.private:/d' -e '/^Libs.private:/d' \
    "$deps/usr/lib/aarch64-linux-gnu/pkgconfig/criterion.pc"
fi
export FEDGAP_AARCH64_DEPS=$deps

# Test programs start copies of themselves (Criterion): the kernel must hand aarch64 programs to
# qemu (binfmt_misc).
if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
  [[ -e /proc/sys/fs/binfmt_misc/register ]] ||
    "${sudo_cmd[@]}" mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  "${sudo_cmd[@]}" update-binfmts --enable qemu-aarch64 || true
  [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || {
    echo "test-aarch64: cannot register qemu-aarch64 with binfmt_misc (needs root on the host, or a" \
      "privileged container)" >&2
    exit 1
  }
fi

# The toolchain is fixed when the folder is first configured (CMake ignores it afterwards).
toolchain=()
[[ -e build-aarch64/CMakeCache.txt ]] || toolchain=(-DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake)
FEDGAP_BUILD_TYPE=Release scripts/build.sh build-aarch64 "${toolchain[@]}" -DFEDGAP_CUDA=OFF
cd build-aarch64
export LD_LIBRARY_PATH=$deps/usr/lib/aarch64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [[ $# -eq 0 ]]; then set -- -L cpu -LE slow; fi
ctest --output-on-failure -j "$(nproc)" "$@"
