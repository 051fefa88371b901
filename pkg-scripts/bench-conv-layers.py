#!/usr/bin/env python3
"""PyTorch's side of the per-layer convolution table in BENCHMARKS.md (kdlens' side is
`cargo run -p kdlens-cli --example conv_paths`): the same layers, batch 1, forward and
forward + backward (input and weight gradients), medians of interleaved runs. Never run in CI.

    ~/.cache/torchenv/bin/python pkg-scripts/bench-conv-layers.py [--threads 2] [--batch 1]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

# name, (c_in, c_out), side, kernel, stride, bias — as in crate/kdlens-cli/examples/conv_paths.rs
LAYERS = [
    ("student conv1", (3, 32), 224, 3, 1, True),
    ("student conv2", (32, 64), 112, 3, 1, True),
    ("student conv3", (64, 128), 56, 3, 1, True),
    ("student conv4", (128, 256), 28, 3, 1, True),
    ("student conv5", (256, 512), 14, 3, 1, True),
    ("densenet stem 7×7/2", (3, 64), 224, 7, 2, False),
    ("densenet 1×1 block1", (256, 128), 56, 1, 1, False),
    ("densenet 3×3 block1", (128, 32), 56, 3, 1, False),
    ("densenet 3×3 block2", (128, 32), 28, 3, 1, False),
    ("densenet 3×3 block3", (128, 32), 14, 3, 1, False),
    ("densenet 3×3 block4", (128, 32), 7, 3, 1, False),
    ("densenet 1×1 block4", (1024, 128), 7, 1, 1, False),
]


def median_ms(fns, runs):
    for f in fns:
        f()
        f()
    times = [[] for _ in fns]
    for _ in range(runs):
        for f, t in zip(fns, times):
            start = time.perf_counter()
            f()
            t.append((time.perf_counter() - start) * 1e3)
    return [statistics.median(t) for t in times]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"PyTorch {torch.__version__}, {args.threads} threads, batch {args.batch}")
    print("| layer | GMAC | PyTorch ms (GFLOP/s) | PyTorch fwd+bwd ms |")
    print("|---|---|---|---|")
    total = [0.0, 0.0]
    for name, (c_in, c_out), side, k, stride, bias in LAYERS:
        x = torch.rand(args.batch, c_in, side, side)
        w = torch.rand(c_out, c_in, k, k)
        b = torch.rand(c_out) if bias else None
        pad = k // 2

        def forward():
            with torch.no_grad():
                F.conv2d(x, w, b, stride, pad)

        def train():
            xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
            bg = b.clone().requires_grad_() if b is not None else None
            F.conv2d(xg, wg, bg, stride, pad).sum().backward()

        fwd, both = median_ms([forward, train], args.runs)
        out = (side + 2 * pad - k) // stride + 1
        gmac = c_out * c_in * k * k * out * out * args.batch / 1e9
        print(f"| {name} | {gmac:.3f} | {fwd:.2f} ({2 * gmac / fwd * 1e3:.0f}) | {both:.2f} |")
        total[0] += fwd
        total[1] += both
    print(f"| total | | {total[0]:.1f} | {total[1]:.1f} |")


if __name__ == "__main__":
    main()
