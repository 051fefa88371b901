#!/usr/bin/env python3
"""Reference fixtures for kdlens's CAM-family and integrated-gradients tests, computed with the
reference packages themselves (`grad-cam` and `captum`) on the fixed weights and inputs that
make-fixtures.py wrote.

Run by hand (never in CI), from the repository root:

    python3 -m venv ~/.cache/torchenv
    ~/.cache/torchenv/bin/pip install torch torchvision grad-cam captum safetensors numpy
    ~/.cache/torchenv/bin/python pkg-scripts/make-trust-fixtures.py

Last run with: Python 3.11.7, torch 2.15.0, torchvision 0.29.2, grad-cam 1.5.7, captum 0.9.0,
safetensors 0.8.0, numpy 2.4.6, opencv-python-headless 5.0.0.93 (CPU only).

It reads, from crate/kdlens/tests/fixtures/ (and never rewrites them): student.pth.gz (the
five-layer student, 4 classes), densenet_small.pth (torchvision DenseNet, growth 8, blocks
2-2-2-2, 16 stem channels, bottleneck 2, 5 classes) and the inputs `st_input` [1,3,64,64] and
`dn_input` [1,3,48,48] from parity.safetensors. It writes trust.safetensors there, all float32.

Stages
------
The layer a CAM is computed on is exactly kdlens's stage (as in make-fixtures.py's `stages` and
`densenet_stages`). Both models are rebuilt, sharing the loaded modules and so the weights, so
that one hookable module outputs each stage:
* student, stage k = relu(convs[k](x)) before the 2x2 max-pool: nn.Sequential(conv_k, ReLU());
  spatial sizes 64, 32, 16, 8, 4 for k = 0..4.
* DenseNet, stages 0=relu0, 1=denseblock1, 2=transition1, 3=denseblock2, 4=transition2,
  5=denseblock3, 6=transition3, 7=denseblock4, 8=relu(norm5). A transition stage is the
  transition's conv output (norm -> relu -> conv) before its 2x2 average pool; stage 8 is the
  ReLU'd norm5 output. So stage 4 is features.transition2 (16 channels, 6x6) and stage 8 is
  relu(norm5) (32 channels, 1x1) for the 48x48 input.
The script asserts that the rebuilt models' logits equal the originals' within 1e-6 and that
every stage output equals make-fixtures.py's `stages` / `densenet_stages`.

CAM family (package `grad-cam`, module pytorch_grad_cam)
--------------------------------------------------------
Target: ClassifierOutputTarget(class), so the score y is the class LOGIT. A = the stage's
activation [C,H,W], G = dy/dA [C,H,W], both float32; sums over (i,j) run over the H x W grid.

The package's __call__ min-max scales each map and resizes it to the input size with
`scale_cam_image` (cv2.resize). The RAW maps stored here are taken instead by calling the CAM
object's own `get_cam_image(input, layer, targets, A, G, eigen_smooth=False)` on the
activations and gradients its hooks captured during that same __call__
(`cam.activations_and_grads.activations[0]` / `.gradients[0]`), followed by np.maximum(., 0):
exactly what BaseCAM.compute_cam_per_layer does before it calls scale_cam_image. The script
checks that scale_cam_image(raw, input size) reproduces the package's own output (1e-5). The
per-channel weights are the object's `get_cam_weights(...)` on the same arrays. The package
computes in float32 numpy; eps below is a Python float and so stays float32 (NEP 50).

* GradCAM:   w_c = mean_ij G_cij;                         map = relu(sum_c w_c A_c)
* GradCAM++ (GradCAMPlusPlus.get_cam_weights, "Equation 19" of arXiv:1710.11063):
      S_c     = sum_ij A_cij                                   (per-channel activation sum)
      a_cij   = G^2 / (2 G^2 + S_c G^3 + eps),   eps = 1e-6    (G^2 = G*G, G^3 = G^2*G)
      a_cij   = 0 where G_cij == 0      (np.where(grads != 0, aij, 0); the rule is on the
                                         gradient, not on the activation)
      w_c     = sum_ij max(G_cij, 0) * a_cij
      map     = relu(sum_c w_c A_c)                            (BaseCAM.get_cam_image)
* HiResCAM:  map_ij = relu(sum_c G_cij A_cij)                  (no channel weights)
* LayerCAM:  map_ij = relu(sum_c max(G_cij, 0) A_cij)          (no channel weights)

Tensors (method in gradcam | gradcampp | hirescam | layercam):
* st_{method}_{stage}_{class}   raw map [H,W] for the student: (stage 4, class 1) -> [4,4],
                                (stage 2, class 2) -> [16,16]
* st_{method}w_{stage}_{class}  channel weights [C] for gradcam and gradcampp: [512], [128]
* dn_{method}_{stage}_{class}   raw map for the DenseNet: (stage 8, class 3) -> [1,1],
                                (stage 4, class 1) -> [6,6]
* dn_{method}w_{stage}_{class}  channel weights for gradcam and gradcampp: [32], [16]
The script recomputes all of these from A and G with the formulas above in plain torch and
checks them against the package's (1e-5 relative to each tensor's largest value). The gradcam
maps and weights are also cross-checked against make-fixtures.py's hand-written
Grad-CAM in parity.safetensors (st_cam_*_l, st_camw_*_l, dn_cam_*, dn_camw_*) to 1e-5.
Scale: the sparse student's logits are of order 1e-3, so its maps and weights are of order
1e-6..1e-3 and the integrated-gradients attributions of order 1e-7..1e-5; compare them relative
to each tensor's largest value, not with an absolute tolerance. At that scale Grad-CAM++'s
2 G^2 + S G^3 is at most ~6e-6 (stage 4) and ~1e-7 (stage 2), comparable to or below eps =
1e-6, so the student's gradcampp tensors pin the epsilon down; for the DenseNet it is up to
~7e-2 (stage 8) and ~8e-4 (stage 4).

Integrated gradients (package `captum`)
---------------------------------------
IntegratedGradients(student).attribute(st_input, baselines=b, target=c, n_steps=16, method=m,
return_convergence_delta=True), captum's defaults otherwise (multiply_by_inputs=True, all 16
points in one batch). With alphas a_k and step sizes s_k of method m, captum computes
      attr  = (x - b) * sum_k s_k * dF_c/dx (b + a_k (x - b))
      delta = sum(attr) - (F_c(x) - F_c(b))
where F_c is the class-c logit; the step sizes are cast to float32 (`.float()`), the alphas are
Python floats multiplying float32 tensors.
* gausslegendre ("gl", captum's default): a_k = (1 + t_k)/2, s_k = w_k/2 with (t_k, w_k) =
  numpy.polynomial.legendre.leggauss(16)
* riemann_trapezoid ("trap"): a_k = linspace(0, 1, 16), s_k = 1/16 except s_0 = s_15 = 1/32

Baselines:
* black: zeros [1,3,64,64]
* blur:  st_input blurred with a separable Gaussian, sigma = 3.0 px, taps at integer offsets
  -r..=r with r = ceil(3 sigma) = 9, weights exp(-d^2 / (2 sigma^2)) normalised to sum 1,
  borders by edge replication (source index clamped to [0, n-1]), each channel on its own,
  first along the width then along the height; computed in float64, stored in float32, and the
  stored float32 tensor is the baseline that captum was given.

Tensors (baseline in black | blur, method in gl | trap, class in 0 | 3):
* ig_blur_baseline                       [1,3,64,64]
* ig_{baseline}_{method}_{class}         attributions [3,64,64]
* ig_{baseline}_{method}_{class}_delta   captum's convergence delta [1]
* ig_gl_alphas, ig_gl_steps              captum's Gauss-Legendre alphas and step sizes for
                                         n_steps=16 [16] (captum.attr._utils.approximation_methods;
                                         float64 there, rounded to float32 here)

The file is about 450 KB, almost all of it the eight attribution maps (48 KB each).
"""
import gzip
import importlib.util
import io
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import load_file, save_file

