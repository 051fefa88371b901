#!/usr/bin/env python3
"""Reference fixtures for kdlens's parity tests, computed with PyTorch on fixed weights.

Run by hand (never in CI):

    python3 -m venv ~/.cache/torchenv && ~/.cache/torchenv/bin/pip install torch torchvision shap
    ~/.cache/torchenv/bin/python pkg-scripts/make-fixtures.py

It writes, under crate/kdlens/tests/fixtures/:

* densenet_small.pth          torchvision DenseNet(growth 8, blocks 2-2-2-2, 16 stem channels,
                              bottleneck 2, 5 classes), state_dict with torchvision's key names
* densenet_small_legacy.pth   the same weights as torchvision publishes its ImageNet checkpoints:
                              legacy key names (`denselayer1.norm.1.weight`) in PyTorch's legacy
                              (pre-1.6, non-zip) serialization
* student.pth.gz              the five-layer student (4 classes); sparse random weights so that
                              the compressed file stays small while every weight position matters
* parity.safetensors          inputs and reference outputs (see below)

Reference outputs, all float32:
* dn_input [1,3,48,48], dn_logits [1,5], dn_mean_{k} channel mean of stage k (9 stages, as
  kdlens names them), dn_cam_{layer}_{class}: Grad-CAM raw map and channel weights (logit score)
* st_input [1,3,64,64], st_logits, st_mean_{k} (5 stages), st_cam: conv5 / class 1 for the logit
  and the probability score, conv3 / class 2 (logit)
* st_eg_background [4,3,64,64], st_eg_index [32] (int64), st_eg_t [32], st_eg_phi_{c} [3,64,64]
  expected-gradients attributions for classes 0 and 3 with exactly these draws; when the `shap`
  package is installed the script also checks that shap.GradientExplainer gives the same values
  for the draws it makes itself
* resize_src [13,17], resize_up [40,50] (bilinear, align_corners=False),
  resize_down [5,7] (bilinear, antialias=True)
"""
import gzip
import io
import os
import re
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crate", "kdlens", "tests", "fixtures")
torch.set_grad_enabled(True)
torch.use_deterministic_algorithms(True)


# ---------------------------------------------------------------- five-layer student
class FiveLayerStudent(nn.Module):
    """kdlens's five-layer student with kdlens's parameter names."""

    def __init__(self, num_classes):
        super().__init__()
        channels = [3, 32, 64, 128, 256, 512]
        self.convs = nn.ModuleList(
            nn.Conv2d(channels[i], channels[i + 1], 3, padding=1) for i in range(5)
        )
        self.fc1 = nn.Linear(512, 512)
        self.fc2 = nn.Linear(512, 256)
        self.fc3 = nn.Linear(256, 128)
        self.classifier = nn.Linear(128, num_classes)

    def stages(self, x):
        acts = []
        for conv in self.convs:
            a = F.relu(conv(x))
            acts.append(a)
            x = F.max_pool2d(a, 2)
        return acts, self.head(x)

    def resume(self, k, a):
        x = F.max_pool2d(a, 2)
        for conv in self.convs[k + 1:]:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return self.head(x)

    def head(self, x):
        x = x.mean(dim=(2, 3))
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = F.relu(self.fc3(x))
        return self.classifier(x)

    def forward(self, x):
        return self.stages(x)[1]


def sparsify(model, density, generator):
    """Keeps a random `density` fraction of each weight, rescaled to keep the activations' scale,
    and rounds every value to float16 precision (still stored as float32)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                mask = torch.rand(p.shape, generator=generator) < density
                p.mul_(mask / density ** 0.5)
            else:
                p.mul_(torch.rand(p.shape, generator=generator) < density)
            p.copy_(p.half().float())


# ---------------------------------------------------------------- DenseNet stages
def densenet_stages(model, x):
    """The nine stages kdlens exposes, and the logits."""
    f = model.features
    acts = []
    x = F.relu(f.norm0(f.conv0(x)))
    acts.append(x)
    x = f.pool0(x)
    for b in range(1, 5):
        x = getattr(f, f"denseblock{b}")(x)
        acts.append(x)
        if b < 4:
            t = getattr(f, f"transition{b}")
            x = t.conv(F.relu(t.norm(x)))
            acts.append(x)
            x = t.pool(x)
    x = F.relu(f.norm5(x))
    acts.append(x)
    logits = model.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
    return acts, logits


def densenet_resume(model, k, a):
    """Runs the DenseNet from stage k's output."""
    f = model.features
    stages = ["relu0", "b1", "t1", "b2", "t2", "b3", "t3", "b4", "norm5"]
    x = a
    for j in range(k, len(stages)):
        name = stages[j]
        if j > k:
            if name.startswith("b"):
                x = getattr(f, f"denseblock{name[1]}")(x)
            elif name.startswith("t"):
                t = getattr(f, f"transition{name[1]}")
                x = t.conv(F.relu(t.norm(x)))
            else:
                x = F.relu(f.norm5(x))
        # pooling after the stage
        if name == "relu0":
            x = f.pool0(x)
        elif name.startswith("t"):
            x = getattr(f, f"transition{name[1]}").pool(x)
    return model.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---------------------------------------------------------------- Grad-CAM by hand
