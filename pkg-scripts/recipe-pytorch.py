#!/usr/bin/env python3
"""The demo's label-only student recipe in PyTorch, for the seed-spread comparison in
BENCHMARKS.md ("Training recipe against PyTorch"). Never run in CI:

    ~/.cache/torchenv/bin/python pkg-scripts/recipe-pytorch.py --seeds 42 1 2

What `kdlens demo` does for its label-only student (`student-labels-only/config.toml`), written
out: Fashion-MNIST from /usr/share/datasets/fashion-mnist; per class 1,000 training-file images
(800 train, 200 validation) and 200 test-file images, drawn per seed; 28² → 32² bilinear
(align_corners=False, as kdlens' resize), gray replicated to three channels, values / 255; the
five-layer student (five 3×3 conv + ReLU + 2×2 max-pool, global average pool, dense 512/256/128
with dropout 0.5/0.4/0.3, PyTorch's default initialisation, which burn's defaults equal); Adam
1e-3 (PyTorch's defaults), batch 64, horizontal flips, 7 epochs; the learning rate × 0.1 after 3
epochs without a better validation loss (kdlens' rule: ≥ patience stale epochs); the weights of
the best validation-loss epoch are tested. Prints each seed's test accuracy and the mean ± sample
standard deviation.
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

sys.path.insert(0, os.path.dirname(__file__))
from importlib import import_module  # noqa: E402

TrunkAndHead = import_module("bench-peers").FiveLayerStudent
DATA = "/usr/share/datasets/fashion-mnist"


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


def idx(name):
    with gzip.open(os.path.join(DATA, name)) as f:
        data = f.read()
    if name.endswith("labels-idx1-ubyte.gz"):
        return np.frombuffer(data, np.uint8, offset=8).astype(np.int64)
    return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)


def subset(labels, per_class, rng):
    return np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(10)])


def tensors(images, labels, indices, size):
    x = torch.from_numpy(images[indices]).float().div(255).unsqueeze(1)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.expand(-1, 3, -1, -1).contiguous(), torch.from_numpy(labels[indices])


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 256]) for i in range(0, len(x), 256)])
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def run(seed, args, train_file, test_file):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    chosen = subset(train_file[1], args.per_class, rng)
    labels = train_file[1][chosen]
    val_mask = np.zeros(len(chosen), bool)
    for c in range(10):
        members = np.flatnonzero(labels == c)
        val_mask[members[: int(round(len(members) * 0.2))]] = True
    x_train, y_train = tensors(*train_file, chosen[~val_mask], args.size)
    x_val, y_val = tensors(*train_file, chosen[val_mask], args.size)
    x_test, y_test = tensors(*test_file, subset(test_file[1], args.test_per_class, rng), args.size)

    model = Student(10)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    lr, best_loss, best_state, stale = args.lr, float("inf"), None, 0
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train))
        for start in range(0, len(order), args.batch):
            batch = order[start:start + args.batch]
            x = x_train[batch]
            flip = torch.rand(len(batch)) < 0.5
            x[flip] = x[flip].flip(3)
            loss = F.cross_entropy(model(x), y_train[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        val_loss, val_accuracy = evaluate(model, x_val, y_val)
        if val_loss < best_loss:
            best_loss, stale = val_loss, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale % args.patience == 0:
                lr *= 0.1
                for group in optimiser.param_groups:
                    group["lr"] = lr
        print(f"  seed {seed} epoch {epoch + 1}: val loss {val_loss:.4f} acc {val_accuracy:.4f}", flush=True)
    model.load_state_dict(best_state)
    return evaluate(model, x_test, y_test)[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_file = (idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz"))
    test_file = (idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz"))
    accuracies = []
    for seed in args.seeds:
        accuracies.append(run(seed, args, train_file, test_file))
        print(f"seed {seed}: test accuracy {accuracies[-1]:.4f}", flush=True)
    spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    print(f"label-only student, PyTorch: {statistics.mean(accuracies):.4f} ± {spread:.4f} "
          f"over seeds {args.seeds}")


if __name__ == "__main__":
    main()