from captum.attr import IntegratedGradients
from captum.attr._utils.approximation_methods import approximation_parameters
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "crate", "kdlens", "tests", "fixtures")
OUTPUT = os.path.join(FIXTURES, "trust.safetensors")

torch.set_grad_enabled(True)
torch.use_deterministic_algorithms(True)

# make-fixtures.py (hyphenated, so loaded by path) defines the student and the DenseNet stages.
_spec = importlib.util.spec_from_file_location("make_fixtures", os.path.join(HERE, "make-fixtures.py"))
make_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_fixtures)

CAM_METHODS = {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus, "hirescam": HiResCAM, "layercam": LayerCAM}
WEIGHTED = ("gradcam", "gradcampp")


# ---------------------------------------------------------------- models with hookable stages
class StagedModel(nn.Module):
    """Runs `stages[k]` then `after[k]` for every k, then `head`: the module `stages[k]`
    outputs exactly kdlens's stage k."""

    def __init__(self, stages, after, head):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.after = nn.ModuleList(after)
        self.head = head

    def stage_outputs(self, x):
        acts = []
        for stage, after in zip(self.stages, self.after):
            x = stage(x)
            acts.append(x)
            x = after(x)
        return acts, self.head(x)

    def forward(self, x):
        return self.stage_outputs(x)[1]


