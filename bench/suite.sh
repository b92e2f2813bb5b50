#!/usr/bin/env bash
# The benchmark suite (bench/README.md): training throughput and peak memory of fedgap against
# PyTorch on the same models, client memory of every FL method level, NeuLite's round time against
# FedAvg's, and HypeMeFed's LRF hypernetworks against naive ones. CPU only; one table as CSV and
# Markdown, and PNG plots (gnuplot), written to OUT_DIR (default bench/results/<date>/).
#   bench/suite.sh [--quick] [OUT_DIR]
# Environment: REPEATS (runs of each configuration; default 5, 1 with --quick), THREADS (CPU
# threads of both frameworks; default 2), QUICK=1 (same as --quick: one tiny run of everything, to
# check the suite works; its figures mean nothing), MODELS and BATCHES (the throughput grid; default
# "cnn vgg-me resnet18" and "32 64 128").
# Needs a built build/ (scripts/build.sh) and scripts/install-deps.sh --bench (PyTorch, gnuplot).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=${QUICK:-0}
out=""
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "suite: unknown option '$arg' (expected --quick or an output folder)" >&2; exit 2 ;;
    *) out=$arg ;;
  esac
done
[ "$quick" = 1 ] && repeats=${REPEATS:-1} || repeats=${REPEATS:-5}
threads=${THREADS:-2}
models=${MODELS:-cnn vgg-me resnet18}
batches=${BATCHES:-32 64 128}
out=${out:-bench/results/$(date -u +%Y-%m-%d)}
fedgap=build/fedgap
py=/usr/bin/python3
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads

die() { echo "suite: $*" >&2; exit 1; }
[ -x "$fedgap" ] || die "build/fedgap is missing: build it first (scripts/build.sh)"
"$py" -c 'import torch' 2>/dev/null || die "PyTorch is missing: scripts/install-deps.sh --bench"
command -v gnuplot >/dev/null || die "gnuplot is missing: scripts/install-deps.sh"
[[ "$repeats" =~ ^[1-9][0-9]*$ ]] || die "REPEATS=$repeats: expected a whole number >= 1"
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "THREADS=$threads: expected a whole number >= 1"

mkdir -p "$out"
tmp=$(mktemp -d "$out/.suite.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
raw=$tmp/raw.tsv   # KEY <tab> VALUE, one line per measured sample
: >"$raw"
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Runs a measurement, its output kept in $tmp/last.out; stops the suite with one line naming it if
# it fails.
measure() {
  local what=$1
  shift
  if ! "$@" >"$tmp/last.out" 2>"$tmp/last.err"; then
    die "$what failed: $(tail -n 1 "$tmp/last.err" 2>/dev/null || true)"
  fi
}
# key=value field of the last line of the last measurement that has it.
field() {
  local v
  v=$(grep -o "\b$1=[^ ]*" "$tmp/last.out" | tail -n 1 | cut -d= -f2) || true
  [ -n "$v" ] || die "no $1= in the output of the last measurement"
  printf '%s' "$v"
}
# Records a sample; an empty one is a value field() did not find (it has said so): stop.
put() {
  [ -n "$2" ] || exit 1
  printf '%s\t%s\n' "$1" "$2" >>"$raw"
}

start=$(date +%s)

# ------------------------------------------------------------------------------------------------
# Part 1: training throughput and peak memory, fedgap and PyTorch alternately

left_out=()   # rows refused: the PyTorch twin's parameter count differs from fedgap's
if [ "$quick" = 1 ]; then warmup=1; else warmup=2; fi
steps_for() { # timed steps of one run: about this many samples, at least 3 (--quick: 1)
  local samples
  case "$1" in cnn) samples=2048 ;; vgg-me) samples=1024 ;; *) samples=384 ;; esac
  if [ "$quick" = 1 ]; then echo 1; else echo $((samples / $2 > 3 ? samples / $2 : 3)); fi
}
for model in $models; do
  for batch in $batches; do
    steps=$(steps_for "$model" "$batch")
    for ((r = 1; r <= repeats; r++)); do
      log "throughput: $model batch $batch, run $r/$repeats ($steps steps)"
      measure "fedgap bench train --model $model --batch $batch" "$fedgap" bench train --model "$model" \
        --input 3x32x32 --batch "$batch" --steps "$steps" --warmup "$warmup" --repeats 1 --threads "$threads"
      k=tp/$model/$batch
      fparams=$(field params)
      put "$k/fedgap/rate" "$(field samples_per_s)"
      put "$k/fedgap/ledger" "$(field peak_engine_bytes)"
      put "$k/fedgap/hwm" "$(field peak_rss_bytes)"
      measure "PyTorch $model batch $batch" "$py" bench/torch_suite.py train --model "$model" --input 3x32x32 \
        --batch "$batch" --steps "$steps" --warmup "$warmup" --threads "$threads"
      tparams=$(field params)
      if [ "$tparams" != "$fparams" ]; then
        left_out+=("$model batch $batch: the PyTorch twin has $tparams parameters, fedgap's model $fparams")
        continue 2
      fi
      put "$k/params" "$fparams"
      put "$k/torch/rate" "$(field samples_per_s)"
      put "$k/torch/hwm" "$(field peak_rss_bytes)"
      put "$k/torch/net" "$(($(field peak_rss_bytes) - $(field base_rss_bytes)))"
      torch_version=$(field torch)
    done
  done
