#!/usr/bin/env bash
# fedgap vs PyTorch on the `cnn` (models.md), side by side in one run: width 16, batch 64,
# 2 threads, synthetic batches. The two are run alternately ROUNDS times; the medians of the
# samples/s and the ratio are printed, with engine and process peak memory.
#   bench/cnn_vs_torch.sh [ROUNDS]      (needs: scripts/install-deps.sh --bench; a built build/)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
threads=${THREADS:-2}
fedgap=build/fedgap
[ -x "$fedgap" ] || { echo "build fedgap first (scripts/build.sh)" >&2; exit 1; }
/usr/bin/python3 -c 'import torch' 2>/dev/null || { echo "PyTorch missing: scripts/install-deps.sh --bench" >&2; exit 1; }

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

f_rates=(); t_rates=(); f_engine=0; f_rss=0; t_rss=0
for ((i = 1; i <= rounds; i++)); do
  f=$("$fedgap" bench train --model cnn --width 16 --batch 64 --steps 60 --warmup 5 --repeats 1 --threads "$threads" | tail -1)
  t=$(/usr/bin/python3 bench/torch_cnn.py --width 16 --batch 64 --steps 60 --warmup 5 --threads "$threads")
  f_rates+=("$(echo "$f" | field samples_per_s)"); t_rates+=("$(echo "$t" | field samples_per_s)")
  f_engine=$(echo "$f" | field peak_engine_bytes); f_rss=$(echo "$f" | field peak_rss_bytes)
  t_rss=$(echo "$t" | field peak_rss_bytes)
  echo "round $i: fedgap ${f_rates[-1]} samples/s, pytorch ${t_rates[-1]} samples/s"
done
fm=$(printf '%s\n' "${f_rates[@]}" | median); tm=$(printf '%s\n' "${t_rates[@]}" | median)
echo "cnn width 16, batch 64, $threads threads, $rounds rounds ($(nproc) cores, $(lscpu | sed -n 's/Model name: *//p'))"
echo "fedgap:  median $fm samples/s, engine peak $((f_engine / 1048576)) MiB, process peak $((f_rss / 1048576)) MiB"
echo "pytorch: median $tm samples/s, process peak $((t_rss / 1048576)) MiB"
awk -v a="$fm" -v b="$tm" 'BEGIN {printf "speedup=%.2f\n", a / b}'
