#!/usr/bin/env python3
"""PyTorch side of bench/suite.sh: CPU twins of fedgap's built-in models (models.md) and of the
sub-models the FL methods train (a NeuLite stage, a HeteroFL/FedRolex/ScaleFL width, a
DepthFL/ScaleFL/HypeMeFed depth; ScaleFL's and, on the resnets, DepthFL's exits have their own
heads), trained the way `fedgap bench train` and `fedgap memplan --measure` train them: synthetic
batches of the input shape (standard-normal pixels, uniform labels), SGD lr 0.02 momentum 0.9
weight decay 5e-4 on the trainable parameters.

  torch_suite.py train --model M --batch B --steps N --warmup K --threads T
      one timed run of N steps after K untimed ones: samples_per_s=...
  torch_suite.py level --method NAME --level LABEL --batch B --steps N --threads T
      N steps of one method level (LABEL as `fedgap memplan --method NAME` prints it)

Both print one key=value line: params= and trained= (parameter counts, for the suite to check
against fedgap's), peak_rss_bytes= (the process's VmHWM), base_rss_bytes= (its resident size after
importing torch, before the model is built) and torch=VERSION. The memory PyTorch needs for the
model is peak - base: parameters, gradients, optimizer state, saved activations and whatever the
allocator and thread pools keep. The losses are cross-entropy on every output (and NeuLite's
nHSIC terms); distillation terms between exits are left out (they hold only logit-sized tensors)."""
import argparse
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def proc_status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def scaled(c, m):
    """Channels after a width multiplier: round half away from zero, at least 1 (models.c)."""
    return max(1, int(math.floor(c * m + 0.5)))


class Scaler(nn.Module):
    """HeteroFL/ScaleFL Scaler: divides by the rate, in training only or always."""

    def __init__(self, rate, always):
        super().__init__()
        self.factor, self.always = 1.0 / rate, always

    def forward(self, x):
        return x * self.factor if (self.always or self.training) else x


class Opts:
    """What a sub-model changes: width rate (channels kept: ceil, or floor for ScaleFL), Scaler, BN
    running statistics, depth, exits and whose heads they are ("model", "scalefl", "depthfl"),
    NeuLite stage (0: none) and whether it has the projection head P."""

    def __init__(self, rate=1.0, floor=False, scaler=None, track=True, depth=None, exits=False, head="model",
                 stage=0, projection=False):
        self.rate, self.floor, self.scaler, self.track = rate, floor, scaler, track
        self.depth, self.exits, self.head, self.stage, self.projection = depth, exits, head, stage, projection

    def keep(self, c):
        """Channels of a hidden layer in the sub-model: ceil(rate * c) (HeteroFL, FedRolex) or
        floor(rate * c) (ScaleFL), at least 1 (models.c)."""
        v = c * self.rate
        return max(1, math.floor(v + 1e-9) if self.floor else math.ceil(v - 1e-9))

    def conv(self, cin, cout, k, stride=1, bias=False):
        c = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=bias)
        if self.scaler is None or self.rate >= 1.0:
            return c
        return nn.Sequential(c, Scaler(self.rate, self.scaler == "always"))

    def bn(self, c):
        return nn.BatchNorm2d(c, track_running_stats=self.track)


class Exit(nn.Module):
    """Global average pool + linear (cnn and resnet early exits, models.md)."""

    def __init__(self, c, classes):
        super().__init__()
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ScaleFLExit(nn.Module):
    """ScaleFL's early exit (models.h FG_EXIT_HEAD_SCALEFL): 3 x (conv3x3 C->C bias-free, Scaler,
    BN, ReLU), global average pool, linear C->classes."""

    def __init__(self, o, c, classes):
        super().__init__()
        self.convs = nn.Sequential(*[ConvBnRelu(o, c, c, False) for _ in range(3)])
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.convs(x), 1), 1))


class SepBlock(nn.Sequential):
    """One depthwise-separable block of a DepthFL exit, cin -> cout, halving the map: dw 3x3
    stride 2, 1x1 cin->cin, BN, ReLU, dw 3x3 stride 1, 1x1 cin->cout, BN, ReLU; bias-free convs."""

    def __init__(self, o, cin, cout):
        super().__init__(nn.Conv2d(cin, cin, 3, stride=2, padding=1, groups=cin, bias=False),
                         o.conv(cin, cin, 1), o.bn(cin), nn.ReLU(inplace=True),
                         nn.Conv2d(cin, cin, 3, stride=1, padding=1, groups=cin, bias=False),
                         o.conv(cin, cout, 1), o.bn(cout), nn.ReLU(inplace=True))