done

# ------------------------------------------------------------------------------------------------
# Part 2: client memory of every method level at batch 64 (resnet18; HypeMeFed's vgg-me), the
# ledger's measured peak of one step beside PyTorch's process peak for the same sub-model

level_batch=64
if [ "$quick" = 1 ]; then level_steps=1; else level_steps=2; fi
methods=(neulite heterofl fedrolex depthfl scalefl hypemefed)
method_model() { [ "$1" = hypemefed ] && echo vgg-me || echo resnet18; }
method_sets() { # ScaleFL's reference levels for a 4-block model
  [ "$1" = scalefl ] && printf '%s\n' --set 'exits=[1,2,3,4]' --set 'widths=[0.7,0.7,0.75,1]'
  return 0
}
for ((r = 1; r <= repeats; r++)); do
  for method in "${methods[@]}"; do
    model=$(method_model "$method")
    mapfile -t sets < <(method_sets "$method")
    log "client memory: $method on $model, run $r/$repeats"
    measure "fedgap memplan --method $method" "$fedgap" memplan --model "$model" --input 3x32x32 \
      --batch "$level_batch" --method "$method" "${sets[@]}" --measure --threads "$threads"
    put "lv/$model/full/fedgap" "$(field measured_peak_bytes)"
    # level rows: label words, parameters, trained, state, act, ws, data, peak_bytes, vs model, measured
    awk '/^level /{on = 1; next} on && /^largest_level_bytes/ {on = 0} on && NF >= 10 {
           label = $1; for (i = 2; i <= NF - 9; i++) label = label " " $i
           print label "|" $(NF - 8) "|" $(NF - 7) "|" $(NF - 2) "|" $NF }' "$tmp/last.out" >"$tmp/levels"
    [ -s "$tmp/levels" ] || die "fedgap memplan --method $method printed no levels"
    i=0
    while IFS='|' read -r label params trained planned measured; do
      i=$((i + 1))
      k="lv/$method/$i"
      put "$k/label" "$label"
      put "$k/params" "$params"
      put "$k/trained" "$trained"
      put "$k/fedgap/planned" "$planned"
      put "$k/fedgap" "$measured"
      measure "PyTorch $method $label" "$py" bench/torch_suite.py level --method "$method" --level "$label" \
        --model "$model" --input 3x32x32 --batch "$level_batch" --steps "$level_steps" --threads "$threads" \
        </dev/null
      if [ "$(field params)" != "$params" ] || [ "$(field trained)" != "$trained" ]; then
        [ "$r" = 1 ] && left_out+=("$method $label: the PyTorch twin has $(field params) parameters \
($(field trained) trained), fedgap's level $params ($trained)")
        continue
      fi
      put "$k/torch/net" "$(($(field peak_rss_bytes) - $(field base_rss_bytes)))"
      put "$k/torch/hwm" "$(field peak_rss_bytes)"
    done <"$tmp/levels"
    put "lv/$method/n" "$i"
  done
  for model in resnet18 vgg-me; do # the full model in PyTorch, the reference of the levels
    measure "PyTorch $model full model" "$py" bench/torch_suite.py level --method fedavg --level full \
      --model "$model" --input 3x32x32 --batch "$level_batch" --steps "$level_steps" --threads "$threads"
    put "lv/$model/full/torch" "$(($(field peak_rss_bytes) - $(field base_rss_bytes)))"
  done
