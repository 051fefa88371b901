#!/usr/bin/env python3
"""P4 (BENCHMARKS.md): training images/s on one GPU at 224², batch 32 — kdlens on burn's `wgpu`
backend (Vulkan) against PyTorch (CUDA) on the same GPU. Never run in CI; run on a GPU machine
with a built `kdlens` and Fashion-MNIST's IDX files:

    python3 pkg-scripts/bench-gpu-training.py --kdlens ./kdlens --data fashion-mnist-dir

kdlens trains two epochs of `--per-class` images per class (Adam, horizontal flips; the student by
distillation, α 0.7 T 10, from the teacher just trained) and the second epoch's images/s is read
from its log (the first compiles the GPU kernels). Its figure includes decoding-free batch
assembly on the CPU, augmentation and, for the student, the cached teacher logits. PyTorch runs
the same networks, batch, optimiser and loss on a batch already on the GPU, in float32 with TF32
off (kdlens computes in float32) and, for reference, with PyTorch's default TF32 convolutions.
Prints one JSON object.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
from importlib import import_module  # noqa: E402

FiveLayerStudent = import_module("bench-peers").FiveLayerStudent


def kdlens_rate(args, run_dir, command, extra):
    started = time.perf_counter()
    result = subprocess.run(
        [args.kdlens, "--device", "wgpu", "--run-dir", run_dir, command, "--data", args.data,
         "--grayscale", "--image-size", str(args.side), "--epochs", "2", "--batch-size",
         str(args.batch), "--limit-per-class", str(args.per_class), "--test-limit-per-class", "10",
         "--replicas", "1", "--no-vflip", "--shift", "0", "--zoom", "0", "--rotation", "0", *extra],
        capture_output=True, text=True, env=dict(os.environ, BURN_DEVICE="wgpu"))
    if result.returncode != 0:
        raise RuntimeError(f"kdlens {command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    log = open(os.path.join(run_dir, "log.txt")).read()
    rates = [float(r) for r in re.findall(r"\(([\d.]+) img/s\)", log)]
    return {"epoch_rates": rates, "wall_s": time.perf_counter() - started}


def torch_rate(model, args, teacher=None, steps=30, warmup=5):
    device = torch.device("cuda")
    model = model.to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(args.batch, 3, args.side, args.side, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    if teacher is not None:
        teacher = teacher.to(device).eval()
    for step in range(steps + warmup):
        if step == warmup:
            torch.cuda.synchronize()
            start = time.perf_counter()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        if teacher is not None:
            with torch.no_grad():
                soft = F.log_softmax(teacher(x) / 10, dim=1)
            kl = F.kl_div(F.log_softmax(logits / 10, dim=1), soft, reduction="batchmean", log_target=True)
            loss = 0.7 * loss + 0.3 * 100 * kl
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    torch.cuda.synchronize()
    return steps * args.batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kdlens", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--work", default="/tmp/p4")
    parser.add_argument("--side", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--per-class", type=int, default=100)
    args = parser.parse_args()
    out = {"gpu": torch.cuda.get_device_name(0), "side": args.side, "batch": args.batch}

    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        key = "pytorch_tf32" if tf32 else "pytorch_fp32"
        teacher = torchvision.models.densenet121(num_classes=10)
        out[key] = {
            "teacher": torch_rate(teacher, args),
            "student_kd": torch_rate(FiveLayerStudent(10), args, teacher=teacher),
        }
        print(json.dumps(out), flush=True)

    teacher_run = os.path.join(args.work, "teacher")
    out["kdlens_wgpu"] = {"teacher": kdlens_rate(args, teacher_run, "train-teacher", [])}
    print(json.dumps(out), flush=True)
    out["kdlens_wgpu"]["student_kd"] = kdlens_rate(
        args, os.path.join(args.work, "student"), "distill",
        ["--teacher", os.path.join(teacher_run, "teacher.kdlens"), "--alpha", "0.7",
         "--temperature", "10"])
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
