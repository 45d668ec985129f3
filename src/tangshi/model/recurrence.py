"""The LSTM recurrence of `PoetryLM`'s own kernel: `LSTMRecurrence`, the time loop with a
hand-written backward (BPTT in the Part 1 notation of docs/lstm-backprop.md), and
`OriginalLSTMLayer`, one layer with the assignment's parameter layout that runs it (or the
assignment's own loop, or plain autograd).
"""

from __future__ import annotations

import torch
from torch import nn

from tangshi.model.kernels import cell_ops


class LSTMRecurrence(torch.autograd.Function):
    """h_{1..T} from the projected inputs xz_t = x_t weight_ih + b and weight_hh.

    forward(xz (T, B, 4H), weight_hh (H, 4H), h0 (B, H), c0 (B, H)) → hs (T, B, H), hT, cT.
    Time-major, so every per-step slice is contiguous and neither xz nor its gradient is copied.
    The backward is BPTT in the Part 1 notation (see docs/lstm-backprop.md):
        δ_t      = ∂E/∂h_t  (from above) + δz_{t+1} W_hhᵀ   (the recurrent path)
        δo_t     = δ_t ⊙ tanh(C_t) ⊙ o_t(1 − o_t)
        δC_t     = δ_t ⊙ o_t ⊙ (1 − tanh²C_t) + δC_{t+1} ⊙ f_{t+1}   (the cell-state path)
        δf_t     = δC_t ⊙ C_{t−1} ⊙ f_t(1 − f_t)
        δi_t     = δC_t ⊙ c̃_t ⊙ i_t(1 − i_t)
        δc̃_t    = δC_t ⊙ i_t ⊙ (1 − c̃_t²)
        ∂E/∂weight_hh = Σ_t h_{t−1}ᵀ δz_t,  ∂E/∂xz_t = δz_t

    Under autocast (bf16 where it is fast: AMX / AVX512-BF16 CPUs, CUDA) the three products with
    weight_hh (h_{t−1} weight_hh, δz_t W_hhᵀ and Σ h_{t−1}ᵀ δz_t) run in autocast's dtype, as autocast runs
    every other matrix product; the cell state C_t, the gates and the sums stay fp32.

    On the CPU each step's gate arithmetic (the lines marked below) runs as one compiled pass,
    csrc/lstm_cell.c, where the caller passes the compiled kernels (`lib`, from `kernels.Kernels`);
    the PyTorch ops here are the same equations, the fallback, and the reference it is tested
    against (tests/test_fused_cell.py).
    """

    @staticmethod
    def forward(ctx, xz, weight_hh, h0, c0, lib=None):
        T, B, H4 = xz.shape
        H = H4 // 4
        kind = xz.device.type
        low = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None
        ctx.low = low
        with torch.autocast(device_type=kind, enabled=False):
            xz = xz.float().contiguous()  # no copy for an fp32 projection
            w = weight_hh.float()
            w_low = None if low is None else w.to(low)
            cell = lib if kind == "cpu" else None  # the compiled kernels, where the caller has them
            # activated i, f, c̃, o: one (B, 4H) buffer per step, which the allocator reuses from step to step
            # (glibc maps a (T, B, 4H) buffer of ≥ 32 MiB afresh every call: a page fault per 4 KiB)
            gates = [torch.empty(B, H4, device=xz.device) for _ in range(T)]
            # σ'(z) for i, f, o and tanh'(z) for c̃ (the compiled cell recomputes them from the gates)
            slopes = torch.empty(T if cell is None else 0, B, H4, device=xz.device)
            cs = torch.empty(T, B, H, device=xz.device)  # C_t
            tcs = torch.empty(T, B, H, device=xz.device)  # tanh(C_t)
            hs = torch.empty(T, B, H, device=xz.device)  # h_t
            h, c = h0.float(), c0.float().contiguous()
            for t in range(T):
                a = gates[t]
                if w_low is not None:  # the product in autocast's dtype, the sum in fp32
                    torch.add(xz[t], torch.mm(h.to(w_low.dtype), w_low), out=a)
                elif cell is not None:  # h_{t−1} weight_hh here, + xz_t in the compiled pass
                    torch.mm(h, w, out=a)
                else:
                    torch.addmm(xz[t], h, w, out=a)  # z_t = x_t weight_ih + b + h_{t−1} weight_hh   (B, 4H)
                if cell is not None:  # the lines below, as one compiled pass (csrc/lstm_cell.c)
                    cell.lstm_cell_forward(
                        B,
                        H,
                        a.data_ptr(),
                        None if w_low is not None else xz[t].data_ptr(),
                        c.data_ptr(),
                        cs[t].data_ptr(),
                        tcs[t].data_ptr(),
                        hs[t].data_ptr(),
                    )
                    h, c = hs[t], cs[t]
                    continue
                g = torch.tanh(a[:, 2 * H : 3 * H])  # c̃_t
                torch.sigmoid(a, out=a)  # i_t, f_t, o_t (one call over the whole block) …
                a[:, 2 * H : 3 * H] = g  # … and c̃_t put back
                torch.sub(a, a * a, out=slopes[t])  # σ' = σ(1 − σ)
                torch.sub(1.0, g * g, out=slopes[t, :, 2 * H : 3 * H])  # tanh' = 1 − c̃²
                i, f, g, o = a.chunk(4, dim=1)
                c = torch.addcmul(f * c, i, g, out=cs[t])  # C_t = f ⊙ C_{t−1} + i ⊙ c̃
                h = torch.mul(o, torch.tanh(c, out=tcs[t]), out=hs[t])  # h_t = o ⊙ tanh(C_t)
        ctx.cell = cell  # the backward takes the same path (the compiled one stored no slopes)
        ctx.save_for_backward(slopes, cs, tcs, hs, w, h0.float(), c0.float().contiguous(), *gates)
        return hs, h.clone(), c.clone()

    @staticmethod
    def backward(ctx, d_hs, d_hT, d_cT):
        with torch.autocast(device_type=ctx.saved_tensors[1].device.type, enabled=False):  # dtypes as written
            return (*LSTMRecurrence._bptt(ctx, d_hs, d_hT, d_cT), None)

    @staticmethod
    def _bptt(ctx, d_hs, d_hT, d_cT):
        slopes, cs, tcs, hs, w, h0, c0, *gates = ctx.saved_tensors
        T, B, H = hs.shape
        d_hs = torch.zeros_like(hs) if d_hs is None else d_hs.float()  # (T, B, H), perhaps a strided view
        d_xz = torch.empty(T, B, 4 * H, device=hs.device)  # δz_t for every t
        dense = torch.contiguous_format
        d_h = torch.zeros(B, H, device=hs.device) if d_hT is None else d_hT.float().clone(memory_format=dense)
        d_c = torch.zeros(B, H, device=hs.device) if d_cT is None else d_cT.float().clone(memory_format=dense)
        low = ctx.low
        w_t = w.t().contiguous() if low is None else w.t().to(low).contiguous()
        cell = ctx.cell
        if cell is not None and d_hs.stride(2) != 1:
            d_hs = d_hs.contiguous()
        for t in range(T - 1, -1, -1):
            c_prev = cs[t - 1] if t > 0 else c0
            tanh_c = tcs[t]
            if cell is not None:  # the lines below, as one compiled pass (csrc/lstm_cell.c)
                dz = d_xz[t]
                cell.lstm_cell_backward(
                    B,
                    H,
                    gates[t].data_ptr(),
                    c_prev.data_ptr(),
                    tanh_c.data_ptr(),
                    d_h.data_ptr(),
                    d_hs[t].data_ptr(),
                    d_hs.stride(1),
                    d_c.data_ptr(),
                    dz.data_ptr(),
                )
            else:
                i, f, g, o = gates[t].chunk(4, dim=1)
                delta = d_h.add_(d_hs[t])  # δ_t = ∂E/∂h_t (from above + the recurrent path)
                d_c.addcmul_(delta * o, 1 - tanh_c * tanh_c)  # δC_t (incl. δC_{t+1} ⊙ f_{t+1})
                dz = torch.cat(
                    [
                        d_c * g,  # ∂E/∂i_t = δC_t ⊙ c̃_t
                        d_c * c_prev,  # ∂E/∂f_t = δC_t ⊙ C_{t−1}
                        d_c * i,  # ∂E/∂c̃_t = δC_t ⊙ i_t
                        delta * tanh_c,
                    ],  # ∂E/∂o_t = δ_t ⊙ tanh(C_t)
                    dim=1,
                    out=d_xz[t],
                )
                dz.mul_(slopes[t])  # δi_t, δf_t, δc̃_t, δo_t: through σ' and tanh'
                d_c = d_c.mul_(f)  # cell-state path into δC_{t−1}
            d_h = dz @ w_t if low is None else (dz.to(low) @ w_t).float()  # recurrent path into δ_{t−1}
        # ∂E/∂weight_hh = Σ_t h_{t−1}ᵀ δz_t: h_0's term, then t ≥ 1 as one (H, (T−1)·B) × ((T−1)·B, 4H) product
        mm = (lambda a, b: a @ b) if low is None else (lambda a, b: (a.to(low) @ b.to(low)).float())
        d_w = mm(h0.t(), d_xz[0])
        if T > 1:
            d_w += mm(hs[:-1].reshape(-1, H).t(), d_xz[1:].reshape(-1, 4 * H))
        return d_xz, d_w, d_h, d_c


