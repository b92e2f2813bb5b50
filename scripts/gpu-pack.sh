#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a GPU machine that cannot build fedgap (no OpenBLAS,
# Criterion, libyaml, cJSON or Fashion-MNIST there; only the CUDA toolkit, its driver and
# PyTorch's pip packages). Run here, on the Debian build machine, from any folder:
#   scripts/gpu-pack.sh [BUILD_DIR]           (default build-gpu; GPU_PACK_LIMIT_MIB=60)
# 1. Builds fedgap Release with the CUDA backend forced on for sm_90 (the H100) only.
# 2. Fills gpu-bundle/ (ignored by git; it travels with the working tree as a carried path):
#      fedgap-gpu.tar.xz  bin/fedgap; tests/ (every tests/ops and tests/cuda executable: the op
#                         suites, whose CPU half is labelled cpu, are the only CPU suites the
#                         check runs); lib/ (the shared libraries those need that the GPU machine
#                         lacks, read off ldd: everything except the C runtime, libstdc++ and
#                         libgcc_s, and the CUDA toolkit's and driver's libraries); TREE_FILES
#                         (the tracked files the tree hash covers)
#      fashion-mnist/     the gzipped IDX files, copied as they are (already compressed), when
#                         the bundle stays under the limit with them
#      MANIFEST           the git revision built, the tree hash, the toolkit, the newest glibc
#                         symbol version the bundle needs, and size + sha256 of every file
# 3. Prints the bundle's size and fails when it exceeds the limit (60 MiB: the working tree and
#    the carried paths travel within 64 MiB together).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${1:-build-gpu}
limit_mib=${GPU_PACK_LIMIT_MIB:-60}
limit=$((limit_mib * 1024 * 1024))
bundle=$root/gpu-bundle
data_src=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
data_files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)

die() { echo "gpu-pack: $*" >&2; exit 1; }
for tool in cmake ldd sha256sum xz tar git objdump; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh installs the build tools)"
done
git check-ignore -q gpu-bundle/x || die "gpu-bundle/ is not ignored by git (.gitignore)"

# --- 1. build -------------------------------------------------------------------------------
echo "== building $dir (Release, FEDGAP_CUDA=ON, CMAKE_CUDA_ARCHITECTURES=90)"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DFEDGAP_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build "$dir" -j "$(nproc)"
[ -x "$dir/fedgap" ] || die "$dir/fedgap was not built"
"$dir/fedgap" devices | grep -q '^cuda: compiled\|^cuda: available' || die "$dir/fedgap was built without CUDA"

