"""The check of the compiled training kernel: `LSTMRecurrence` (model/recurrence.py), the hand-written
BPTT that trains the model in fp32, against plain autograd through the same equations in float64.
gradcheck runs it and reports it.
"""

from __future__ import annotations

import torch

from tangshi.model import kernels
from tangshi.model.recurrence import LSTMRecurrence


def check_training_kernel(seed: int, T: int = 7, B: int = 3, H: int = 5) -> dict:
    """`LSTMRecurrence`, the hand-written BPTT that trains the model (fp32), against plain autograd
    through the same equations in float64: h_1..T, h_T, C_T and the gradients of xz, weight_hh, h_0, C_0,
    each as max |a − b| / max |b|. Both of its paths: the PyTorch ops and the compiled cell."""
    g = torch.Generator().manual_seed(seed)
    xz, w = (
        torch.randn(T, B, 4 * H, generator=g, dtype=torch.float64) * 2,
        torch.randn(H, 4 * H, generator=g, dtype=torch.float64) / H**0.5,
    )
    h0, c0, up = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((B, H), (B, H), (T, B, H)))

    def run(fn, dtype):
        leaves = [t.to(dtype).requires_grad_() for t in (xz, w, h0, c0)]
        hs, hT, cT = fn(*leaves)
        grads = torch.autograd.grad((hs * up.to(dtype)).sum() + hT.square().sum() + cT.sum(), leaves)
        return [t.detach().double() for t in (hs, hT, cT, *grads)]

    def autograd_loop(x, w_, h, c):
        outs = []
        for t in range(T):
            h, c = kernels.cell_ops(x[t] + h @ w_, c)
            outs.append(h)
        return torch.stack(outs), h, c

    want = run(autograd_loop, torch.float64)
    out: dict[str, dict[str, str | float]] = {}
    for name, ks in (("PyTorch ops", kernels.Kernels.off()), ("compiled cell", kernels.detect())):
        if not ks.compiled and name == "compiled cell":
            out[name] = {"skipped": ks.why}
            continue
        got = run(lambda *a, lib=ks.lib: LSTMRecurrence.apply(*a, lib), torch.float32)
        out[name] = {"rel_err": max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(got, want))}
    return out
