#!/usr/bin/env python3
"""kdlens' training recipe in PyTorch, for the seed-spread comparisons in BENCHMARKS.md ("Training
recipe against PyTorch"). Never run in CI.

    # the demo's label-only student, on the CPU
    ~/.cache/torchenv/bin/python pkg-scripts/recipe-pytorch.py --seeds 42 1 2
    # the full recipe on a GPU: teacher, label-only and distilled students
    python3 pkg-scripts/recipe-pytorch.py --device cuda --per-class 0 --test-per-class 0 \
        --size 64 --batch 128 --teacher-epochs 6 --epochs 10 --seeds 42 1 2

What kdlens does (`config.toml` of its runs), written out: Fashion-MNIST's IDX files; per class
`--per-class` training-file images (0: all), 20 % of them held out for validation, and
`--test-per-class` test-file images (0: all), drawn per seed; 28² → `--size`² bilinear
(align_corners=False, as kdlens' resize), gray replicated to three channels, values / 255. The
five-layer student (five 3×3 conv + ReLU + 2×2 max-pool, global average pool, dense 512/256/128
with dropout 0.5/0.4/0.3) and torchvision's DenseNet-121 teacher, PyTorch's default
initialisation (which burn's defaults equal); Adam 1e-3 (PyTorch's defaults), horizontal flips;
the learning rate × 0.1 after 3 epochs without a better validation loss (kdlens' rule: ≥ patience
stale epochs); the weights of the best validation-loss epoch are tested. Distillation: α · CE +
(1 − α) · T² · KL(teacher ‖ student) at temperature T, as kdlens' `kd_loss`. Prints each seed's
test accuracies and their mean ± sample standard deviation.
"""
import argparse
import gzip
import os
import statistics
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
from importlib import import_module  # noqa: E402

TrunkAndHead = import_module("bench-peers").FiveLayerStudent


class Student(TrunkAndHead):
    """bench-peers' five-layer student with kdlens' dropout after each hidden dense layer."""

    def __init__(self, num_classes):
        super().__init__(num_classes)
        self.dropouts = nn.ModuleList(nn.Dropout(p) for p in (0.5, 0.4, 0.3))

    def head(self, x):
        x = x.mean((2, 3))
        for fc, dropout in zip((self.fc1, self.fc2, self.fc3), self.dropouts):
            x = dropout(F.relu(fc(x)))
        return self.classifier(x)


def idx(data, name):
    with gzip.open(os.path.join(data, name)) as f:
        data = f.read()
    if name.endswith("labels-idx1-ubyte.gz"):
        return np.frombuffer(data, np.uint8, offset=8).astype(np.int64)
    return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)


def subset(labels, per_class, rng):
    limit = per_class or None
    return np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:limit] for c in range(10)])


def tensors(images, labels, indices, size, device):
    x = torch.from_numpy(images[indices]).float().div(255).unsqueeze(1).to(device)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.expand(-1, 3, -1, -1).contiguous(), torch.from_numpy(labels[indices]).to(device)


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 512]) for i in range(0, len(x), 512)])
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def kd_loss(logits, labels, teacher_logits, alpha, t):
    hard = F.cross_entropy(logits, labels)
    if teacher_logits is None or alpha >= 1:
        return hard
    soft = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                    reduction="batchmean", log_target=True)
    return alpha * hard + (1 - alpha) * t * t * soft


def fit(model, data, args, epochs, teacher=None, alpha=1.0, t=1.0):
    """Trains `model` as kdlens' loop does; returns its test accuracy at the best epoch."""
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    lr, best_loss, best_state, stale = args.lr, float("inf"), None, 0
    if teacher is not None:
        teacher.eval()
        with torch.no_grad():
            val_teacher = torch.cat([teacher(x_val[i:i + 512]) for i in range(0, len(x_val), 512)])
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), device=x_train.device)
        for start in range(0, len(order), args.batch):
            batch = order[start:start + args.batch]
            x = x_train[batch]
            flip = torch.rand(len(batch), device=x.device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
            teacher_logits = None
            if teacher is not None:
                with torch.no_grad():
                    teacher_logits = teacher(x)
            loss = kd_loss(model(x), y_train[batch], teacher_logits, alpha, t)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(x_val[i:i + 512]) for i in range(0, len(x_val), 512)])
            val_loss = kd_loss(logits, y_val, val_teacher if teacher is not None else None,
                               alpha, t).item()
            val_accuracy = (logits.argmax(1) == y_val).float().mean().item()
        if val_loss < best_loss:
            best_loss, stale = val_loss, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale % args.patience == 0:
                lr *= 0.1
                for group in optimiser.param_groups:
                    group["lr"] = lr
        print(f"    epoch {epoch + 1}: val loss {val_loss:.4f} acc {val_accuracy:.4f}", flush=True)
    model.load_state_dict(best_state)
    return evaluate(model, x_test, y_test)[1]


def split(seed, args, train_file, test_file):
    rng = np.random.default_rng(seed)
    chosen = subset(train_file[1], args.per_class, rng)
    labels = train_file[1][chosen]
    val_mask = np.zeros(len(chosen), bool)
    for c in range(10):
        members = np.flatnonzero(labels == c)
        val_mask[members[: int(round(len(members) * 0.2))]] = True
    at = lambda file, idx: tensors(*file, idx, args.size, args.device)
    return (at(train_file, chosen[~val_mask]), at(train_file, chosen[val_mask]),
            at(test_file, subset(test_file[1], args.test_per_class, rng)))


def run(seed, args, train_file, test_file):
    """Test accuracies of one seed: {model: accuracy}."""
    data = split(seed, args, train_file, test_file)
    results = {}
    torch.manual_seed(seed)
    if args.teacher_epochs:
        print(f"  seed {seed}: teacher", flush=True)
        teacher = torchvision.models.densenet121(num_classes=10).to(args.device)
        results["teacher"] = fit(teacher, data, args, args.teacher_epochs)
        torch.manual_seed(seed)
        print(f"  seed {seed}: KD student", flush=True)
        results["kd"] = fit(Student(10).to(args.device), data, args, args.epochs, teacher,
                            args.alpha, args.temperature)
    torch.manual_seed(seed)
    print(f"  seed {seed}: label-only student", flush=True)
    results["labels"] = fit(Student(10).to(args.device), data, args, args.epochs)
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--teacher-epochs", type=int, default=0, help="0: no teacher, no KD")
    parser.add_argument("--epochs", type=int, default=7, help="student epochs")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=0.7)
    parser.add_argument("--temperature", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    train_file = (idx(args.data, "train-images-idx3-ubyte.gz"), idx(args.data, "train-labels-idx1-ubyte.gz"))
    test_file = (idx(args.data, "t10k-images-idx3-ubyte.gz"), idx(args.data, "t10k-labels-idx1-ubyte.gz"))
    per_seed = []
    for seed in args.seeds:
        per_seed.append(run(seed, args, train_file, test_file))
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in per_seed[-1].items()), flush=True)
    for key in per_seed[0]:
        values = [r[key] for r in per_seed]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"PyTorch {key}: {statistics.mean(values):.4f} ± {spread:.4f} over seeds {args.seeds} "
              f"({', '.join(f'{v:.4f}' for v in values)})", flush=True)


if __name__ == "__main__":
    main()
