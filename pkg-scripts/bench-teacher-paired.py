#!/usr/bin/env python3
"""The teacher's prediction (DenseNet-121, 224², batch 1) in kdlens and PyTorch, in tight pairs.

Never run in CI. `bench-peers.py` times each side for minutes before switching, and this shared
VM drifts by up to ±30 % over such spans, which is more than separates the two libraries on the
teacher. Here each pair is one `kdlens bench --synthetic 224 --no-shap` (its teacher-prediction
median) followed at once by a PyTorch median over as many runs, both on the same thread count; the
ratio is taken within each pair and the median of the pairs' ratios reported. Usage:

    ~/.cache/torchenv/bin/python pkg-scripts/bench-teacher-paired.py \
        --kdlens $CARGO_TARGET_DIR/debug/kdlens --pairs 5
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import torch
import torchvision


def torch_median_ms(model, x, runs):
    with torch.no_grad():
        for _ in range(2):
            model(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def kdlens_median_ms(binary, runs, threads):
    run = tempfile.mkdtemp()
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    subprocess.run([binary, "--run-dir", run, "bench", "--synthetic", "224", "--runs", str(runs),
                    "--no-shap"], check=True, capture_output=True, env=env)
    rows = json.load(open(os.path.join(run, "bench.json")))
    teacher = next(row for row in rows if row["model"] == "teacher")
    return next(t["median_ms"] for t in teacher["timings"] if t["operation"] == "prediction")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kdlens", required=True, help="the built kdlens binary")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--runs", type=int, default=15, help="timed runs per median")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = torchvision.models.densenet121(weights=None).eval()
    x = torch.rand(1, 3, 224, 224)
    ratios = []
    print("| pair | kdlens ms | PyTorch ms | kdlens / PyTorch |\n|---|---|---|---|")
    for pair in range(1, args.pairs + 1):
        ours = kdlens_median_ms(args.kdlens, args.runs, args.threads)
        theirs = torch_median_ms(model, x, args.runs)
        ratios.append(ours / theirs)
        print(f"| {pair} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f}× |", flush=True)
    print(f"median ratio {statistics.median(ratios):.2f}× (range {min(ratios):.2f}–{max(ratios):.2f}×)")


if __name__ == "__main__":
    main()
