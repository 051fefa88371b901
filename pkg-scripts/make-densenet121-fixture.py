#!/usr/bin/env python3
"""Full-size DenseNet-121 parity fixture: torchvision's densenet121 (1000 classes) at 224², with
every weight filled from a deterministic formula that the Rust test
(crate/kdlens/tests/common/formula.rs) computes identically, so that no 32 MB checkpoint is
committed. Run by hand (never in CI):

    ~/.cache/torchenv/bin/python pkg-scripts/make-densenet121-fixture.py

Writes crate/kdlens/tests/fixtures/densenet121.safetensors (float32):
* logits [1,1000]                 of the formula input
* mean_{k}                        channel mean of stage k (9 stages, as kdlens names them)
* cam_{class}, camw_{class}       Grad-CAM (logit score) at the last stage (norm5) for two classes

The formula. For a tensor named `name` (torchvision's state_dict key; "input" for the input),
element i (row-major) draws
    u = scramble((i * 2654435761 + fnv1a32(name)) mod 2^32),
    scramble(x) = y ^ (y >> 16) with y = ((x ^ (x >> 16)) * 0x45d9f3b) mod 2^32,
    r = (u >> 8) / 2^24 in [0, 1), exact in float32,
and the tensor's values are, in float32:
* conv and linear weights: (2r - 1) * sqrt(6 / fan_in)   (He-uniform scale)
* classifier bias, BatchNorm bias and running mean: (2r - 1) * 0.2
* BatchNorm weight: 0.5 + r;   running variance: 0.5 + r
* num_batches_tracked: 0;      the input: r
"""
import importlib.util
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "crate", "kdlens", "tests", "fixtures", "densenet121.safetensors")
CAM_CLASSES = [110, 7]


def fnv1a32(name):
    h = 0x811C9DC5
    for b in name.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def unit_draws(name, n):
    i = np.arange(n, dtype=np.uint64)
    x = (i * np.uint64(2654435761) + np.uint64(fnv1a32(name))) & np.uint64(0xFFFFFFFF)
    x = ((x ^ (x >> np.uint64(16))) * np.uint64(0x45D9F3B)) & np.uint64(0xFFFFFFFF)
    x = x ^ (x >> np.uint64(16))
    return (x >> np.uint64(8)).astype(np.float32) / np.float32(2**24)


def formula(name, shape):
    n = int(np.prod(shape)) if len(shape) else 1
    r = unit_draws(name, n)
    two, one = np.float32(2), np.float32(1)
    if name.endswith("num_batches_tracked"):
        return np.zeros(shape, dtype=np.int64)
    if name == "input":
        values = r
    elif name.endswith("weight") and len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        values = (two * r - one) * np.float32(math.sqrt(6.0 / fan_in))
    elif name.endswith("weight"):
        values = np.float32(0.5) + r
    elif name.endswith("running_var"):
        values = np.float32(0.5) + r
    elif name.endswith("bias") or name.endswith("running_mean"):
        values = (two * r - one) * np.float32(0.2)
    else:
        raise ValueError(f"no formula for {name}")
    return values.reshape(shape)


def load_make_fixtures():
    spec = importlib.util.spec_from_file_location("make_fixtures", os.path.join(HERE, "make-fixtures.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    fixtures = load_make_fixtures()
    model = torchvision.models.densenet121(weights=None)
    state = {k: torch.from_numpy(formula(k, tuple(v.shape))) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    model.eval()
    x = torch.from_numpy(formula("input", (1, 3, 224, 224)))
    acts, logits = fixtures.densenet_stages(model, x)
    assert torch.allclose(logits, model(x), rtol=1e-5, atol=1e-4)
    ref = {"logits": logits.detach()}
    for k, a in enumerate(acts):
        ref[f"mean_{k}"] = a.mean(1)[0].detach()
    resume = lambda k, a: fixtures.densenet_resume(model, k, a)
    for cls in CAM_CLASSES:
        cam, weights = fixtures.grad_cam(acts, resume, 8, cls)
        ref[f"cam_{cls}"] = cam
        ref[f"camw_{cls}"] = weights
    save_file({k: v.contiguous().float() for k, v in ref.items()}, OUT)
    top = logits[0].topk(3)
    print(f"wrote {OUT}: logits range {logits.min():.3f}..{logits.max():.3f}, top classes "
          f"{top.indices.tolist()}, stage mean ranges "
          + ", ".join(f"{a.mean(1).min():.2f}..{a.mean(1).max():.2f}" for a in acts))


if __name__ == "__main__":
    main()