def grad_cam(acts, resume, k, cls, probability=False):
    a = acts[k].detach().clone().requires_grad_(True)
    logits = resume(k, a)
    score = F.softmax(logits, 1)[0, cls] if probability else logits[0, cls]
    (grad,) = torch.autograd.grad(score, a)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * a).sum(1))[0]
    return cam.detach(), weights.flatten().detach()


def expected_gradients(model, x, background, index, t, cls):
    delta = x - background[index]
    points = (background[index] + t.view(-1, 1, 1, 1) * delta).requires_grad_(True)
    (grad,) = torch.autograd.grad(model(points)[:, cls].sum(), points)
    return (grad * delta).mean(0).detach()


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(2025)
    torch.manual_seed(2025)
    ref = {}

    # -- DenseNet, small configuration, eval mode with non-trivial running statistics
    dn = torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2, 2, 2),
                                     num_init_features=16, bn_size=2, num_classes=5)
    with torch.no_grad():
        for m in dn.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    dn.eval()
    torch.save(dn.state_dict(), os.path.join(OUT, "densenet_small.pth"))
    legacy = {}
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))([12])\.(weight|bias|running_mean|running_var|num_batches_tracked)$")
    for key, value in dn.state_dict().items():
        m = pattern.match(key)
        legacy[f"{m.group(1)}.{m.group(2)}.{m.group(3)}" if m else key] = value
    assert legacy.keys() != dn.state_dict().keys()
    torch.save(legacy, os.path.join(OUT, "densenet_small_legacy.pth"), _use_new_zipfile_serialization=False)

    x = torch.rand(1, 3, 48, 48, generator=g)
    acts, logits = densenet_stages(dn, x)
    assert torch.allclose(logits, dn(x), atol=1e-5)
    ref["dn_input"] = x
    ref["dn_logits"] = logits.detach()
    for k, a in enumerate(acts):
        ref[f"dn_mean_{k}"] = a.mean(1)[0].detach()
    resume = lambda k, a: densenet_resume(dn, k, a)
    for k, cls in [(8, 3), (4, 1)]:
        cam, w = grad_cam(acts, resume, k, cls)
        ref[f"dn_cam_{k}_{cls}"] = cam
        ref[f"dn_camw_{k}_{cls}"] = w

    # -- five-layer student
    st = FiveLayerStudent(4)
    sparsify(st, 0.05, g)
    st.eval()
    buffer = io.BytesIO()
    torch.save(st.state_dict(), buffer)
    with gzip.open(os.path.join(OUT, "student.pth.gz"), "wb", compresslevel=9) as f:
        f.write(buffer.getvalue())

    x = torch.rand(1, 3, 64, 64, generator=g)
    acts, logits = st.stages(x)
    ref["st_input"] = x
    ref["st_logits"] = logits.detach()
    for k, a in enumerate(acts):
        ref[f"st_mean_{k}"] = a.mean(1)[0].detach()
    for k, cls, prob in [(4, 1, False), (4, 1, True), (2, 2, False)]:
        cam, w = grad_cam(acts, st.resume, k, cls, probability=prob)
        tag = f"{k}_{cls}_{'p' if prob else 'l'}"
        ref[f"st_cam_{tag}"] = cam
        ref[f"st_camw_{tag}"] = w

    background = torch.rand(4, 3, 64, 64, generator=g)
    index = torch.randint(0, 4, (32,), generator=g)
    t = torch.rand(32, generator=g)
    ref["st_eg_background"] = background
    ref["st_eg_index"] = index
    ref["st_eg_t"] = t
    for cls in (0, 3):
        ref[f"st_eg_phi_{cls}"] = expected_gradients(st, x, background, index, t, cls)

    try:
        import shap
    except ImportError:
        print("shap is not installed: skipping the cross-check against shap.GradientExplainer")
    else:
        np.random.seed(7)
        explainer = shap.GradientExplainer(st, background)
        np.random.seed(7)
        shap_values = explainer.shap_values(x, nsamples=32)
        # replay the draws shap made: per sample, np.random.choice(4) then np.random.uniform()
        np.random.seed(7)
        draws = [(np.random.choice(4), np.random.uniform()) for _ in range(32)]
        idx = torch.tensor([d[0] for d in draws])
        ts = torch.tensor([d[1] for d in draws], dtype=torch.float32)
        ours = expected_gradients(st, x, background, idx, ts, 0).numpy()
        theirs = np.asarray(shap_values)[..., 0][0] if np.asarray(shap_values).ndim == 5 else np.asarray(shap_values[0])[0]
        diff = np.abs(ours - theirs).max()
        print(f"shap.GradientExplainer vs by-hand expected gradients: max abs diff {diff:.2e}")
        assert diff < 1e-5, diff

    # -- resizing
    src = torch.rand(13, 17, generator=g)
    ref["resize_src"] = src
    ref["resize_up"] = F.interpolate(src[None, None], size=(40, 50), mode="bilinear", align_corners=False)[0, 0]
    ref["resize_down"] = F.interpolate(src[None, None], size=(5, 7), mode="bilinear", align_corners=False, antialias=True)[0, 0]

    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(OUT, "parity.safetensors"))
    for name in sorted(os.listdir(OUT)):
        print(f"{name:32s} {os.path.getsize(os.path.join(OUT, name)):>10,d} bytes")


if __name__ == "__main__":
    sys.exit(main())
