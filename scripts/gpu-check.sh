#!/usr/bin/env bash
# The one-shot GPU check (cuda.md): run on the GPU machine, in the repository root of a copy of
# the working tree that carries gpu-bundle/ (made here by scripts/gpu-pack.sh: fedgap cannot be
# built there, which has no OpenBLAS, Criterion, libyaml or cJSON and no package manager).
#   scripts/gpu-check.sh        logs under $OUT (default ./gpu-check-out), at most 7 files
# Steps, each under `timeout` with its own budget inside one overall budget (GPU_CHECK_BUDGET_S,
# default 410 s); a failing step is recorded and the check goes on:
#   bundle      verifies gpu-bundle/ against its MANIFEST, unpacks it (FEDGAP_GPU_WORK, default
#               /tmp/fedgap-gpu), compares the working tree with the tree the bundle was built
#               from, sets LD_LIBRARY_PATH (the bundle's libraries, the CUDA toolkit's, cuDNN's:
#               the toolkit's or PyTorch's pip package's) and installs the carried Fashion-MNIST
#               files where fedgap looks for them when they are absent        -> probe.log
#   probe       nvidia-smi, nvcc, PyTorch and its CUDA / cuDNN / cuBLAS, the libraries fedgap
#               resolved; `fedgap devices` (must say available)                -> probe.log
#   op-suites   every tests/ops executable (CPU and CUDA halves), in parallel -> tests-ops.log
#   cuda-tests  every tests/cuda executable (CPU vs CUDA training and FL)     -> tests-cuda.log
#               counts per executable from Criterion's output: passed, failed, crashed, skipped,
#               and among the skips the CUDA cases whose op the backend lacks ("unsupported on
#               cuda": the list of ops still missing) and those skipped for want of a device
#   memcheck    compute-sanitizer memcheck on the CUDA cases of tests/ops elementwise -> memcheck.log
#   bench-cnn, bench-resnet18
#               `fedgap bench train --device cuda` (cnn width 16 1x28x28 batch 64; resnet18
#               width 1 3x32x32 batch 128) beside bench/gpu/torch_models.py on the same GPU
#               (TF32 off, then on), and the ratio fedgap / PyTorch with TF32 off -> bench-train.log
#   bench-nhsic `fedgap bench nhsic --device cuda` (the m x d grid beside its roofline) -> bench-nhsic.log
#   summary     one line per step (step, status, key figure), printed last -> summary.txt
# Statuses: PASS, FAIL, TIMEOUT, SKIP (not run, with the reason). Exit status 0 when no step
# failed or timed out. Without a GPU every step says why and the exit status is 1.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$PWD
out=${OUT:-$root/gpu-check-out}
mkdir -p "$out"
work=${FEDGAP_GPU_WORK:-${TMPDIR:-/tmp}/fedgap-gpu}
py=${PYTHON:-python3}
t0=$(date +%s)
deadline=$((t0 + ${GPU_CHECK_BUDGET_S:-410}))
reserve=6 # seconds kept for the summary
data_dir=/usr/share/datasets/fashion-mnist
bundle=$root/gpu-bundle

rows=()
extra=()
record() { # step status figure
  rows+=("$1"$'\x1f'"$2"$'\x1f'"$3")
  printf '>> %-14s %-7s %s\n' "$1" "$2" "$3"
}
# Seconds a step may take: what it asks for, or what is left of the overall budget when less.
step_budget() {
  local left=$((deadline - $(date +%s) - reserve))
  [ "$left" -lt 0 ] && left=0
  if [ "$left" -lt "$1" ]; then echo "$left"; else echo "$1"; fi
}
# Runs a command under timeout, appending its output to a log; prints nothing, returns its status
# (124: timed out).
timed() { # budget log command...
  local budget=$1 log=$2
  shift 2
  [ "$budget" -lt 3 ] && { echo "(no time left for: $*)" >> "$log"; return 125; }
  echo "\$ $*" >> "$log"
  timeout -k 5 "$budget" "$@" >> "$log" 2>&1
}
status_of() { # rc -> PASS / TIMEOUT / FAIL
  case $1 in 0) echo PASS ;; 124 | 137) echo TIMEOUT ;; 125) echo SKIP ;; *) echo FAIL ;; esac
}
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p; s/^$1=\([^[:space:]]*\).*/\1/p" | head -1; }
mib() { awk -v b="${1:-0}" 'BEGIN {printf "%.0f", b / 1048576}'; }