class OriginalLSTMLayer(nn.Module):
    """One LSTM layer with the assignment's parameters: weight_ih (in, 4H), weight_hh (H, 4H), bias (4H)."""

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.weight_ih = nn.Parameter(torch.empty(input_dim, 4 * hidden_dim))
        self.weight_hh = nn.Parameter(torch.empty(hidden_dim, 4 * hidden_dim))
        self.bias = nn.Parameter(torch.empty(4 * hidden_dim))

    def forward(
        self, x: torch.Tensor, state=None, mode: str = "fused", weight_hh: torch.Tensor | None = None, lib=None
    ):
        """x (B, T, in) → hs (B, T, H), (h_T, C_T). mode: original (the assignment's loop as written),
        fused (`LSTMRecurrence`, with the compiled kernels `lib` where given) or plain (autograd)."""
        B, T, _ = x.shape
        w_hh = self.weight_hh if weight_hh is None else weight_hh
        if state is None:
            h = x.new_zeros(B, self.hidden_dim, dtype=torch.float32)
            c = torch.zeros_like(h)
        else:
            h, c = state
        if mode == "original":  # the assignment's loop as written: project x_t inside the loop
            outs = []
            for t in range(T):
                z = x[:, t] @ self.weight_ih + h @ w_hh + self.bias
                h, c = cell_ops(z.float(), c)
                outs.append(h)
            return torch.stack(outs, dim=1), (h, c)
        if mode == "fused":  # time-major: x is copied once (in wide), xz and δxz never (4H wide)
            xz = torch.addmm(self.bias, x.transpose(0, 1).reshape(T * B, -1), self.weight_ih).view(T, B, -1)
            hs, h, c = LSTMRecurrence.apply(xz, w_hh, h, c, lib)
            return hs.transpose(0, 1), (h, c)
        xz = torch.addmm(self.bias, x.reshape(B * T, -1), self.weight_ih).view(B, T, -1)  # (B, T, 4H)
        outs = []
        for t in range(T):
            h, c = cell_ops(torch.addmm(xz[:, t].float(), h, w_hh.float()), c)
            outs.append(h)
        return torch.stack(outs, dim=1), (h, c)