class DepthFLGate(nn.Module):
    """DepthFL's attention gate on a block's output x (models.h FG_EXIT_HEAD_DEPTHFL): a separable
    block c -> c (stride 2), BN, ReLU, bilinear x2 upsampling (align_corners false), sigmoid, times
    x. On an odd map the upsampled map has one row/column more than x: its last is dropped."""

    def __init__(self, o, c):
        super().__init__()
        self.sep, self.bn = SepBlock(o, c, c), o.bn(c)

    def forward(self, x):
        a = F.interpolate(torch.relu(self.bn(self.sep(x))), scale_factor=2, mode="bilinear", align_corners=False)
        return torch.sigmoid(a[:, :, :x.shape[2], :x.shape[3]]) * x


class DepthFLExit(nn.Module):
    """DepthFL's exit on a resnet block (models.h FG_EXIT_HEAD_DEPTHFL): the attention gate, then
    one separable block per later block, from `channels[0]` (this block's) to `channels[-1]` (the
    last block's), global average pool, linear C_4->classes."""

    def __init__(self, o, channels, classes):
        super().__init__()
        self.gate = DepthFLGate(o, channels[0])
        self.seps = nn.Sequential(*[SepBlock(o, a, b) for a, b in zip(channels, channels[1:])])
        self.fc = nn.Linear(channels[-1], classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.seps(self.gate(x)), 1), 1))


def early_exit(o, channels, classes):
    """The head of an early exit after a block: `channels` are that block's, then the later
    blocks' (DepthFL's head goes down to the last block's)."""
    if o.head == "scalefl":
        return ScaleFLExit(o, channels[0], classes)
    if o.head == "depthfl":
        return DepthFLExit(o, channels, classes)
    return Exit(channels[0], classes)


class StageHead(nn.Module):
    """NeuLite stage-t head (neulite.md 1.3): output module (one bias-free strided 3x3 conv per
    missing block), global pool, classifier, optional projection head P; returns logits, Z_X, Z_Y."""

    def __init__(self, channels, strides, t, classes, projection):
        super().__init__()
        blocks = len(channels)
        self.om = nn.Sequential(*[nn.Conv2d(channels[j - 1], channels[j], 3, stride=strides[j], padding=1, bias=False)
                                  for j in range(t, blocks)])
        self.fc = nn.Linear(channels[-1], classes)
        c = channels[-1]
        self.proj = nn.Sequential(nn.Linear(c, round(c * 2056 / 512)), nn.Linear(round(c * 2056 / 512), 2 * c),
                                  nn.Linear(2 * c, c)) if projection else None

    def forward(self, x):
        x = self.om(x)
        p = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(p), torch.flatten(x, 1), (self.proj(p) if self.proj is not None else None)


class Net(nn.Module):
    """A chain of blocks, each with an optional head after it; the heads' outputs are the model's.
    `blocks[k]` is the model's block k + 1 (models.md's partition), for NeuLite's freezing."""

    def __init__(self, blocks, heads):
        super().__init__()
        self.blocks, self.heads = nn.ModuleList(blocks), nn.ModuleList(heads)

    def forward(self, x):
        outs = []
        for block, head in zip(self.blocks, self.heads):
            x = block(x)
            if not isinstance(head, nn.Identity):
                outs.append(head(x))
        return outs


class ConvBnRelu(nn.Sequential):
    def __init__(self, o, cin, cout, bias):
        super().__init__(o.conv(cin, cout, 3, bias=bias), o.bn(cout), nn.ReLU(inplace=True))


def cnn(width, shape, classes, o):
    """models.md cnn: blocks 1..depth; exits after blocks 1-2 (o.exits: the model's or ScaleFL's)."""
    w = int(width)
    blocks, heads, cin = [], [], shape[0]
    for k in range(o.depth or 3):
        c = o.keep(w << k)
        layers = [ConvBnRelu(o, cin, c, False), ConvBnRelu(o, c, c, False)]
        if k < 2:
            layers.append(nn.MaxPool2d(2))
        blocks.append(nn.Sequential(*layers))
        if k == 2:
            heads.append(Exit(c, classes))
        elif o.exits:
            heads.append(early_exit(o, [c], classes))
        else:
            heads.append(nn.Identity())
        cin = c
    return Net(blocks, heads)


