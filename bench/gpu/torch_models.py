#!/usr/bin/env python3
"""PyTorch eager twins of fedgap's `cnn` and `resnet18` (models.md), trained the way
`fedgap bench train` trains them: synthetic batches of the model's input shape (standard-normal
pixels, uniform labels), cross-entropy, SGD lr 0.02 momentum 0.9 weight decay 5e-4.

Measured as the GPU check compares them with fedgap: after --warmup untimed steps, each of --steps
timed steps is bracketed by CUDA events (on the CPU by the host clock); samples/s is the batch over
the median step time; the peak device memory is torch.cuda.max_memory_allocated over the whole
run (model, optimizer state, batch, activations, library workspaces that PyTorch allocates).
TF32 (tensor-core FP32 for matrix products and cuDNN convolutions) is set explicitly by --tf32
(PyTorch's own default turns it on for convolutions). The parameter count is asserted against
models.md's figures where it states one.

Prints one key=value line like fedgap's: samples_per_s=... peak_device_bytes=... and the
settings. Used only for side-by-side comparison; runs on the CPU too (--device cpu)."""
import argparse
import statistics
import sys
import time

import torch
import torch.nn as nn

# models.md's parameter counts: (arch, width, input, classes) -> parameters.
EXPECTED_PARAMS = {
    ("cnn", 16.0, (1, 28, 28), 10): 72666,
    ("resnet18", 1.0, (3, 32, 32), 10): 11173962,
    ("resnet34", 1.0, (3, 32, 32), 10): 21282122,
}


def scaled(c, m):
    """Channels after a width multiplier: round half away from zero, at least 1 (models.c)."""
    return max(1, int(c * m + 0.5))


class ConvBlock(nn.Module):
    """cnn block: [conv3x3 no bias, BN, ReLU] x2, then max-pool 2 (blocks 1, 2) or global average pool."""

    def __init__(self, cin, cout, pool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pool = nn.MaxPool2d(2) if pool else nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.pool(x)


class Cnn(nn.Module):
    """models.md `cnn`: blocks of w, 2w, 4w channels, head linear 4w -> K (module names as fedgap's)."""

    def __init__(self, width, channels, classes):
        super().__init__()
        w = int(width)
        if w != width or w < 1:
            raise ValueError(f"cnn: width {width} is not a whole number of channels >= 1")
        self.block1 = ConvBlock(channels, w, True)
        self.block2 = ConvBlock(w, 2 * w, True)
        self.block3 = ConvBlock(2 * w, 4 * w, False)
        self.head = nn.Linear(4 * w, classes)

    def forward(self, x):
        return self.head(torch.flatten(self.block3(self.block2(self.block1(x))), 1))


class ConvBn(nn.Module):
    def __init__(self, cin, cout, kernel, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class BasicBlock(nn.Module):
    """conv3x3 (stride s), BN, ReLU, conv3x3, BN, + shortcut (1x1 conv + BN where the shape changes), ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = ConvBn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet(nn.Module):
    """models.md `resnet18` / `resnet34`, CIFAR style: 3x3 stem (stride 1, no max-pool), stages of
    64/128/256/512 x width channels at strides 1, 2, 2, 2, global average pool, linear -> K;
    convolutions kaiming-normal (fan_out, relu)."""

    def __init__(self, units, width, channels, classes):
        super().__init__()
        c = scaled(64, width)
        self.stem = ConvBn(channels, c, 3, 1)
        cin = c
        for layer in range(1, 5):
            cout = scaled(64 << (layer - 1), width)
            blocks = []
            for u in range(units[layer - 1]):
                blocks.append(BasicBlock(cin, cout, 2 if layer > 1 and u == 0 else 1))
                cin = cout
            setattr(self, f"layer{layer}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, classes)
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(torch.mean(x, dim=(2, 3)), 1))


def build(arch, width, shape, classes):
    if arch == "cnn":
        return Cnn(width, shape[0], classes)
    if arch == "resnet18":
        return ResNet([2, 2, 2, 2], width, shape[0], classes)
    if arch == "resnet34":
        return ResNet([3, 4, 6, 3], width, shape[0], classes)
    raise ValueError(f"unknown model {arch} (cnn, resnet18, resnet34)")


def set_tf32(on):
    """TF32 for cuBLAS matrix products and cuDNN convolutions, through whichever API this PyTorch
    has (fp32_precision from 2.9, allow_tf32 before); returns the API's name."""
    mode = "tf32" if on else "ieee"
    try:
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode
        return "fp32_precision"
    except (AttributeError, AssertionError):
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on
        return "allow_tf32"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="cnn", choices=["cnn", "resnet18", "resnet34"])
    ap.add_argument("--width", type=float, default=None, help="default 16 for cnn, 1 for resnets")
    ap.add_argument("--input", default=None, help="CxHxW; default 1x28x28 for cnn, 3x32x32 for resnets")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=50, help="timed steps")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    ap.add_argument("--tf32", choices=["on", "off"], default="off")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    width = args.width if args.width is not None else (16.0 if args.model == "cnn" else 1.0)
    shape = tuple(int(v) for v in (args.input or ("1x28x28" if args.model == "cnn" else "3x32x32")).split("x"))
    if len(shape) != 3:
        ap.error(f"--input {args.input}: expected CxHxW")
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        print(f"torch_models: no CUDA device (torch {torch.__version__})", file=sys.stderr)
        return 1
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tf32_api = "-"
    if cuda:
        tf32_api = set_tf32(args.tf32 == "on")
        torch.cuda.reset_peak_memory_stats(device)

    model = build(args.model, width, shape, args.classes)
    params = sum(p.numel() for p in model.parameters())
    want = EXPECTED_PARAMS.get((args.model, float(width), shape, args.classes))
    if want is not None and params != want:
        print(f"torch_models: {args.model} has {params} parameters, models.md says {want}", file=sys.stderr)
        return 1
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn((args.batch,) + shape, generator=gen).to(device)
    y = torch.randint(0, args.classes, (args.batch,), generator=gen).to(device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    times = []
    if cuda:
        torch.cuda.synchronize(device)
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(args.steps)]
        for start, end in events:
            start.record()
            loss = step()
            end.record()
        torch.cuda.synchronize(device)
        times = [start.elapsed_time(end) / 1e3 for start, end in events]
        peak = torch.cuda.max_memory_allocated(device)
        name = torch.cuda.get_device_name(device)
    else:
        for _ in range(args.steps):
            t0 = time.perf_counter()
            loss = step()
            times.append(time.perf_counter() - t0)
        peak = 0
        name = "cpu"
    loss = float(loss)
    if loss != loss:
        print("torch_models: the loss is NaN", file=sys.stderr)
        return 1
    med = statistics.median(times)
    print(f"model {args.model} (width {width:g}), input {'x'.join(map(str, shape))}, batch {args.batch}, "
          f"{params} parameters, {name}, torch {torch.__version__}, "
          f"cudnn {torch.backends.cudnn.version() if cuda else '-'}, tf32 {args.tf32}, last loss {loss:.4f}")
    print(f"samples_per_s={args.batch / med:.1f} median_step_ms={med * 1e3:.4f} peak_device_bytes={peak} "
          f"params={params} tf32={args.tf32} tf32_api={tf32_api} device={args.device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
