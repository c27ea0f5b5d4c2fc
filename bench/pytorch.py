"""The study's training against the same training in PyTorch, in one process tree: MobileNetV2
(torchvision's layout, written out here so torchvision is not needed), 10 classes, 32px,
batch 64, plain SGD at 0.05, He-normal convs; PyTorch on in-memory synthetic batches (its
ceiling, no input pipeline), ours on the prepared shards as the study trains. Each alone, then
two side by side (PyTorch with one thread each, as ours runs one thread per op). PyTorch is
installed for this bench only (`pip install torch==2.13.0`), not in requirements.txt.

Usage: python -m bench.pytorch [--prepared data/prepared] [--epochs 3] [--steps 150]
    [--out bench/results-pytorch.json]
"""
import argparse
import json
import os
import subprocess
import sys
import time

from bench.portability import (cpu_name, finish_variant, run_variant, side_by_side,
                               start_variant)

# torchvision's MobileNetV2 (Sandler et al. 2018): expansion t, channels c, repeats n, stride s
SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2(classes=10):
    import torch.nn as nn

    def conv_bn(inp, out, kernel, stride, groups=1, relu=True):
        layers = [nn.Conv2d(inp, out, kernel, stride, kernel // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(out)]
        return layers + [nn.ReLU6(inplace=True)] if relu else layers

    class InvertedResidual(nn.Module):
        def __init__(self, inp, out, stride, t):
            super().__init__()
            hidden = inp * t
            layers = conv_bn(inp, hidden, 1, 1) if t != 1 else []
            layers += conv_bn(hidden, hidden, 3, stride, groups=hidden)
            layers += conv_bn(hidden, out, 1, 1, relu=False)
            self.block, self.residual = nn.Sequential(*layers), stride == 1 and inp == out

        def forward(self, x):
            return x + self.block(x) if self.residual else self.block(x)

    layers, channels = conv_bn(3, 32, 3, 2), 32
    for t, c, n, s in SETTING:
        for i in range(n):
            layers.append(InvertedResidual(channels, c, s if i == 0 else 1, t))
            channels = c
    layers += conv_bn(channels, 1280, 1, 1)
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, classes))
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in")
    return model


def train_torch(epochs, steps, threads):
    """images/s of PyTorch's training, the fastest epoch after the first."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = mobilenet_v2()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = torch.nn.CrossEntropyLoss()
    images = torch.randint(0, 256, (steps, 64, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (steps, 64))
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        for x, y in zip(images, labels):
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x.float() / 255.0), y).backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return {"images_per_second": round(steps * 64 / min(seconds[1:] or seconds), 1),
            "torch": torch.__version__, "threads": threads}


def start_torch(epochs, steps, threads):
    return subprocess.Popen([sys.executable, "-m", "bench.pytorch", "--one-torch", str(threads),
                             "--epochs", str(epochs), "--steps", str(steps)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", default=os.path.join("data", "prepared"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--out", default=os.path.join("bench", "results-pytorch.json"))
    parser.add_argument("--one-torch", type=int, help=argparse.SUPPRESS)  # a worker: threads
    args = parser.parse_args()
    if args.one_torch:
        print(json.dumps(train_torch(args.epochs, args.steps, args.one_torch)))
        return
    cores = len(os.sched_getaffinity(0))
    ours, torch = (lambda: start_variant(args.prepared, {}, False, args.epochs, args.steps),
                   lambda threads: start_torch(args.epochs, args.steps, threads))
    results = {"cpu": cpu_name(), "cores": cores, "epochs": args.epochs,
               "steps_per_epoch": args.steps, "alone": {}, "two_side_by_side": {}}
    results["alone"]["ours"] = run_variant(args.prepared, {}, False, args.epochs,
                                           args.steps)["images_per_second"]
    for threads in sorted({1, cores}):
        results["alone"][f"pytorch, {threads} thread(s)"] = \
            finish_variant(torch(threads))["images_per_second"]
    for name, start in (("ours", ours), ("pytorch, 1 thread each", lambda: torch(1))):
        results["two_side_by_side"][name] = [r["images_per_second"]
                                             for r in side_by_side([start, start])]
    best_torch = max(v for k, v in results["alone"].items() if k != "ours")
    results["ours_over_pytorch_alone"] = round(results["alone"]["ours"] / best_torch, 2)
    pairs = {k: sum(v) for k, v in results["two_side_by_side"].items()}
    results["ours_over_pytorch_side_by_side"] = round(pairs["ours"] /
                                                      pairs["pytorch, 1 thread each"], 2)
    for kind in ("alone", "two_side_by_side"):
        for name, value in results[kind].items():
            print(f"{kind.replace('_', ' ')}: {name}: {value} images/s")
    print(f"ours / PyTorch: {results['ours_over_pytorch_alone']}x alone, "
          f"{results['ours_over_pytorch_side_by_side']}x two side by side")
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
