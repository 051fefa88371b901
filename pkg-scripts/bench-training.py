#!/usr/bin/env python3
"""Training throughput, kdlens against PyTorch, on this machine's CPU (BENCHMARKS.md). Never run
in CI. Needs PyTorch + torchvision and a built `kdlens`:

    ~/.cache/torchenv/bin/python pkg-scripts/bench-training.py --kdlens $CARGO_TARGET_DIR/debug/kdlens

For each input side (32², 64²) and model (DenseNet-121 teacher, five-layer student): kdlens trains
one epoch on a Fashion-MNIST subset (`--per-class` images per class, batch 64, Adam, horizontal
flips; the student by distillation from the teacher just trained) and its log's images/s is read;
PyTorch runs the same networks, batch, optimiser and loss on tensors already in memory (no
decoding, no augmentation: the comparison favours PyTorch) for as many images. Both use
`--threads` threads.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
from importlib import import_module  # noqa: E402

FiveLayerStudent = import_module("bench-peers").FiveLayerStudent


def kdlens_rate(args, run_dir, command, side, extra):
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    subprocess.run([args.kdlens, "--run-dir", run_dir, command, "--data", args.data, "--grayscale",
                    "--image-size", str(side), "--epochs", "1", "--batch-size", "64",
                    "--limit-per-class", str(args.per_class), "--test-limit-per-class", "20",
                    "--replicas", str(args.replicas), *extra], check=True, capture_output=True, env=env)
    log = open(os.path.join(run_dir, "log.txt")).read()
    return float(re.findall(r"\(([\d.]+) img/s\)", log)[-1])


def torch_rate(model, side, images, distill_from=None):
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(64, 3, side, side)
    y = torch.randint(0, 10, (64,))
    if distill_from is not None:
        distill_from.eval()
    steps = max(1, images // 64)
    start = None
    for step in range(steps + 2):
        if step == 2:
            start = time.perf_counter()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        if distill_from is not None:
            with torch.no_grad():
                soft = F.softmax(distill_from(x) / 10, dim=1)
            loss = 0.3 * loss + 0.7 * 100 * F.kl_div(F.log_softmax(logits / 10, dim=1), soft,
                                                      reduction="batchmean")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return steps * 64 / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kdlens", required=True)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--sides", default="32,64")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_images = int(args.per_class * 10 * 0.6)
    print(f"{args.threads} threads, kdlens replicas {args.replicas}, "
          f"{train_images} training images per epoch, batch 64")
    print("| model | side | kdlens img/s | PyTorch img/s | kdlens / PyTorch |")
    print("|---|---|---|---|---|")
    for side in map(int, args.sides.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            teacher_dir, student_dir = os.path.join(tmp, "teacher"), os.path.join(tmp, "student")
            ours_t = kdlens_rate(args, teacher_dir, "train-teacher", side, [])
            ours_s = kdlens_rate(args, student_dir, "distill", side,
                                 ["--teacher", os.path.join(teacher_dir, "teacher.kdlens"),
                                  "--alpha", "0.7", "--temperature", "10"])
        teacher = torchvision.models.densenet121(num_classes=10)
        theirs_t = torch_rate(teacher, side, train_images)
        theirs_s = torch_rate(FiveLayerStudent(10), side, train_images, distill_from=teacher)
        for name, ours, theirs in [("teacher (DenseNet-121)", ours_t, theirs_t),
                                   ("student (five-layer, KD)", ours_s, theirs_s)]:
            print(f"| {name} | {side}² | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