done

# ------------------------------------------------------------------------------------------------
# Part 3: a NeuLite round against a FedAvg round on the same clients (same seed and sampling),
# whole rounds as metrics.jsonl times them; no evaluation inside the timed rounds (--stop-after
# ends the run before the final evaluation)

if [ "$quick" = 1 ]; then per_round=2; rounds=4; else per_round=4; rounds=8; fi
cat >"$tmp/rounds.yaml" <<YAML
seed: 1
rounds: 1000
data: {dataset: fashion-mnist, partition: {kind: iid}}
model: {arch: resnet18, width: 0.25}
clients: {count: 100}
sampling: {kind: uniform, per_round: $per_round}
local: {epochs: 1, batch: 64, optimizer: sgd, lr: 0.02, momentum: 0.9, weight_decay: 5.0e-4}
eval: {every: 1000, max_samples: 100}
checkpoint: {every: 0}
method: {name: fedavg}
YAML
round_stats() { # per run: mean round seconds, mean client training seconds, stage means
  "$py" - "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
if any(r["evaluated"] for r in rows):
    sys.exit("an evaluated round among the timed ones")
mean = lambda v: sum(v) / len(v)
print("round", mean([r["seconds"] for r in rows]))
print("train", mean([sum(c["seconds"] for c in r["clients"]) for r in rows]))
stages = {}
for r in rows:
    stages.setdefault(r["clients"][0]["config"].replace(" ", "_"), []).append(r["seconds"])
for s, v in sorted(stages.items()):
    print(s, mean(v))
PY
}
for ((r = 1; r <= repeats; r++)); do
  for method in neulite fedavg; do
    log "rounds: $method, run $r/$repeats ($rounds rounds of $per_round clients)"
    rm -rf "$tmp/run-$method"
    measure "fedgap run ($method rounds)" "$fedgap" run "$tmp/rounds.yaml" --set "method.name=$method" \
      --out "$tmp/run-$method" --stop-after "$rounds" --threads "$threads"
    round_stats "$tmp/run-$method" >"$tmp/last.out" 2>"$tmp/last.err" ||
      die "rounds of $method: $(tail -n 1 "$tmp/last.err")"
    while read -r what secs; do put "rd/$method/$what" "$secs"; done <"$tmp/last.out"
  done
  "$py" - "$tmp/run-neulite" "$tmp/run-fedavg" <<'PY' || die "rounds: NeuLite and FedAvg did not train the same clients"
import json, sys
ids = [[[c["id"] for c in json.loads(l)["clients"]] for l in open(d + "/metrics.jsonl")] for d in sys.argv[1:]]
sys.exit(ids[0] != ids[1])
PY
done

# ------------------------------------------------------------------------------------------------
# Part 4: HypeMeFed's server round, LRF hypernetworks against naive ones (fedgap bench hypernet)

if [ "$quick" = 1 ]; then
  hn_args=(--epochs 1 --naive-epochs 1 --pairs-e12 1 --pairs-e23 1 --gen-e12 1 --gen-e23 1)
else
  hn_args=(--epochs 25 --naive-epochs 1)
fi
for ((r = 1; r <= repeats; r++)); do
  log "hypernetworks: run $r/$repeats"
  measure "fedgap bench hypernet" "$fedgap" bench hypernet --dataset svhn "${hn_args[@]}" --repeats 1 --warmup 0 \
    --threads "$threads"
  for v in lrf naive; do
    put "hn/$v/bytes" "$(field "svhn_${v}_total_bytes")"
    put "hn/$v/round" "$(field "svhn_${v}_round_s")"
    put "hn/$v/extrapolated" "$(field "svhn_${v}_round_extrapolated")"
  done
  put "hn/reduction" "$(field svhn_memory_reduction_pct)"
  put "hn/speedup" "$(field svhn_speedup)"