summary() {
  local elapsed=$(($(date +%s) - t0)) bad=0 r
  for r in "${rows[@]}"; do
    case $r in *$'\x1f'FAIL$'\x1f'* | *$'\x1f'TIMEOUT$'\x1f'*) bad=1 ;; esac
  done
  {
    echo
    echo "== fedgap GPU check: ${revision:-unknown revision}; ${gpu_name:-no GPU seen}; ${elapsed} s; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf '%-14s %-7s %s\n' step status "key figure"
    for r in "${rows[@]}"; do
      IFS=$'\x1f' read -r s st fig <<< "$r"
      printf '%-14s %-7s %s\n' "$s" "$st" "$fig"
    done
    for e in "${extra[@]}"; do echo "$e"; done
    echo "logs: $(cd "$out" && ls | tr '\n' ' ')"
  } | tee "$out/summary.txt"
  return $bad
}

# --- bundle ----------------------------------------------------------------------------------
plog=$out/probe.log
: > "$plog"
echo "== bundle (gpu-bundle/ -> $work)"
if [ ! -f "$bundle/MANIFEST" ] || [ ! -f "$bundle/fedgap-gpu.tar.xz" ]; then
  record bundle FAIL "no gpu-bundle/ here: run scripts/gpu-pack.sh on the build machine and carry gpu-bundle"
  summary
  exit 1
fi
revision=$(sed -n 's/^revision=//p' "$bundle/MANIFEST")
{ echo "== MANIFEST"; grep -v '^[0-9a-f]\{64\} ' "$bundle/MANIFEST"; } >> "$plog"
bad_files=$(awk '$3 ~ /^gpu-bundle\// {print $1 "  " $3}' "$bundle/MANIFEST" | sha256sum -c --quiet 2>&1 | grep -c 'FAILED')
rm -rf "$work"
mkdir -p "$work/logs"
if command -v xz >/dev/null; then
  xz -dc "$bundle/fedgap-gpu.tar.xz" | tar -C "$work" -xf -
else
  "$py" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' \
    "$bundle/fedgap-gpu.tar.xz" | tar -C "$work" -xf -
fi
unpack_rc=$?
bad_members=$(awk '$1 ~ /^[0-9a-f]+$/ && length($1) == 64 && $3 !~ /^gpu-bundle\// {print $1 "  " $3}' \
  "$bundle/MANIFEST" | (cd "$work" && sha256sum -c --quiet 2>&1) | grep -c 'FAILED')
changed=$( (cd "$root" && sha256sum -c --quiet "$work/TREE_FILES" 2>/dev/null) | sed -n 's/: FAILED.*//p')
n_changed=$(printf '%s' "$changed" | grep -c . || true)
{
  echo "== verification: $bad_files bundle files and $bad_members unpacked files differ from the MANIFEST (unpack rc $unpack_rc)"
  echo "tracked files that differ from the tree the bundle was built from: $n_changed"
  [ -n "$changed" ] && printf '  %s\n' $changed
} >> "$plog"
if [ "$unpack_rc" -ne 0 ] || [ "$bad_files" -ne 0 ] || [ "$bad_members" -ne 0 ] || [ ! -x "$work/bin/fedgap" ]; then
  record bundle FAIL "gpu-bundle/ is damaged ($bad_files bundle files, $bad_members unpacked files differ; unpack rc $unpack_rc): pack it again"
  summary
  exit 1
fi
fedgap=$work/bin/fedgap