class VggHead(nn.Module):
    def __init__(self, features, classes):
        super().__init__()
        self.drop, self.fc = nn.Dropout(0.5), nn.Linear(features, classes)

    def forward(self, x):
        return self.fc(self.drop(torch.flatten(x, 1)))


def vgg_me(width, shape, classes, o):
    """hypemefed.md 1.1-1.2: stem + exit blocks of [conv3x3+bias, BN, ReLU] x2 + max-pool; exit j
    = flatten, dropout 0.5, linear (ScaleFL's head instead at exits 1 and 2)."""
    variants = {(3, 32, 32): 32, (1, 28, 28): 32, (3, 96, 96): 64, (1, 18, 25): 64}
    base = variants[tuple(shape)]
    depth = o.depth or 3

    def block(cin, cout):
        return nn.Sequential(ConvBnRelu(o, cin, cout, True), ConvBnRelu(o, cout, cout, True), nn.MaxPool2d(2))

    c = o.keep(scaled(base, width))
    blocks, heads = [block(shape[0], c)], [nn.Identity()]
    h, w = shape[1] // 2, shape[2] // 2
    for j in range(1, depth + 1):
        cout = o.keep(scaled(base << j, width))
        h, w = h // 2, w // 2
        blocks.append(block(c, cout))
        if j < 3 and o.head == "scalefl":
            heads.append(ScaleFLExit(o, cout, classes))
        else:
            heads.append(VggHead(cout * h * w, classes))
        c = cout
    # models.md's partition puts the stem into block 1
    return Net([nn.Sequential(blocks[0], blocks[1])] + blocks[2:], heads[1:])