done

# ------------------------------------------------------------------------------------------------
# Statistics: median, min and max of every key's samples

awk -F'\t' '{ n[$1]++; v[$1, n[$1]] = $2 }
  END { for (k in n) {
          m = n[k]; numeric = 1
          for (i = 1; i <= m; i++) { a[i] = v[k, i]; if (a[i] !~ /^-?[0-9.eE+]+$/) numeric = 0 }
          if (!numeric) { print k "\t" a[1] "\t" a[1] "\t" a[1] "\t" m; continue }
          for (i = 2; i <= m; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > x + 0; j--) a[j + 1] = a[j]; a[j + 1] = x }
          med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
          print k "\t" med "\t" a[1] "\t" a[m] "\t" m } }' "$raw" | sort >"$tmp/stats.tsv"
has() { grep -q "^$1	" "$tmp/stats.tsv"; }
med() { awk -F'\t' -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) exit 1 }' "$tmp/stats.tsv" ||
  die "internal: no samples of $1"; }
lo() { awk -F'\t' -v k="$1" '$1 == k { print $3 }' "$tmp/stats.tsv"; }
hi() { awk -F'\t' -v k="$1" '$1 == k { print $4 }' "$tmp/stats.tsv"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print ""; else printf "%.3f", a / b }'; }
fmt_rate() { printf '%s (%s–%s)' "$(med "$1")" "$(lo "$1")" "$(hi "$1")"; }
fmt_mib() { printf '%s (%s–%s)' "$(mib "$(med "$1")")" "$(mib "$(lo "$1")")" "$(mib "$(hi "$1")")"; }
fmt_s() { awk -v a="$(med "$1")" -v l="$(lo "$1")" -v h="$(hi "$1")" 'BEGIN { printf "%.3f (%.3f–%.3f)", a, l, h }'; }

# ------------------------------------------------------------------------------------------------
# The table: suite.csv (long form: one measured quantity per row) and suite.md

csv=$tmp/suite.csv
echo "part,model,config,quantity,unit,fedgap,fedgap_min,fedgap_max,pytorch,pytorch_min,pytorch_max,fedgap_over_pytorch" >"$csv"
row() { # part model config quantity unit FEDGAP_KEY TORCH_KEY (either may be -)
  local f=("" "" "") t=("" "" "") rt=""
  if [ "$6" != - ] && has "$6"; then f=("$(med "$6")" "$(lo "$6")" "$(hi "$6")"); fi
  if [ "$7" != - ] && has "$7"; then t=("$(med "$7")" "$(lo "$7")" "$(hi "$7")"); fi
  if [ -n "${f[0]}" ] && [ -n "${t[0]}" ]; then rt=$(ratio "${f[0]}" "${t[0]}"); fi
  echo "$1,$2,$3,$4,$5,${f[0]},${f[1]},${f[2]},${t[0]},${t[1]},${t[2]},$rt" >>"$csv"
}

