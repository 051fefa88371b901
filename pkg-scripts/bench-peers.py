#!/usr/bin/env python3
"""Measures kdlens against PyTorch on the same networks, on this machine's CPU (issue P2).

Never run in CI. Needs PyTorch (pip install torch torchvision safetensors numpy) and a built
`kdlens` binary. Usage:

    ~/.cache/torchenv/bin/python pkg-scripts/bench-peers.py \
        --kdlens $CARGO_TARGET_DIR/debug/kdlens --model www/model/model.kdlens \
        --safetensors runs/demo-full/export/model.safetensors --out runs/bench-peers

1. Parity: the exported student (safetensors, PyTorch layout) is loaded into the same five-layer
   network written in PyTorch; its probabilities on a test image are compared with
   `kdlens explain` on that image (≤ 1e-4 expected).
   Skipped without --model and --safetensors.
2. Timing at 224², batch 1, with the same thread count for both (--threads, default: all
   cores): prediction and Grad-CAM of the student and of DenseNet-121, and SHAP (expected
   gradients, 200 samples) of the student. kdlens is timed by `kdlens bench --synthetic 224`
   once per vector path (--simd, default: every vector path this CPU has, through KDLENS_SIMD),
   PyTorch here; each round runs PyTorch and then every path, and medians are reported with the
   ratio of each path to PyTorch. The CPU model and the paths are recorded.
Writes bench-peers.json and bench-peers.md into --out.

3. With --onnx PATH: also writes the exported student (same weights) as ONNX at 224² input, for
   the browser comparison with ONNX Runtime Web (pkg-scripts/bench-web.mjs), after checking that
   onnxruntime agrees with PyTorch on it (≤ 1e-4).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import load_file


class FiveLayerStudent(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        ch = [3, 32, 64, 128, 256, 512]
        self.convs = nn.ModuleList(nn.Conv2d(ch[i], ch[i + 1], 3, padding=1) for i in range(5))
        self.fc1 = nn.Linear(512, 512)
        self.fc2 = nn.Linear(512, 256)
        self.fc3 = nn.Linear(256, 128)
        self.classifier = nn.Linear(128, num_classes)

    def trunk(self, x):
        acts = []
        for conv in self.convs:
            a = F.relu(conv(x))
            acts.append(a)
            x = F.max_pool2d(a, 2)
        return acts, x

    def head(self, x):
        x = x.mean((2, 3))
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = F.relu(self.fc3(x))
        return self.classifier(x)

    def forward(self, x):
        return self.head(self.trunk(x)[1])


def grad_cam_student(model, x):
    acts, _ = model.trunk(x)
    a = acts[-1].detach().requires_grad_(True)
    logits = model.head(F.max_pool2d(a, 2))
    score = logits[0, logits[0].argmax()]
    (g,) = torch.autograd.grad(score, a)
    return F.relu((g.mean((2, 3), keepdim=True) * a).sum(1))


def grad_cam_densenet(model, x):
    features = model.features(x)
    a = F.relu(features).detach().requires_grad_(True)
    logits = model.classifier(torch.flatten(F.adaptive_avg_pool2d(a, 1), 1))
    score = logits[0, logits[0].argmax()]
    (g,) = torch.autograd.grad(score, a)
    return F.relu((g.mean((2, 3), keepdim=True) * a).sum(1))


def shap_student(model, x, background, samples, batch=16, seed=0):
    rng = np.random.default_rng(seed)
    index = torch.tensor(rng.integers(0, background.shape[0], samples))
    t = torch.tensor(rng.random(samples), dtype=torch.float32)
    total = torch.zeros_like(x[0])
    for start in range(0, samples, batch):
        i, tt = index[start:start + batch], t[start:start + batch]
        delta = x - background[i]
        points = (background[i] + tt.view(-1, 1, 1, 1) * delta).requires_grad_(True)
        (g,) = torch.autograd.grad(model(points)[:, 0].sum(), points)
        total += (g * delta).sum(0)
    return total / samples


def median_ms(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def parity(args, classes):
    """Probabilities of PyTorch on the exported weights vs `kdlens explain`, same image."""
    state = {k: v for k, v in load_file(args.safetensors).items()}
    model = FiveLayerStudent(classes)
    model.load_state_dict(state)
    model.eval()
    size = args.parity_size
    rng = np.random.default_rng(3)
    pixels = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    from PIL import Image  # torchvision's dependency; only needed here
    path = os.path.join(tempfile.mkdtemp(), "parity.png")
    Image.fromarray(pixels).save(path)
    run = tempfile.mkdtemp()
    subprocess.run([args.kdlens, "--run-dir", run, "explain", path, "--model", args.model], check=True, capture_output=True)
    native = json.load(open(os.path.join(run, "parity", "explanation.json")))
    x = torch.tensor(pixels, dtype=torch.float32).permute(2, 0, 1)
    if args.grayscale:
        x = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).expand(3, -1, -1)
    x = (x / 255.0)[None]
    with torch.no_grad():
        p = F.softmax(model(x), 1)[0].numpy()
    return float(np.abs(p - np.array(native["probabilities"])).max())


def export_onnx(args, classes, path):
    """The exported student, same weights, as ONNX with a fixed 1×3×224×224 input."""
    model = FiveLayerStudent(classes)
    model.load_state_dict(load_file(args.safetensors))
    model.eval()
    x = torch.rand(1, 3, 224, 224)
    torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["logits"], dynamo=False,
                      opset_version=17)
    import onnxruntime  # only needed here
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (ort_logits,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        diff = float(np.abs(ort_logits - model(x).numpy()).max())
    print(f"ONNX written to {path}; max |logit_onnxruntime - logit_pytorch| = {diff:.2e}")
    assert diff <= 1e-4, diff
    return diff


def cpu_flags():
    """The flags of this CPU (x86-64 Linux), or an empty set elsewhere."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def vector_paths():
    """The kdlens vector paths this CPU has, fastest first (the scalar reference left out)."""
    import platform
    if platform.machine() in ("aarch64", "arm64"):
        return ["neon"]
    flags = cpu_flags()
    return [p for p, need in [("avx512", {"avx512f"}), ("avx2", {"avx2", "fma"})] if need <= flags]


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kdlens", required=True)
    parser.add_argument("--model", help="the exported student bundle (.kdlens), for the parity check")
    parser.add_argument("--safetensors", help="the same student as safetensors")
    parser.add_argument("--simd", default=",".join(vector_paths()),
                        help="the kdlens vector paths to time, comma-separated (KDLENS_SIMD values)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--grayscale", action="store_true", help="the model was trained on grayscale")
    parser.add_argument("--parity-size", type=int, default=32, help="the model's input side")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shap-samples", type=int, default=200)
    parser.add_argument("--out", required=True)
    parser.add_argument("--onnx", help="also export the student as ONNX (224² input) to this path")
    parser.add_argument("--onnx-only", action="store_true", help="only export the ONNX model")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.onnx:
        export_onnx(args, args.classes, args.onnx)
        if args.onnx_only:
            return 0

    diff = None
    if args.model and args.safetensors:
        diff = parity(args, args.classes)
        print(f"parity: max |p_kdlens - p_pytorch| = {diff:.2e}")
    paths = [p for p in args.simd.split(",") if p]

    student = FiveLayerStudent(4).eval()
    teacher = torchvision.models.densenet121(num_classes=4).eval()
    x = torch.rand(1, 3, 224, 224)
    background = torch.rand(16, 3, 224, 224)
    ops = {
        "student prediction": lambda: student(x),
        "student Grad-CAM (last layer)": lambda: grad_cam_student(student, x),
        "teacher prediction": lambda: teacher(x),
        "teacher Grad-CAM (last layer)": lambda: grad_cam_densenet(teacher, x),
    }
    torch_ms = {k: [] for k in ops}
    torch_ms["student SHAP (expected gradients)"] = []
    kdlens_rows = {path: [] for path in paths}
    for r in range(args.rounds):
        for path in paths:
            run = tempfile.mkdtemp()
            env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), KDLENS_SIMD=path)
            subprocess.run([args.kdlens, "--run-dir", run, "bench", "--synthetic", "224", "--runs", str(args.runs),
                            "--shap-samples", str(args.shap_samples)], check=True, capture_output=True, env=env)
            kdlens_rows[path].append(json.load(open(os.path.join(run, "bench.json"))))
        with torch.no_grad():
            for name in ["student prediction", "teacher prediction"]:
                torch_ms[name].append(median_ms(ops[name], args.runs, 2))
        for name in ["student Grad-CAM (last layer)", "teacher Grad-CAM (last layer)"]:
            torch_ms[name].append(median_ms(ops[name], args.runs, 2))
        torch_ms["student SHAP (expected gradients)"].append(
            median_ms(lambda: shap_student(student, x, background, args.shap_samples), 1, 0))
        print(f"round {r + 1}/{args.rounds} done")

    def kd(path, model, operation):
        return statistics.median(
            t["median_ms"] for rows in kdlens_rows[path] for row in rows if row["model"] == model
            for t in row["timings"] if t["operation"].startswith(operation))

    pairs = [
        ("student prediction", ("student", "prediction")),
        ("student Grad-CAM (last layer)", ("student", "Grad-CAM")),
        ("student full explanation (kdlens) vs prediction + Grad-CAM (PyTorch)", ("student", "full explanation")),
        ("teacher prediction", ("teacher", "prediction")),
        ("teacher Grad-CAM (last layer)", ("teacher", "Grad-CAM")),
        ("student SHAP (expected gradients)", ("student", "SHAP")),
    ]
    rows = []
    for name, (model, operation) in pairs:
        if name.startswith("student full"):
            pt = statistics.median(torch_ms["student prediction"]) + statistics.median(torch_ms["student Grad-CAM (last layer)"])
        else:
            pt = statistics.median(torch_ms[name])
        kd_ms = {path: kd(path, model, operation) for path in paths}
        rows.append({"operation": name, "pytorch_ms": pt, "kdlens_ms": kd_ms,
                     "ratio": {path: ms / pt for path, ms in kd_ms.items()}})
    result = {"cpu": cpu_model(), "paths": paths, "threads": args.threads, "torch": torch.__version__,
              "parity_max_abs_diff": diff, "rows": rows}
    json.dump(result, open(os.path.join(args.out, "bench-peers.json"), "w"), indent=2)
    head = " | ".join(f"kdlens {p} ms | {p} / PyTorch" for p in paths)
    lines = [f"{cpu_model()}, {args.threads} threads, {args.rounds} alternating rounds, median of {args.runs} runs each",
             "", f"| operation (224², batch 1) | PyTorch ms | {head} |", "|---" * (2 + 2 * len(paths)) + "|"]
    for r in rows:
        cells = " | ".join(f"{r['kdlens_ms'][p]:.1f} | {r['ratio'][p]:.2f}×" for p in paths)
        lines.append(f"| {r['operation']} | {r['pytorch_ms']:.1f} | {cells} |")
    table = "\n".join(lines)
    open(os.path.join(args.out, "bench-peers.md"), "w").write(table + "\n")
    print(table)


if __name__ == "__main__":
    sys.exit(main())
