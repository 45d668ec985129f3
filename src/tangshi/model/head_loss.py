"""The training loss at the output layer, fused: `HeadNLL`, the mean NLL of h Wᵀ + b over the real
positions and its gradients, chunk by chunk (`PoetryLM.forward` uses it when autocast is off).

Its elementwise work per chunk runs in one compiled call (csrc/head_nll.c) where the compiled
kernels are given (`kernels.Kernels`), else as PyTorch ops; the matrix products stay in PyTorch.
"""

from __future__ import annotations

import torch

HEAD_CHUNK = 512  # rows of (N, V) logits per chunk: 512 × 5359 fp32 ≈ 11 MB, near cache size


class HeadNLL(torch.autograd.Function):
    """Mean NLL of the head at the real positions, fused: logits → softmax → loss and ∂E/∂logits.

    forward(h (N, H), weight (V, H), bias (V,), targets (N,), relu) → scalar loss.
    Works chunk by chunk so the (N, V) array is touched while it is in cache, and
    computes exp once: p = softmax(s), loss = mean(log Σ exp s − s_target),
    ∂E/∂s = (p − onehot(target)) / N (⊙ [s > 0] with the assignment's ReLU). The backward
    is then three matrix products. Same numbers as log_softmax + nll_loss.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, targets, relu: bool, lib=None):
        N = h.shape[0]
        h32, w32, b32 = h.float(), weight.float(), bias.float()
        # logits → p → ∂E/∂s, in place, one (≤ HEAD_CHUNK, V) buffer per chunk: buffers that the allocator
        # reuses from step to step, where one (N, V) buffer (~135 MB) would be mapped afresh, a page fault per 4 KiB
        ctx.dtypes = (h.dtype, weight.dtype, bias.dtype)
        if N and not (int(targets.min()) >= 0 and int(targets.max()) < weight.shape[0]):
            raise IndexError(f"a target id lies outside the vocabulary (size {weight.shape[0]})")
        lib = lib if h.device.type == "cpu" else None  # the compiled kernels, where the caller has them
        if lib is not None:
            b32, targets = b32.contiguous(), targets.to(torch.int64).contiguous()
        chunks = []
        total = torch.zeros((), dtype=torch.float64, device=h.device)
        for r0 in range(0, N, HEAD_CHUNK):
            r1 = min(r0 + HEAD_CHUNK, N)
            if lib is not None:  # h Wᵀ, then bias, softmax, loss and ∂E/∂s in one compiled call (csrc/head_nll.c)
                s = torch.mm(h32[r0:r1], w32.t())
                total += lib.head_nll_rows(
                    r1 - r0, s.shape[1], s.data_ptr(), b32.data_ptr(), targets[r0:r1].data_ptr(), int(relu), N
                )
            else:
                s = torch.addmm(b32, h32[r0:r1], w32.t())  # s = h Wᵀ + b
                total += HeadNLL._chunk_ops(s, targets[r0:r1], relu, N)
            chunks.append(s)
        ctx.save_for_backward(h32, w32, *chunks)
        return (total / N).float()

    @staticmethod
    def _chunk_ops(s, tgt, relu: bool, N: int) -> torch.Tensor:
        """One chunk's work as PyTorch ops, what csrc/head_nll.c does: logits s (n, V) → ∂E/∂s in
        place; returns the chunk's Σ −log p_target (float64)."""
        live = None
        if relu:
            live = s > 0
            s.clamp_(min=0)
        rows = torch.arange(s.shape[0], device=s.device)
        s_t = s[rows, tgt].clone()  # (n,) the target logits
        m = s.amax(dim=1, keepdim=True)
        s.sub_(m).exp_()  # exp(s − m)
        z = s.sum(dim=1, keepdim=True)
        loss = (z.log() + m).squeeze(1).sub(s_t).double().sum()  # −log p_target
        s.div_(z)  # p
        s[rows, tgt] -= 1.0  # p − onehot
        if live is not None:
            s.mul_(live)
        s.div_(N)
        return loss

    @staticmethod
    def backward(ctx, g):
        h, w, *chunks = ctx.saved_tensors
        scale = float(g)
        d_h = torch.empty_like(h)
        d_w = torch.zeros_like(w)
        d_b = torch.zeros(w.shape[0], device=w.device)
        r0 = 0
        for d_s in chunks:
            r1 = r0 + d_s.shape[0]
            d_s = d_s * scale if scale != 1.0 else d_s
            torch.mm(d_s, w, out=d_h[r0:r1])  # (n, H)
            d_w.addmm_(d_s.t(), h[r0:r1])  # (V, H)
            d_b += d_s.sum(0)  # not addmv with ones (4× faster): MKL's gemv sums in another order on another
            # thread count, and a resumed run must equal the uninterrupted one bit for bit (tests/test_crash_safety.py)
            r0 = r1
        return d_h.to(ctx.dtypes[0]), d_w.to(ctx.dtypes[1]), d_b.to(ctx.dtypes[2]), None, None, None