md=$tmp/suite.md
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
os=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}")
cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' build/CMakeCache.txt 2>/dev/null | head -n 1)
cc_version=$({ [ -n "$cc" ] && "$cc" --version 2>/dev/null | head -n 1; } || echo unknown)
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' build/CMakeCache.txt 2>/dev/null | head -n 1)
revision=$(git describe --always --dirty 2>/dev/null || echo unknown)
elapsed=$(($(date +%s) - start))
{
  echo "# fedgap benchmark suite"
  echo
  [ "$quick" = 1 ] && echo "**Quick run (one tiny run of each configuration, to check the suite): the figures mean nothing.**" && echo
  echo "| | |"
  echo "|---|---|"
  echo "| machine | ${cpu:-unknown CPU}, $(nproc) cores, $mem |"
  echo "| OS | ${os:-unknown} |"
  echo "| compiler | ${cc_version:-unknown} (${build_type:-?} build) |"
  echo "| PyTorch | ${torch_version:-?} (Debian python3-torch), same threads as fedgap |"
  echo "| fedgap | revision $revision |"
  echo "| threads | $threads (fedgap --threads, torch.set_num_threads, OMP_NUM_THREADS) |"
  echo "| runs | $repeats of each configuration, fedgap and PyTorch alternately; median (min–max) |"
  echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC'), $((elapsed / 60)) min $((elapsed % 60)) s |"
  echo
  echo "Memory: *ledger* is fedgap's engine bytes at peak (exact: every region it allocates); *VmHWM* is"
  echo "the process's peak resident memory (/proc/self/status); PyTorch's *net* is its VmHWM minus its"
  echo "resident size after \`import torch\`, before the model is built. MiB = 2^20 bytes."
  echo
  echo "## Training throughput and peak memory (input 3x32x32, synthetic batches)"
  echo
  echo "| model | batch | parameters | fedgap samples/s | PyTorch samples/s | fedgap / PyTorch | fedgap ledger MiB | fedgap VmHWM MiB | PyTorch VmHWM MiB | PyTorch net MiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$md"
: >"$tmp/throughput.dat"
: >"$tmp/models_memory.dat"
for model in $models; do
  for batch in $batches; do
    k=tp/$model/$batch
    has "$k/params" || continue
    row throughput "$model" "batch $batch" samples_per_s 1/s "$k/fedgap/rate" "$k/torch/rate"
    row throughput "$model" "batch $batch" peak_ledger bytes "$k/fedgap/ledger" -
    row throughput "$model" "batch $batch" peak_vmhwm bytes "$k/fedgap/hwm" "$k/torch/hwm"
    row throughput "$model" "batch $batch" peak_net bytes - "$k/torch/net"
    echo "| $model | $batch | $(med "$k/params") | $(fmt_rate "$k/fedgap/rate") | $(fmt_rate "$k/torch/rate") |" \
      "$(ratio "$(med "$k/fedgap/rate")" "$(med "$k/torch/rate")") | $(fmt_mib "$k/fedgap/ledger") |" \
      "$(fmt_mib "$k/fedgap/hwm") | $(fmt_mib "$k/torch/hwm") | $(fmt_mib "$k/torch/net") |" >>"$md"
    echo "\"$model $batch\" $(med "$k/fedgap/rate") $(lo "$k/fedgap/rate") $(hi "$k/fedgap/rate")" \
      "$(med "$k/torch/rate") $(lo "$k/torch/rate") $(hi "$k/torch/rate")" >>"$tmp/throughput.dat"
    echo "\"$model $batch\" $(mib "$(med "$k/fedgap/ledger")") $(mib "$(med "$k/fedgap/hwm")")" \
      "$(mib "$(med "$k/torch/net")") $(mib "$(med "$k/torch/hwm")")" >>"$tmp/models_memory.dat"
  done
done

{
  echo
  echo "## Client memory per method level (batch $level_batch, one local step)"
  echo
  echo "fedgap: the ledger's peak measured over one training step of the level's sub-model"
  echo "(\`fedgap memplan --measure\`; the plan's figure is the same by construction). PyTorch: the net process"
  echo "peak of $level_steps step(s) of the same sub-model (same parameters, same frozen ones) in a process of its own."
  echo "resnet18 for all but HypeMeFed, whose hypernetworks need a 3-block model (vgg-me); ScaleFL with"
  echo "its reference's four levels (exits 1-4, widths 0.7/0.7/0.75/1); DepthFL without FedDyn (its default)."
  echo "\"full\" is FedAvg's full-model training."
  echo
  echo "| method | level | parameters | trained | fedgap ledger MiB | vs full | PyTorch net MiB | vs full | fedgap / PyTorch |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
} >>"$md"
: >"$tmp/levels.dat"
for model in resnet18 vgg-me; do
  fk=lv/$model/full/fedgap tk=lv/$model/full/torch
  row client_memory "$model" "full model" peak_ledger_vs_net bytes "$fk" "$tk"
  echo "| fedavg | full $model | | | $(fmt_mib "$fk") | 100% | $(fmt_mib "$tk") | 100% |" \
    "$(ratio "$(med "$fk")" "$(med "$tk")") |" >>"$md"
  echo "\"$model full\" $(mib "$(med "$fk")") $(mib "$(med "$tk")")" >>"$tmp/levels.dat"
done
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", 100 * a / b }'; }
for method in "${methods[@]}"; do
  model=$(method_model "$method")
  fk=lv/$model/full/fedgap tk=lv/$model/full/torch
  for ((i = 1; i <= $(med "lv/$method/n"); i++)); do
    k=lv/$method/$i
    label=$(med "$k/label")
    row client_memory "$model" "$method $label" peak_ledger_vs_net bytes "$k/fedgap" "$k/torch/net"
    if has "$k/torch/net"; then
      tcell="$(fmt_mib "$k/torch/net") | $(pct "$(med "$k/torch/net")" "$(med "$tk")") | $(ratio "$(med "$k/fedgap")" "$(med "$k/torch/net")")"
      tplot=$(mib "$(med "$k/torch/net")")
    else
      tcell="— (twin differs) | | "
      tplot=0
    fi
    echo "| $method | $label | $(med "$k/params") | $(med "$k/trained") | $(fmt_mib "$k/fedgap") |" \
      "$(pct "$(med "$k/fedgap")" "$(med "$fk")") | $tcell |" >>"$md"
    echo "\"$method $label\" $(mib "$(med "$k/fedgap")") $tplot" >>"$tmp/levels.dat"
  done
done

{
  echo
  echo "## NeuLite round against FedAvg round (same clients)"
  echo
  echo "resnet18 width 0.25 on Fashion-MNIST (IID, 100 clients of 600 samples), $per_round clients a round, one"
  echo "local epoch at batch 64, $rounds rounds per run (NeuLite's stages in turn); the seconds of a whole round"
  echo "(broadcast, local training, aggregation; no evaluation) from metrics.jsonl, averaged over the run's rounds."
  echo "The paper reports NeuLite up to 1.9x faster than FedAvg."
  echo
  echo "| method | round s | client training s per round |"
  echo "|---|---:|---:|"
  for method in neulite fedavg; do
    echo "| $method | $(fmt_s "rd/$method/round") | $(fmt_s "rd/$method/train") |"
    row rounds "resnet18 w0.25" "$method" round_seconds s "rd/$method/round" -
    row rounds "resnet18 w0.25" "$method" client_train_seconds s "rd/$method/train" -
  done
  while read -r key _; do
    case "$key" in rd/neulite/stage_*)
      stage=${key#rd/neulite/}
      echo "| neulite ${stage//_/ } rounds | $(fmt_s "$key") | |"
      row rounds "resnet18 w0.25" "neulite ${stage//_/ }" round_seconds s "$key" - ;;
    esac
  done <"$tmp/stats.tsv"
  echo
  echo "FedAvg round / NeuLite round (NeuLite's speed-up): **$(ratio "$(med rd/fedavg/round)" "$(med rd/neulite/round)")**;"
  echo "client training alone: $(ratio "$(med rd/fedavg/train)" "$(med rd/neulite/train)")."
} >>"$md"
: >"$tmp/rounds.dat"
echo "\"FedAvg\" $(med rd/fedavg/round) $(lo rd/fedavg/round) $(hi rd/fedavg/round)" >>"$tmp/rounds.dat"
echo "\"NeuLite (all)\" $(med rd/neulite/round) $(lo rd/neulite/round) $(hi rd/neulite/round)" >>"$tmp/rounds.dat"
while read -r key _; do
  case "$key" in rd/neulite/stage_*)
    s=${key#rd/neulite/}
    echo "\"NeuLite ${s//_/ }\" $(med "$key") $(lo "$key") $(hi "$key")" >>"$tmp/rounds.dat" ;;
  esac
done <"$tmp/stats.tsv"

{
  echo
  echo "## HypeMeFed's hypernetworks: LRF against naive (SVHN's vgg-me, \`fedgap bench hypernet\`)"
  echo
  echo "Memory: the ledger's plan of the four hypernetworks the server holds. Time: one server round"
  echo "(${hn_args[*]})."
  echo
  echo "| variant | memory MiB | round s |"
  echo "|---|---:|---:|"
  for v in lrf naive; do
    note=""
    [ "$(med "hn/$v/extrapolated")" != 0 ] && note=" (extrapolated from fewer epochs)"
    echo "| $v | $(mib "$(med "hn/$v/bytes")") | $(fmt_s "hn/$v/round")$note |"
    row hypernet vgg-me "svhn $v" memory bytes "hn/$v/bytes" -
    row hypernet vgg-me "svhn $v" round_seconds s "hn/$v/round" -
  done
  row hypernet vgg-me svhn memory_reduction pct hn/reduction -
  row hypernet vgg-me svhn naive_over_lrf_time x hn/speedup -
  echo
  echo "Memory reduction $(med hn/reduction)% (the paper: 98.22%); naive / LRF round time $(med hn/speedup)x"
  echo "($(lo hn/speedup)–$(hi hn/speedup); the paper: 1.86x)."
  if [ ${#left_out[@]} -gt 0 ]; then
    echo
    echo "## Rows left out"
    echo
    echo "A PyTorch twin whose parameter counts differ from fedgap's is not compared:"
    echo
    printf -- '- %s\n' "${left_out[@]}"
  fi
  echo
  echo "Command: \`bench/suite.sh$([ "$quick" = 1 ] && echo " --quick")\` (REPEATS=$repeats THREADS=$threads" \
    "MODELS=\"$models\" BATCHES=\"$batches\")."
} >>"$md"

# ------------------------------------------------------------------------------------------------
# Plots

plot() {
  gnuplot 2>"$tmp/gnuplot.err" || die "gnuplot ($1) failed: $(tail -n 1 "$tmp/gnuplot.err")"
}
common="set terminal pngcairo size 1200,640 font 'sans,10'; set style fill solid 0.8 border -1;
set grid ytics; set key top left; set xtics rotate by -35 left; set bmargin 7"
if [ -s "$tmp/throughput.dat" ]; then
  plot throughput <<EOF
$common
set output '$tmp/throughput.png'
set title 'Training throughput, 3x32x32, $threads threads (median, bars: min-max)'
set ylabel 'samples/s'; set logscale y
set style data histogram; set style histogram errorbars gap 1 lw 1
plot '$tmp/throughput.dat' using 2:3:4:xtic(1) title 'fedgap', '' using 5:6:7 title 'PyTorch'
EOF
  plot memory <<EOF
$common
set output '$tmp/models_memory.png'
set title 'Peak training memory, 3x32x32 (median)'
set ylabel 'MiB'
set style data histogram; set style histogram clustered gap 1
plot '$tmp/models_memory.dat' using 2:xtic(1) title 'fedgap ledger', '' using 3 title 'fedgap VmHWM', \
     '' using 4 title 'PyTorch VmHWM - import', '' using 5 title 'PyTorch VmHWM'
EOF
fi
plot "client memory" <<EOF
$common
set terminal pngcairo size 1500,700 font 'sans,10'; set rmargin 12; set bmargin 9
set output '$tmp/client_memory.png'
set title 'Client memory per method level, batch $level_batch (resnet18; HypeMeFed: vgg-me)'
set ylabel 'MiB'
set style data histogram; set style histogram clustered gap 1
plot '$tmp/levels.dat' using 2:xtic(1) title 'fedgap ledger', '' using 3 title 'PyTorch VmHWM - import'
EOF
plot rounds <<EOF
$common
set output '$tmp/rounds.png'
set title 'Round time, resnet18 width 0.25, $per_round clients a round (median, bars: min-max)'
set ylabel 's'; set yrange [0:*]
set style data histogram; set style histogram errorbars gap 1 lw 1
plot '$tmp/rounds.dat' using 2:3:4:xtic(1) title 'round seconds'
EOF

# Everything measured: move the products into place (never a half table over an earlier one).
for f in suite.csv suite.md throughput.png models_memory.png client_memory.png rounds.png; do
  if [ -f "$tmp/$f" ]; then mv -f "$tmp/$f" "$out/$f"; else rm -f "$out/$f"; fi # no stale plot beside a new table
done
cp "$raw" "$out/raw.tsv"
log "done in $(($(date +%s) - start)) s: $out/suite.md, suite.csv and the plots"