# Libraries: the bundle's, the CUDA toolkit's, cuDNN's (the toolkit's, else PyTorch's pip package).
site_dirs=$("$py" -c 'import site; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null)
cudnn_dir="" cudnn_from=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
  [ -e "$d/libcudnn.so.9" ] && { cudnn_dir=$d; cudnn_from="the system ($d)"; break; }
done
if [ -z "$cudnn_dir" ]; then
  d=$("$py" -c 'import os, nvidia.cudnn as m; print(os.path.join(list(m.__path__)[0], "lib"))' 2>/dev/null)
  [ -n "$d" ] && [ -e "$d/libcudnn.so.9" ] && { cudnn_dir=$d; cudnn_from="PyTorch's pip package nvidia.cudnn ($d)"; }
fi
if [ -z "$cudnn_dir" ] && [ -n "$site_dirs" ]; then
  f=$(find $site_dirs -name 'libcudnn.so.9' 2>/dev/null | head -1)
  [ -n "$f" ] && { cudnn_dir=$(dirname "$f"); cudnn_from="a search of Python's site-packages ($cudnn_dir)"; }
fi
# PyTorch runs with the environment it was started with, never the bundle's libraries.
orig_ld=${LD_LIBRARY_PATH:-}
if [ -n "$orig_ld" ]; then pyenv=(env "LD_LIBRARY_PATH=$orig_ld" "$py"); else pyenv=(env -u LD_LIBRARY_PATH "$py"); fi
ld=$work/lib:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib
[ -n "$cudnn_dir" ] && case :$ld: in *:"$cudnn_dir":*) ;; *) ld=$ld:$cudnn_dir ;; esac
export LD_LIBRARY_PATH=$ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# Anything still unresolved (a CUDA library only PyTorch's pip packages hold) is looked up there.
added=""
for lib in $(ldd "$fedgap" "$work"/tests/* 2>/dev/null | awk '/not found/ {print $1}' | sort -u); do
  f=$(find $site_dirs /usr/local/cuda*/ -name "$lib" 2>/dev/null | head -1)
  [ -n "$f" ] && { LD_LIBRARY_PATH=$LD_LIBRARY_PATH:${f%/*}; added="$added $lib"; }
done
missing=$(ldd "$fedgap" "$work"/tests/* 2>/dev/null | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
{
  echo "== libraries"
  echo "cuDNN from: ${cudnn_from:-nowhere: libcudnn.so.9 was not found}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  [ -n "$added" ] && echo "found in Python's site-packages or /usr/local/cuda*:$added"
  echo "fedgap resolves:"
  ldd "$fedgap" | awk '$2 == "=>" {print $1, $3}' | while read -r a p; do
    echo "  $a -> $p$( [ -e "$p" ] && echo " ($(readlink -f "$p"))")"
  done
  echo "unresolved: ${missing:-none}"
} >> "$plog"

# Fashion-MNIST where fedgap was built to look for it, when absent.
data_note="present in $data_dir"
if ! ls "$data_dir"/train-images-idx3-ubyte* >/dev/null 2>&1; then
  if [ -d "$bundle/fashion-mnist" ]; then
    if mkdir -p "$data_dir" 2>/dev/null && cp "$bundle"/fashion-mnist/*.gz "$data_dir/" 2>/dev/null; then
      data_note="installed into $data_dir from the bundle"
    else
      data_note="could not be installed into $data_dir (not root?): FL tests will fail"
    fi
  else
    data_note="absent: neither $data_dir nor the bundle has it (FL tests will fail)"
  fi
fi
echo "Fashion-MNIST: $data_note" >> "$plog"
fig="rev $revision; cuDNN from ${cudnn_from:-NOWHERE (libcudnn.so.9 not found)}; Fashion-MNIST $data_note"
[ "$n_changed" -gt 0 ] && fig="$fig; $n_changed tracked files changed since packing (probe.log)"
if [ -n "$missing" ]; then
  record bundle FAIL "unresolved libraries: $missing; $fig"
else
  record bundle PASS "$fig"
fi

# --- probe -----------------------------------------------------------------------------------
echo "== probe"
gpu_name=""
{
  echo "== system"
  uname -srm
  sed -n 's/^PRETTY_NAME=//p' /etc/os-release 2>/dev/null
  echo "cores: $(nproc)"
} >> "$plog"
if command -v nvidia-smi >/dev/null; then
  smi=$(timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)
  smi_rc=$?
  timed "$(step_budget 20)" "$plog" nvidia-smi
else
  smi="nvidia-smi not found: no NVIDIA driver on this machine" smi_rc=1
fi
echo "nvidia-smi: $smi" >> "$plog"
[ "$smi_rc" -eq 0 ] && gpu_name=$smi
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
nvcc_v=$("$nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')
echo "nvcc: ${nvcc_v:-not found} ($nvcc)" >> "$plog"
torch_v=$(timeout "$(step_budget 40)" "${pyenv[@]}" - 2>>"$plog" <<'EOF'
import importlib.metadata as md
import torch
parts = [f"torch {torch.__version__}", f"CUDA {torch.version.cuda}", f"cuDNN {torch.backends.cudnn.version()}"]
for pkg in ("nvidia-cublas", "nvidia-cublas-cu13", "nvidia-cudnn-cu13", "nvidia-cuda-runtime"):
    try:
        parts.append(f"{pkg} {md.version(pkg)}")
    except md.PackageNotFoundError:
        pass
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    parts.append(f"{p.name} sm_{p.major}{p.minor} {p.multi_processor_count} SMs")
else:
    parts.append("no CUDA device for torch")
print(", ".join(parts))
EOF
)
echo "python: $torch_v" >> "$plog"
fedgap_libs=$(ldd "$fedgap" | awk '/cudart|cublas\.|cudnn\.|cusolver/ {print $3}' | while read -r p; do
  [ -e "$p" ] && basename "$(readlink -f "$p")"; done | tr '\n' ' ')
echo "fedgap's CUDA libraries: $fedgap_libs" >> "$plog"
fig="${smi}; nvcc ${nvcc_v:-none}; ${torch_v:-torch not importable}; fedgap loads: ${fedgap_libs:-?}"
if [ "$smi_rc" -eq 0 ]; then record probe PASS "$fig"; else record probe FAIL "$fig"; fi

echo "== devices"
dev_out=$(timeout "$(step_budget 20)" "$fedgap" devices 2>&1)
dev_rc=$?
{ echo "== fedgap devices (rc $dev_rc)"; echo "$dev_out"; "$fedgap" --version 2>&1 | head -1; } >> "$plog"
cuda_line=$(echo "$dev_out" | grep '^cuda:' | head -1)
have_gpu=0
if echo "$cuda_line" | grep -q '^cuda: available'; then
  have_gpu=1
  record devices PASS "$cuda_line"
else
  record devices FAIL "${cuda_line:-fedgap devices failed (rc $dev_rc): $(echo "$dev_out" | tail -1)}"
fi
no_gpu_reason="no usable GPU: ${cuda_line##*no usable device: }"
[ -z "$cuda_line" ] && no_gpu_reason="no usable GPU (fedgap devices failed)"

# --- tests -----------------------------------------------------------------------------------
# Counts of one Criterion log (--verbose --color=never): "pass fail crash skip unsupported nodevice".
counts() {
  local log=$1 synth
  synth=$(grep -a 'Synthesis:' "$log" | tail -1)
  local pass fail crash skip unsup nodev
  pass=$(echo "$synth" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
  fail=$(echo "$synth" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
  crash=$(echo "$synth" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
  skip=$(grep -a '^\[SKIP\]' "$log" | grep -vc 'Test is disabled')
  unsup=$(grep -a '^\[SKIP\]' "$log" | grep -c 'unsupported on cuda')
  nodev=$(grep -a '^\[SKIP\]' "$log" | grep -c 'no usable CUDA device\|cuda: not compiled\|not registered')
  echo "${pass:--} ${fail:--} ${crash:--} $skip $unsup $nodev"
}
# Starts one test executable in the background under `budget` seconds (its own folder, the
# environment tests/CMakeLists.txt gives it); its log and exit status go to $work/logs.
suite_pids=()
start_suite() { # exe budget
  local exe=$1 budget=$2 name
  name=$(basename "$exe")
  mkdir -p "$work/run/$name"
  (cd "$work/run/$name" && FEDGAP_BINARY=$fedgap FEDGAP_SOURCE_DIR=$root \
    timeout -k 5 "$budget" "$exe" --jobs 1 --verbose --color=never > "$work/logs/$name.log" 2>&1
   echo $? > "$work/logs/$name.rc") &
  suite_pids+=($!)
}
# One line per executable into the log (and the console), then every executable's output; one
# summary row for the step.
tabulate() { # step log budget exe...
  local step=$1 log=$2 budget=$3
  shift 3
  : > "$log"
  local tp=0 tf=0 tc=0 ts=0 tu=0 tn=0 bad=0 timeouts=0 n=0 exe name rc p f c s u nd line
  for exe in "$@"; do
    name=$(basename "$exe")
    rc=$(cat "$work/logs/$name.rc" 2>/dev/null || echo 1)
    read -r p f c s u nd <<< "$(counts "$work/logs/$name.log")"
    line=$(printf '%-34s rc %-3s pass %-4s fail %-3s crash %-3s skip %-4s (unsupported on cuda %s, no device %s)' \
      "$name" "$rc" "$p" "$f" "$c" "$s" "$u" "$nd")
    echo "$line" | tee -a "$log"
    n=$((n + 1))
    [[ $p =~ ^[0-9]+$ ]] && tp=$((tp + p))
    [[ $f =~ ^[0-9]+$ ]] && tf=$((tf + f))
    [[ $c =~ ^[0-9]+$ ]] && tc=$((tc + c))
    ts=$((ts + s)) tu=$((tu + u)) tn=$((tn + nd))
    case $rc in 0) ;; 124 | 137) timeouts=$((timeouts + 1)) bad=1 ;; *) bad=1 ;; esac
  done
  for exe in "$@"; do
    name=$(basename "$exe")
    { echo; echo "==== $name"; cat "$work/logs/$name.log"; } >> "$log"
  done
  local fig="$n executables: $tp passed, $tf failed, $tc crashed, $ts skipped ($tu unsupported on cuda, $tn no device)"
  [ "$timeouts" -gt 0 ] && fig="$fig; $timeouts killed after ${budget} s"
  if [ "$n" -eq 0 ]; then record "$step" FAIL "no executables in the bundle"
  elif [ "$timeouts" -gt 0 ]; then record "$step" TIMEOUT "$fig"
  elif [ "$bad" -ne 0 ]; then record "$step" FAIL "$fig"
  elif [ "$have_gpu" -eq 0 ]; then record "$step" SKIP "$fig: $no_gpu_reason"
  else record "$step" PASS "$fig"; fi
}

echo "== op suites and CUDA tests (all executables at once)"
shopt -s nullglob
ops=("$work"/tests/test_ops_*)
cudat=("$work"/tests/test_cuda_*)
shopt -u nullglob
b=$(step_budget 140)
if [ "$b" -lt 10 ]; then
  record op-suites SKIP "no time left"
  record cuda-tests SKIP "no time left"
else
  for exe in "${ops[@]}" "${cudat[@]}"; do start_suite "$exe" "$b"; done
  wait "${suite_pids[@]}" 2>/dev/null
  tabulate op-suites "$out/tests-ops.log" "$b" "${ops[@]}"
  tabulate cuda-tests "$out/tests-cuda.log" "$b" "${cudat[@]}"
  # The ops the CUDA backend still lacks: the op suites' skips say "<op>: unsupported on cuda".
  missing_ops=$(cat "$work"/logs/test_ops_*.log 2>/dev/null |
    sed -n 's/^\[SKIP\] [^ ]*: \([a-z0-9_]*\): unsupported on cuda.*/\1/p' | sort -u | tr '\n' ' ')
  computed_ops=$(cat "$work"/logs/test_ops_*.log 2>/dev/null |
    sed -n 's/^op suite: \([a-z0-9_]*\) *on cuda: *[0-9]* cases: *\([0-9]*\) computed.*/\1 \2/p' |
    awk '$2 > 0 {print $1}' | sort -u | tr '\n' ' ')
  extra+=("ops computed on cuda: ${computed_ops:-none}")
  extra+=("ops unsupported on cuda (op-suite skips): ${missing_ops:-none}")
fi

# --- memcheck --------------------------------------------------------------------------------
echo "== memcheck"
mlog=$out/memcheck.log
: > "$mlog"
sanitizer=$(command -v compute-sanitizer || true)
for c in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  [ -z "$sanitizer" ] && [ -x "$c" ] && sanitizer=$c
done
small=$work/tests/test_ops_test_elementwise
if [ "$have_gpu" -eq 0 ]; then
  record memcheck SKIP "$no_gpu_reason"
elif [ -z "$sanitizer" ]; then
  record memcheck FAIL "compute-sanitizer not found"
elif [ ! -x "$small" ]; then
  record memcheck FAIL "tests/ops elementwise is not in the bundle"
else
  (cd "$work/run" && export FEDGAP_BINARY=$fedgap FEDGAP_SOURCE_DIR=$root &&
    timed "$(step_budget 50)" "$mlog" "$sanitizer" --tool memcheck --target-processes all --print-limit 50 \
    "$small" --jobs 1 --verbose --color=never --filter '*/*_cuda')
  rc=$?
  errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) error.*/\1/p' "$mlog" | awk '{s += $1} END {print s + 0}')
  procs=$(grep -c 'ERROR SUMMARY' "$mlog")
  read -r p f c s u nd <<< "$(counts "$mlog")"
  fig="$errors errors in $procs processes; CUDA cases: ${p} passed, ${f} failed, ${c} crashed, $s skipped ($u unsupported)"
  st=$(status_of "$rc")
  [ "$st" = PASS ] && [ "$errors" -ne 0 ] && st=FAIL
  [ "$st" = PASS ] && [ "${p:-0}" = 0 ] && [ "${f:-0}" = 0 ] && st=SKIP fig="no CUDA case ran: $fig"
  record memcheck "$st" "$fig"
fi

# --- benchmarks ------------------------------------------------------------------------------
blog=$out/bench-train.log
: > "$blog"
bench_model() { # step model width input batch steps warmup
  local step=$1 model=$2 width=$3 input=$4 batch=$5 steps=$6 warmup=$7
  echo "== $step"
  if [ "$have_gpu" -eq 0 ]; then record "$step" SKIP "$no_gpu_reason"; return; fi
  local f t_off t_on frc rate peak line fig
  echo "==== fedgap bench train --device cuda --model $model" >> "$blog"
  f=$(timeout -k 5 "$(step_budget 40)" "$fedgap" bench train --device cuda --model "$model" --width "$width" \
      --input "$input" --batch "$batch" --steps "$steps" --warmup "$warmup" --repeats 3 2>&1)
  frc=$?
  echo "$f" >> "$blog"
  echo "(rc $frc)" >> "$blog"
  line=$(echo "$f" | tail -1)
  for tf in off on; do
    echo "==== torch_models.py --model $model --tf32 $tf" >> "$blog"
    local tout trc
    tout=$(timeout -k 5 "$(step_budget 30)" "${pyenv[@]}" "$root/bench/gpu/torch_models.py" --device cuda \
           --model "$model" --width "$width" --input "$input" --batch "$batch" --steps $((steps * 2)) \
           --warmup "$warmup" --tf32 "$tf" 2>&1)
    trc=$?
    echo "$tout" >> "$blog"
    echo "(rc $trc)" >> "$blog"
    [ "$tf" = off ] && t_off=$(echo "$tout" | tail -1) || t_on=$(echo "$tout" | tail -1)
  done
  local to_rate to_peak tn_rate
  to_rate=$(echo "$t_off" | field samples_per_s)
  to_peak=$(echo "$t_off" | field peak_device_bytes)
  tn_rate=$(echo "$t_on" | field samples_per_s)
  local torch_fig
  if [ -n "$to_rate" ]; then
    torch_fig="torch eager TF32 off $to_rate /s (peak $(mib "$to_peak") MiB), TF32 on ${tn_rate:-failed} /s"
  else
    torch_fig="torch eager failed: $(echo "$t_off" | cut -c1-100)"
  fi
  if [ "$frc" -eq 0 ]; then
    rate=$(echo "$line" | field samples_per_s)
    peak=$(echo "$line" | field peak_device_bytes)
    local ratio="-"
    [ -n "$to_rate" ] && ratio=$(awk -v a="$rate" -v b="$to_rate" 'BEGIN {printf "%.2f", a / b}')
    fig="fedgap $rate /s (peak $(mib "$peak") MiB); $torch_fig; fedgap/torch(TF32 off) = $ratio"
    record "$step" PASS "$fig"
  else
    local st
    st=$(status_of "$frc")
    record "$step" "$st" "fedgap: $(echo "$line" | cut -c1-160); $torch_fig"
  fi
}
bench_model bench-cnn cnn 16 1x28x28 64 100 10
bench_model bench-resnet18 resnet18 1 3x32x32 128 30 5

echo "== bench-nhsic"
nlog=$out/bench-nhsic.log
: > "$nlog"
if [ "$have_gpu" -eq 0 ]; then
  record bench-nhsic SKIP "$no_gpu_reason"
else
  timed "$(step_budget 40)" "$nlog" "$fedgap" bench nhsic --device cuda --repeats 20 --warmup 3
  rc=$?
  if [ "$rc" -eq 0 ]; then
    big=$(awk '$1 == 256 && $2 == 65536' "$nlog" | tail -1)
    worst=$(tail -1 "$nlog" | field worst_x_roofline)
    if [ -n "$big" ]; then
      fig=$(echo "$big" | awk '{printf "m 256 d 65536: %s us, roofline %s us (%s-bound), %sx roofline", $3, $7, $8, $9}')
    else
      fig="no m 256 d 65536 row"
    fi
    record bench-nhsic PASS "$fig; worst cell ${worst}x roofline"
  else
    record bench-nhsic "$(status_of "$rc")" "$(grep -v '^\$ ' "$nlog" | tail -1 | cut -c1-200)"
  fi
fi

# --- summary ---------------------------------------------------------------------------------
[ "$have_gpu" -eq 0 ] && extra+=("$no_gpu_reason: CUDA cases skipped, memcheck and benchmarks not run")
summary
exit $?