# --- 2. stage -------------------------------------------------------------------------------
stage=$(mktemp -d "${TMPDIR:-/tmp}/fedgap-gpu-pack.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/tests" "$stage/lib"
cp "$dir/fedgap" "$stage/bin/"
shopt -s nullglob
tests=("$dir"/tests/test_ops_* "$dir"/tests/test_cuda_*)
shopt -u nullglob
execs=()
for t in "${tests[@]}"; do [ -f "$t" ] && [ -x "$t" ] && execs+=("$t"); done
[ ${#execs[@]} -gt 0 ] || die "no tests/ops or tests/cuda executables in $dir/tests"
cp "${execs[@]}" "$stage/tests/"
strip --strip-unneeded "$stage"/bin/* "$stage"/tests/* 2>/dev/null || true

# Libraries the GPU machine has (the C runtime, the compiler's C++ runtime, CUDA's toolkit and
# driver libraries) are left out; every other library ldd resolves is copied under its soname.
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libmvec|libpthread|libdl\.so|librt\.so|libresolv|libutil|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcudnn|libcusolver|libcusparse|libnvJitLink|libnvrtc|libcufft|libcurand|libnvToolsExt)'
declare -A seen=()
for exe in "$stage"/bin/* "$stage"/tests/*; do
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue
    [ "$path" = "not" ] && die "$(basename "$exe") needs $name, which is not found here"
    [[ $name =~ $skip ]] && continue
    [ -n "${seen[$name]:-}" ] && continue
    seen[$name]=1
    cp -L "$path" "$stage/lib/$name"
  done < <(ldd "$exe")
done
strip --strip-unneeded "$stage"/lib/* 2>/dev/null || true
git ls-files -z | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done |
  xargs -0 sha256sum > "$stage/TREE_FILES"
tree_hash=$(sha256sum < "$stage/TREE_FILES" | cut -d' ' -f1)
glibc=$(for f in "$stage"/bin/* "$stage"/tests/* "$stage"/lib/*; do objdump -T "$f" 2>/dev/null; done |
        grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)

# --- 3. pack --------------------------------------------------------------------------------
rm -rf "$bundle"
mkdir -p "$bundle"
echo "== compressing $(du -sh "$stage" | cut -f1) into gpu-bundle/fedgap-gpu.tar.xz"
tar -C "$stage" -cf - bin tests lib TREE_FILES | xz -T"$(nproc)" -6 > "$bundle/fedgap-gpu.tar.xz"
size=$(stat -c %s "$bundle/fedgap-gpu.tar.xz")
data_note="not included: $data_src"
if [ -d "$data_src" ]; then
  data_bytes=0
  for f in "${data_files[@]}"; do
    [ -f "$data_src/$f" ] || { data_bytes=-1; break; }
    data_bytes=$((data_bytes + $(stat -c %s "$data_src/$f")))
  done
  if [ "$data_bytes" -lt 0 ]; then
    data_note="not included: $data_src lacks some of ${data_files[*]}"
  elif [ $((size + data_bytes)) -le "$limit" ]; then
    mkdir -p "$bundle/fashion-mnist"
    for f in "${data_files[@]}"; do cp "$data_src/$f" "$bundle/fashion-mnist/"; done
    data_note="included ($((data_bytes / 1024)) KiB)"
  else
    data_note="not included: it would take the bundle over ${limit_mib} MiB"
  fi
fi

{
  echo "# fedgap GPU bundle (scripts/gpu-pack.sh); scripts/gpu-check.sh reads it"
  echo "revision=$(git describe --always --dirty --abbrev=12)"
  echo "tree_sha256=$tree_hash"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "build_type=Release"
  echo "cuda_architectures=90"
  echo "nvcc=$("$(sed -n 's/^CMAKE_CUDA_COMPILER:[A-Z]*=//p' "$dir/CMakeCache.txt" | head -1)" --version |
                sed -n 's/.*release \([0-9.]*\), V\([0-9.]*\).*/\2/p')"
  echo "build_host=$(. /etc/os-release && echo "$PRETTY_NAME"), $(ldd --version | head -1 | sed 's/.* //') glibc"
  echo "needs_glibc=${glibc#GLIBC_}"
  echo "fashion_mnist=$data_note"
  echo "# sha256 size path (paths under fedgap-gpu.tar.xz's folders bin/ tests/ lib/, or in gpu-bundle/)"
  (cd "$stage" && find bin tests lib TREE_FILES -type f | sort | while read -r f; do
     echo "$(sha256sum "$f" | cut -d' ' -f1) $(stat -c %s "$f") $f"
   done)
  (cd "$bundle" && find . -type f ! -name MANIFEST | sed 's|^\./||' | sort | while read -r f; do
     echo "$(sha256sum "$f" | cut -d' ' -f1) $(stat -c %s "$f") gpu-bundle/$f"
   done)
} > "$bundle/MANIFEST"

total=$(find "$bundle" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
echo "== gpu-bundle/: $((total / 1024)) KiB ($(awk -v b="$total" 'BEGIN {printf "%.1f", b / 1048576}') MiB) of at most ${limit_mib} MiB"
echo "   fedgap-gpu.tar.xz $((size / 1024)) KiB: 1 binary, ${#execs[@]} test executables, ${#seen[@]} libraries ($(cd "$stage/lib" && ls | tr '\n' ' '))"
echo "   Fashion-MNIST: $data_note"
echo "   revision $(sed -n 's/^revision=//p' "$bundle/MANIFEST"), needs glibc >= ${glibc#GLIBC_}"
travel=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
echo "   working tree that travels beside it: $((travel / 1024)) KiB (together at most 64 MiB)"
if [ "$total" -gt "$limit" ]; then
  die "the bundle is $((total / 1048576)) MiB, over the ${limit_mib} MiB limit"
fi
if [ $((total + travel)) -gt $((64 * 1024 * 1024)) ]; then
  die "the bundle and the working tree are $(((total + travel) / 1048576)) MiB together, over 64 MiB"
fi
echo "next: on the GPU machine, scripts/gpu-check.sh (with gpu-bundle carried)"