class StudentHead(nn.Module):
    def __init__(self, student):
        super().__init__()
        self.student = student

    def forward(self, x):
        return self.student.head(x)


class DenseNetHead(nn.Module):
    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def staged_student(st):
    return StagedModel(
        [nn.Sequential(conv, nn.ReLU()) for conv in st.convs],
        [nn.MaxPool2d(2) for _ in st.convs],
        StudentHead(st),
    ).eval()


def staged_densenet(dn):
    f = dn.features
    stages = [nn.Sequential(f.conv0, f.norm0, nn.ReLU())]
    after = [f.pool0]
    for b in range(1, 5):
        stages.append(getattr(f, f"denseblock{b}"))
        after.append(nn.Identity())
        if b < 4:
            t = getattr(f, f"transition{b}")
            stages.append(nn.Sequential(t.norm, nn.ReLU(), t.conv))
            after.append(t.pool)
    stages.append(nn.Sequential(f.norm5, nn.ReLU()))
    after.append(nn.Identity())
    return StagedModel(stages, after, DenseNetHead(dn.classifier)).eval()


def check_staged(name, original, staged, reference_stages, x):
    with torch.no_grad():
        acts, logits = staged.stage_outputs(x)
        ref_acts, ref_logits = reference_stages(x)
        diff = (logits - original(x)).abs().max().item()
        print(f"{name}: rebuilt vs original logits, max abs diff {diff:.2e}")
        assert diff <= 1e-6, diff
        assert (logits - ref_logits).abs().max().item() <= 1e-6
        assert len(acts) == len(ref_acts)
        for k, (a, r) in enumerate(zip(acts, ref_acts)):
            assert a.shape == r.shape and (a - r).abs().max().item() <= 1e-6, (name, k)


# ---------------------------------------------------------------- CAM family through grad-cam
def documented_cams(A, G):
    """The formulas of the docstring, in float32 torch, from the activations and gradients."""
    A, G = torch.from_numpy(A[0]), torch.from_numpy(G[0])
    w = G.mean(dim=(1, 2))
    G2 = G * G
    a = G2 / (2 * G2 + A.sum(dim=(1, 2), keepdim=True) * (G2 * G) + 1e-6)
    a = torch.where(G != 0, a, torch.zeros_like(a))
    wpp = (G.clamp(min=0) * a).sum(dim=(1, 2))
    return {
        "gradcam": (w[:, None, None] * A).sum(0).clamp(min=0), "gradcamw": w,
        "gradcampp": (wpp[:, None, None] * A).sum(0).clamp(min=0), "gradcamppw": wpp,
        "hirescam": (G * A).sum(0).clamp(min=0),
        "layercam": (G.clamp(min=0) * A).sum(0).clamp(min=0),
    }


def raw_cams(model, layer, x, cls):
    """Raw (ReLU'd, unscaled, not resized) maps and channel weights for every method."""
    out = {}
    targets = [ClassifierOutputTarget(cls)]
    for name, method in CAM_METHODS.items():
        with method(model=model, target_layers=[layer]) as cam:
            scaled = cam(input_tensor=x, targets=targets)
            activations = cam.activations_and_grads.activations[0].numpy()
            gradients = cam.activations_and_grads.gradients[0].numpy()
            raw = np.maximum(cam.get_cam_image(x, layer, targets, activations, gradients, False), 0)
            # the package's own pipeline from here on gives back its output
            rescaled = scale_cam_image(scale_cam_image(raw, (x.shape[-1], x.shape[-2])))
            assert np.abs(rescaled - scaled).max() < 1e-5, (name, np.abs(rescaled - scaled).max())
            out[name] = torch.from_numpy(np.float32(raw[0]))
            if name in WEIGHTED:
                weights = cam.get_cam_weights(x, layer, targets, activations, gradients)
                out[name + "w"] = torch.from_numpy(np.float32(weights[0]))
            # the docstring's formulas reproduce the package (relative to the largest value)
            documented = documented_cams(activations, gradients)
            for key in (name, name + "w") if name in WEIGHTED else (name,):
                scale = max(out[key].abs().max().item(), 1e-30)
                assert (documented[key] - out[key]).abs().max().item() <= 1e-5 * scale, key
    return out