class BasicBlock(nn.Module):
    def __init__(self, o, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = o.conv(cin, cout, 3, stride), o.bn(cout)
        self.conv2, self.bn2 = o.conv(cout, cout, 3), o.bn(cout)
        self.shortcut = (nn.Sequential(o.conv(cin, cout, 1, stride), o.bn(cout))
                         if stride != 1 or cin != cout else None)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


def resnet(units, width, shape, classes, o):
    """models.md resnet18/34 (CIFAR style); block 1 = stem + layer1, block k = layer k; exits after
    blocks 1-3 (o.exits) are the model's, ScaleFL's or DepthFL's heads."""
    c = o.keep(scaled(64, width))
    chans = [o.keep(scaled(64 << l, width)) for l in range(4)]
    strides = [1, 2, 2, 2]
    depth = o.stage or o.depth or 4
    blocks, heads, cin = [], [], c
    for l in range(depth):
        layers = [nn.Sequential(o.conv(shape[0], c, 3), o.bn(c), nn.ReLU(inplace=True))] if l == 0 else []
        for u in range(units[l]):
            layers.append(BasicBlock(o, cin, chans[l], strides[l] if u == 0 else 1))
            cin = chans[l]
        blocks.append(nn.Sequential(*layers))
        if o.stage and l + 1 == o.stage:
            heads.append(StageHead(chans, strides, o.stage, classes, o.projection))
        elif l == 3:
            heads.append(Exit(cin, classes))
        elif o.exits:
            heads.append(early_exit(o, chans[l:], classes))
        else:
            heads.append(nn.Identity())
    return Net(blocks, heads)


def build(arch, width, shape, classes, o):
    if arch == "cnn":
        return cnn(width if width is not None else 16, shape, classes, o)
    if arch == "vgg-me":
        return vgg_me(width or 1.0, shape, classes, o)
    if arch in ("resnet18", "resnet34"):
        return resnet([2, 2, 2, 2] if arch == "resnet18" else [3, 4, 6, 3], width or 1.0, shape, classes, o)
    raise ValueError(f"unknown model {arch}")


# ------------------------------------------------------------------------------------------------
# Method levels (the labels `fedgap memplan --method` prints)

def level_model(method, label, arch, width, shape, classes):
    """The sub-model of one level and NeuLite's nHSIC weights of the input and label terms (0 elsewhere)."""
    words = label.split()
    if method == "fedavg":
        return build(arch, width, shape, classes, Opts()), 0.0, 0.0
    if method in ("heterofl", "fedrolex"):
        rate = 1.0 if label == "full" else float(words[1])
        return build(arch, width, shape, classes, Opts(rate=rate, scaler="train", track=False)), 0.0, 0.0
    if method in ("depthfl", "hypemefed"):  # "depth D"; DepthFL's classifiers on the resnets
        head = "depthfl" if method == "depthfl" and arch.startswith("resnet") else "model"
        return build(arch, width, shape, classes, Opts(depth=int(words[1]), exits=True, head=head)), 0.0, 0.0
    if method == "scalefl":  # "rate S x H exits": floor(S C) channels, ScaleFL's exit heads
        o = Opts(rate=float(words[1]), floor=True, scaler="always", track=False, depth=int(words[3]), exits=True,
                 head="scalefl")
        return build(arch, width, shape, classes, o), 0.0, 0.0
    if method == "neulite":  # "stage T": the default Curriculum Mentor weights (fl/neulite.c)
        t, stages = int(words[1]), 4 if arch.startswith("resnet") else 3
        lam, gam = 0.5 * (stages - t) / (stages - 1), 0.5 * (t - 1) / (stages - 1)
        model = build(arch, width, shape, classes, Opts(stage=t, projection=gam > 0))
        # stage t trains its block, its head and (Training Harmonizer) block t-1's last conv2 + bn2
        for k, block in enumerate(model.blocks):
            if k < t - 1:
                for p in block.parameters():
                    p.requires_grad_(False)
        if t > 1:
            tail = model.blocks[t - 2][-1]
            for name in ("conv2", "bn2"):
                for p in getattr(tail, name).parameters():
                    p.requires_grad_(True)
        return model, lam, gam
    raise ValueError(f"no twin for method {method}")


def gram_kernel(a, sigma):
    """Gaussian kernel of the rows of a (m x d): exp(-|ai - aj|^2 / (2 sigma^2 d)) (neulite.md 2.2)."""
    r = (a * a).sum(1, keepdim=True)
    d2 = (r - 2 * a @ a.t() + r.t()).abs()
    return torch.exp(-d2 / (2 * sigma * sigma * a.shape[1]))


def nhsic(ka, kb):
    def center(k):
        return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()
    a, b = center(ka), center(kb)
    return (a * b).sum() / (a.norm() * b.norm())


def train_steps(model, x, y, n, lam=0.0, gam=0.0):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.02, momentum=0.9, weight_decay=5e-4)
    kx = gram_kernel(torch.flatten(x, 1), 5.0) if lam > 0 else None
    ky = gram_kernel(F.one_hot(y, 10).float(), 5.0) if gam > 0 else None
    loss = None
    for _ in range(n):
        opt.zero_grad(set_to_none=True)
        outs = model(x)
        loss = 0
        for out in outs:
            if isinstance(out, tuple):  # NeuLite stage head
                logits, zx, zy = out
                loss = loss + F.cross_entropy(logits, y)
                if kx is not None:
                    loss = loss - lam * nhsic(kx, gram_kernel(zx, 5.0))
                if ky is not None and zy is not None:
                    loss = loss - gam * nhsic(ky, gram_kernel(zy, 5.0))
            else:
                loss = loss + F.cross_entropy(out, y)
        loss.backward()
        opt.step()
    return float(loss)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["train", "level"])
    ap.add_argument("--model", default="cnn", choices=["cnn", "vgg-me", "resnet18", "resnet34"])
    ap.add_argument("--width", type=float, default=None, help="cnn: block-1 channels (16); others: multiplier (1)")
    ap.add_argument("--input", default="3x32x32", help="CxHxW")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--method", default="fedavg")
    ap.add_argument("--level", default="full")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    shape = tuple(int(v) for v in args.input.split("x"))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((args.batch,) + shape, generator=gen)
    y = torch.randint(0, args.classes, (args.batch,), generator=gen)
    base = proc_status("VmRSS")
    if args.what == "train":
        model, lam, gam = build(args.model, args.width, shape, args.classes, Opts()), 0.0, 0.0
    else:
        model, lam, gam = level_model(args.method, args.level, args.model, args.width, shape, args.classes)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    rate = 0.0
    if args.what == "train":
        train_steps(model, x, y, args.warmup)
        t0 = time.perf_counter()
        loss = train_steps(model, x, y, args.steps)
        rate = args.batch * args.steps / (time.perf_counter() - t0)
    else:
        loss = train_steps(model, x, y, args.steps, lam, gam)
    if loss != loss:
        print("torch_suite: the loss is NaN", file=sys.stderr)
        return 1
    print(f"samples_per_s={rate:.1f} peak_rss_bytes={proc_status('VmHWM')} base_rss_bytes={base} params={params} "
          f"trained={trained} threads={torch.get_num_threads()} torch={torch.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
