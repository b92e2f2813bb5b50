#!/usr/bin/env python3
"""PyTorch reference of configs/fedavg-fmnist.yaml, for comparing final accuracy.

Reads the client partition a fedgap run saved (RUN_DIR/partition.json), so both implementations
train on the same client data; client sampling, init and shuffles come from PyTorch's RNG (seeded),
so the two runs are independent draws of the same experiment. Same model (models.md `cnn`), same
local training (SGD, momentum, coupled weight decay, optimizer reset every round) and
sample-weighted averaging of every tensor including BN running statistics.

  /usr/bin/python3 bench/torch_fedavg.py RUN_DIR [--rounds 20] [--seed 1]
Prints a line per round and final_accuracy=0.xxxx.
"""
import argparse
import gzip
import json
import time

import numpy as np
import torch
import torch.nn as nn

FMNIST = "/usr/share/datasets/fashion-mnist"


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(split):
    x = idx(f"{FMNIST}/{split}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = idx(f"{FMNIST}/{split}-labels-idx1-ubyte.gz").astype(np.int64)
    x = (x - 0.2860) / 0.3530
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


def block(cin, cout, pool):
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
              nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    layers.append(nn.MaxPool2d(2) if pool else nn.AdaptiveAvgPool2d(1))
    return nn.Sequential(*layers)


def cnn(w=16):
    return nn.Sequential(block(1, w, True), block(w, 2 * w, True), block(2 * w, 4 * w, False), nn.Flatten(),
                         nn.Linear(4 * w, 10))


def evaluate(model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), 1000):
            correct += (model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
    return correct / len(y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per-round", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    with open(f"{args.run_dir}/partition.json") as f:
        clients = [np.array(c["indices"], dtype=np.int64) for c in json.load(f)["clients"]]
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    glob = cnn()
    loss_fn = nn.CrossEntropyLoss()
    start = time.time()
    for r in range(args.rounds):
        chosen = sorted(rng.choice(len(clients), size=args.per_round, replace=False))
        total = sum(len(clients[c]) for c in chosen)
        acc = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in glob.state_dict().items()}
        for c in chosen:
            local = cnn()
            local.load_state_dict(glob.state_dict())
            local.train()
            opt = torch.optim.SGD(local.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
            idxs = clients[c][torch.randperm(len(clients[c])).numpy()]
            for i in range(0, len(idxs), 64):
                b = idxs[i:i + 64]
                opt.zero_grad(set_to_none=True)
                loss_fn(local(xtr[b]), ytr[b]).backward()
                opt.step()
            for k, v in local.state_dict().items():
                acc[k] += v.double() * (len(clients[c]) / total)
        glob.load_state_dict({k: v.to(glob.state_dict()[k].dtype) for k, v in acc.items()})
        a = evaluate(glob, xte, yte)
        print(f"round {r + 1}/{args.rounds} accuracy {a:.4f} {time.time() - start:.0f} s", flush=True)
    print(f"final_accuracy={a:.4f}")


if __name__ == "__main__":
    main()