def cam_cases(prefix, model, x, cases, parity, parity_name, ref):
    for k, cls in cases:
        for name, value in raw_cams(model, model.stages[k], x, cls).items():
            ref[f"{prefix}_{name}_{k}_{cls}"] = value
        cam_diff = (ref[f"{prefix}_gradcam_{k}_{cls}"] - parity[parity_name(k, cls, "cam")]).abs().max().item()
        w_diff = (ref[f"{prefix}_gradcamw_{k}_{cls}"] - parity[parity_name(k, cls, "camw")]).abs().max().item()
        print(f"{prefix} stage {k} class {cls}: grad-cam GradCAM vs {parity_name(k, cls, 'cam')}: "
              f"map {cam_diff:.2e}, weights {w_diff:.2e}")
        assert cam_diff < 1e-5 and w_diff < 1e-5


# ---------------------------------------------------------------- integrated gradients
def gaussian_blur(x, sigma):
    """Separable Gaussian, taps -r..=r with r = ceil(3 sigma), edge replication; width first,
    then height. Computed in float64, returned in x's dtype."""
    r = math.ceil(3 * sigma)
    d = torch.arange(-r, r + 1, dtype=torch.float64)
    w = torch.exp(-d * d / (2 * sigma * sigma))
    w = w / w.sum()
    y = x.double()
    n = y.shape[-1]
    idx = (torch.arange(n)[:, None] + torch.arange(-r, r + 1)[None, :]).clamp(0, n - 1)
    y = (y[..., idx] * w).sum(-1)                               # along the width
    n = y.shape[-2]
    idx = (torch.arange(n)[:, None] + torch.arange(-r, r + 1)[None, :]).clamp(0, n - 1)
    y = (y[..., idx, :] * w[:, None]).sum(-2)                   # along the height
    return y.to(x.dtype)


def integrated_gradients(st, x, ref):
    ig = IntegratedGradients(st)
    blurred = gaussian_blur(x, 3.0)
    ref["ig_blur_baseline"] = blurred
    baselines = {"black": torch.zeros_like(x), "blur": blurred}
    methods = {"gl": "gausslegendre", "trap": "riemann_trapezoid"}
    for bname, baseline in baselines.items():
        for mname, method in methods.items():
            for cls in (0, 3):
                attr, delta = ig.attribute(x, baselines=baseline, target=cls, n_steps=16,
                                           method=method, return_convergence_delta=True)
                ref[f"ig_{bname}_{mname}_{cls}"] = attr[0].detach().float()
                ref[f"ig_{bname}_{mname}_{cls}_delta"] = delta.detach().float().reshape(1)
                print(f"IG {bname:5s} {method:17s} class {cls}: sum {attr.sum().item():+.6f}, "
                      f"delta {delta.item():+.3e}")
    step_sizes, alphas = approximation_parameters("gausslegendre")
    ref["ig_gl_alphas"] = torch.tensor(alphas(16), dtype=torch.float32)
    ref["ig_gl_steps"] = torch.tensor(step_sizes(16), dtype=torch.float32)


def main():
    parity = load_file(os.path.join(FIXTURES, "parity.safetensors"))
    ref = {}

    with gzip.open(os.path.join(FIXTURES, "student.pth.gz"), "rb") as f:
        state = torch.load(io.BytesIO(f.read()), weights_only=True)
    st = make_fixtures.FiveLayerStudent(4)
    st.load_state_dict(state)
    st.eval()
    st_x = parity["st_input"]
    st_staged = staged_student(st)
    check_staged("student", st, st_staged, st.stages, st_x)
    cam_cases("st", st_staged, st_x, [(4, 1), (2, 2)], parity,
              lambda k, c, what: f"st_{what}_{k}_{c}_l", ref)

    dn = torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16,
                                     bn_size=2, num_classes=5)
    dn.load_state_dict(torch.load(os.path.join(FIXTURES, "densenet_small.pth"), weights_only=True))
    dn.eval()
    dn_x = parity["dn_input"]
    dn_staged = staged_densenet(dn)
    check_staged("densenet", dn, dn_staged, lambda x: make_fixtures.densenet_stages(dn, x), dn_x)
    cam_cases("dn", dn_staged, dn_x, [(8, 3), (4, 1)], parity,
              lambda k, c, what: f"dn_{what}_{k}_{c}", ref)

    integrated_gradients(st, st_x, ref)

    assert all(v.dtype == torch.float32 for v in ref.values())
    save_file({k: v.contiguous() for k, v in sorted(ref.items())}, OUTPUT)
    for name, value in sorted(ref.items()):
        print(f"  {name:28s} {list(value.shape)}")
    print(f"{OUTPUT}: {len(ref)} tensors, {os.path.getsize(OUTPUT):,d} bytes")


if __name__ == "__main__":
    sys.exit(main())
