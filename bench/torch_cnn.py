#!/usr/bin/env python3
"""PyTorch reference for bench/: the `cnn` of models.md (same layers, init and SGD), trained on
synthetic batches of the model's input shape. Prints the same key=value line as
`fedgap bench train`: samples_per_s, peak_rss_bytes. Used only for side-by-side comparison."""
import argparse
import resource
import time

import torch
import torch.nn as nn


def block(cin, cout, pool):
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
              nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    layers.append(nn.MaxPool2d(2) if pool else nn.AdaptiveAvgPool2d(1))
    return nn.Sequential(*layers)


def cnn(w, c, k):
    return nn.Sequential(block(c, w, True), block(w, 2 * w, True), block(2 * w, 4 * w, False), nn.Flatten(),
                         nn.Linear(4 * w, k))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input", default="1x28x28")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    c, h, w = (int(v) for v in args.input.split("x"))
    model = cnn(args.width, c, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(args.batch, c, h, w)
    y = torch.randint(0, 10, (args.batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"samples_per_s={args.batch * args.steps / dt:.1f} peak_rss_bytes={rss} torch={torch.__version__} "
          f"threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
