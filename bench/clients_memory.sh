#!/usr/bin/env bash
# Server memory does not grow with the number of clients: FedAvg on Fashion-MNIST with 10 clients
# and with 1,000 clients, 10 training per round, 2 rounds each (IID data). Prints both runs'
# process peak (VmHWM) and the largest client's engine peak, and their ratio.
#   bench/clients_memory.sh      (needs a built build/)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cat >"$out/mem.yaml" <<'YAML'
seed: 1
rounds: 2
data: {dataset: fashion-mnist, partition: {kind: iid}}
model: {arch: cnn, width: 16}
clients: {count: 10}
sampling: {kind: uniform, per_round: 10}
local: {epochs: 1, batch: 64, optimizer: sgd, lr: 0.02, momentum: 0.9, weight_decay: 5.0e-4}
eval: {every: 1, max_samples: 2000}
method: {name: fedavg}
YAML
peak() { python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(s['process_peak'], s['max_client_engine_peak'])" "$1/summary.json"; }
for n in 10 1000; do
  build/fedgap run "$out/mem.yaml" --set clients.count=$n --out "$out/c$n" --threads "${THREADS:-2}" >/dev/null
  read -r proc client < <(peak "$out/c$n")
  echo "clients=$n process_peak_bytes=$proc max_client_engine_peak_bytes=$client"
  eval "p$n=$proc"
done
awk -v a="$p1000" -v b="$p10" 'BEGIN {printf "process_peak_ratio_1000_vs_10=%.3f\n", a / b}'
