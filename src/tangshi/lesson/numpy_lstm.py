"""The character LSTM language model in plain NumPy: forward, full BPTT, optimisers.

This is the from-scratch twin of the PyTorch model. It uses the canonical
parameter layout shared with the PyTorch model's state_dict (so safetensors
checkpoints are interchangeable):

    embedding.weight     (V, D)
    lstm.{l}.weight_ih   (in_l, 4H)   in_0 = D, in_l = H for l > 0   (x @ W layout)
    lstm.{l}.weight_hh   (H, 4H)
    lstm.{l}.bias        (4H,)
    head.weight          (V, H)       absent when config.tie_weights (head uses embedding.weight)
    head.bias            (V,)

Gate chunks along the 4H axis are ordered i, f, g (= c~), o, as in torch.nn.LSTM.
The equations and their numbers "eq (n)" are derived in docs/lstm-backprop.md.

Layout.  Internally the batch is *packed* (like torch's PackedSequence): rows are
sorted by how far their last real (non-PAD) target reaches, and at time step t only
the rows that still have a real target at some step >= t are computed.  Positions
after a row's last real target cannot influence the loss, so skipping them is exact,
and with ~40% PAD tails it removes ~40% of the LSTM work.  A packed array has one row
per live (t, b) position, step-major: step t occupies rows off[t] : off[t] + bs[t],
and the rows alive at step t+1 are a prefix of those alive at step t.

The head (logits, softmax, NLL) is evaluated only at positions whose target is real, in row
chunks small enough to stay in cache; the forward pass leaves dE/dlogits in the cache so that
backward() is only matrix products.  Fresh parameters, the checks, the packing, Workspace and
blas_threads: numpy_setup.py.  No torch in this module; dtype follows the parameters (float32
for training, float64 for gradient checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from tangshi.lesson.numpy_setup import (
    INIT_SCHEMES,
    Packing,
    Workspace,
    blas_threads,
    buffer,
    check_batch,
    check_params,
    init_params,
    pack,
    packed,
    param_names,
)
from tangshi.model.spec import Dims, dims, param_shapes

__all__ = [
    "param_shapes",
    "init_params",
    "forward",
    "backward",
    "loss_and_grads",
    "log_probs",
    "logits",
    "Workspace",
    "blas_threads",
    "INIT_SCHEMES",
]

# Rows of the (N, V) logits handled at once in the head: 256 x 5300 float32 is ~5 MB,
# so the bias add, max, exp, sum and gradient scaling all run on cache-resident data.
HEAD_CHUNK = 256

# The time loops issue 2 x T small matmuls (B x H by H x 4H) per layer.  A multi-threaded
# BLAS synchronises its threads on every one of them, which on a busy, shared machine
# costs 10x (a thread waits for a core: ~12 ms instead of ~1 ms per step here).  So the
# loops run the BLAS single-threaded (threadpoolctl, whatever BLAS numpy links); the big
# matmuls outside keep the default.  None = leave the BLAS alone.
LOOP_BLAS_THREADS: int | None = 1


def _sigmoid_(v: np.ndarray) -> None:
    """In place v <- 1 / (1 + exp(-v)) (exp may overflow to inf -> exactly 0, as intended)."""
    np.negative(v, out=v)
    np.exp(v, out=v)
    v += 1.0
    np.reciprocal(v, out=v)


# --------------------------------------------------------------------------------------
# LSTM layer
# --------------------------------------------------------------------------------------


def _lstm_layer_forward(
    x: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    b: np.ndarray,
    pk: Packing,
    ws: Workspace | None = None,
    key: str = "",
) -> dict:
    """One LSTM layer over packed inputs x (P, in).  Returns the cache dict for backward."""
    P = x.shape[0]
    H = weight_hh.shape[0]
    dtype = x.dtype
    B0 = pk.bs[0] if pk.bs else 0
    # z for every live position at once: x_t weight_ih + b in one matmul; the loop adds h_{t-1} weight_hh.
    gates = buffer(ws, key + "gates", (P, 4 * H), dtype)  # (P, 4H): z, then in place the activations i|f|c~|o
    np.matmul(x, weight_ih, out=gates)  # eq (2), input part, all steps in one matmul
    gates += b  # eq (2), bias
    h = buffer(ws, key + "h", (P, H), dtype)  # (P, H)  h_t
    C = buffer(ws, key + "C", (P, H), dtype)  # (P, H)  C_t
    tanhC = buffer(ws, key + "tanhC", (P, H), dtype)  # (P, H)  tanh(C_t), reused by backward
    h_prev = buffer(ws, key + "h_prev", (P, H), dtype)  # (P, H)  h_{t-1} aligned with h_t (d_weight_hh in one matmul)
    rec = np.empty((B0, 4 * H), dtype)  # (B, 4H) scratch
    fC = np.empty((B0, H), dtype)  # (B, H) scratch
    with np.errstate(over="ignore"), blas_threads(LOOP_BLAS_THREADS):
        for t, n in enumerate(pk.bs):
            s, e = pk.off[t], pk.off[t] + n
            z = gates[s:e]  # (n, 4H)
            if t > 0:
                ps = pk.off[t - 1]
                hp = h[ps : ps + n]  # (n, H) h_{t-1} of the rows still alive
                h_prev[s:e] = hp
                np.matmul(hp, weight_hh, out=rec[:n])  # eq (2), recurrent part h_{t-1} weight_hh
                z += rec[:n]
            else:
                h_prev[s:e] = 0.0  # h_0 = 0
            _sigmoid_(z[:, : 2 * H])  # eq (3)  i_t = sigma(z_i), f_t = sigma(z_f)
            np.tanh(z[:, 2 * H : 3 * H], out=z[:, 2 * H : 3 * H])  # eq (3)  c~_t = tanh(z_c)
            _sigmoid_(z[:, 3 * H :])  # eq (3)  o_t = sigma(z_o)
            i_t, f_t, c_tilde, o_t = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
            C_t = C[s:e]
            np.multiply(i_t, c_tilde, out=C_t)  # eq (4)  i_t * c~_t
            if t > 0:
                np.multiply(f_t, C[ps : ps + n], out=fC[:n])  # eq (4)  f_t * C_{t-1}   (C_0 = 0)
                C_t += fC[:n]
            np.tanh(C_t, out=tanhC[s:e])
            np.multiply(o_t, tanhC[s:e], out=h[s:e])  # eq (5)  h_t = o_t * tanh(C_t)
    return {"x": x, "gates": gates, "h": h, "C": C, "tanhC": tanhC, "h_prev": h_prev}


class _Scratch(NamedTuple):
    """The backward time loop's buffers, reused at every step; B = the rows alive at step 0."""

    delta_h: np.ndarray  # (B, H)  delta_t = dE/dh_t
    delta_C: np.ndarray  # (B, H)  delta_C_t = dE/dC_t
    carry: np.ndarray  # (B, H)  delta_C_{t+1} * f_{t+1}
    tmp: np.ndarray  # (B, H) scratch
    tmp2: np.ndarray  # (B, 2H) scratch


def _lstm_layer_backward(
    lc: dict,
    dh_in: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    pk: Packing,
    need_dx: bool = True,
    cell_path: bool = True,
    ws: Workspace | None = None,
    dx_key: str = "dx",
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """BPTT through one layer.

    dh_in (P, H) is the gradient reaching h_t from outside the recurrence (the head for
    the top layer, the layer above otherwise).  Returns (dx, d_weight_ih, d_weight_hh, db, dZ).
    cell_path=False drops the delta_C_{t+1} * f_{t+1} term (only to measure the assignment's error).
    """
    gates = lc["gates"]
    P, H4 = gates.shape
    H = H4 // 4
    B0 = pk.bs[0] if pk.bs else 0
    dZ = buffer(ws, "dZ", (P, 4 * H), gates.dtype)  # (P, 4H) dE/dz_t, gate order i|f|g|o
    dh, dC, carry, tmp = (np.empty((B0, H), gates.dtype) for _ in range(4))
    sc = _Scratch(dh, dC, carry, tmp, np.empty((B0, 2 * H), gates.dtype))
    weight_hh_T = weight_hh.T  # (4H, H) view, no copy
    n_next, s_next = 0, 0
    with blas_threads(LOOP_BLAS_THREADS):
        for t in range(len(pk.bs) - 1, -1, -1):
            n = pk.bs[t]
            s, e = pk.off[t], pk.off[t] + n
            _delta_h(sc.delta_h[:n], dh_in, dZ, weight_hh_T, s, e, s_next, n_next)  # delta_t = dE/dh_t, eq (10)
            _step_backward(lc, dZ, pk, t, sc, n_next, cell_path)
            n_next, s_next = n, s
    return (*_layer_weight_grads(lc["x"], lc["h_prev"], dZ, weight_ih, pk, need_dx, ws, dx_key), dZ)


def _step_backward(lc: dict, dZ: np.ndarray, pk: Packing, t: int, sc: _Scratch, n_next: int, cell_path: bool) -> None:
    """dE/dz_t of step t, eq (11)-(15), into dZ's rows of that step, from delta_t in sc.delta_h; leaves
    delta_C_t * f_t in sc.carry for step t-1.  n_next: the number of rows still alive at step t+1."""
    C = lc["C"]
    H = C.shape[1]
    n = pk.bs[t]
    s, e = pk.off[t], pk.off[t] + n
    a = lc["gates"][s:e]  # (n, 4H) activations
    i_t, f_t, c_tilde, o_t = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
    tanhC_t = lc["tanhC"][s:e]  # (n, H)
    dz = dZ[s:e]  # (n, 4H)
    dz_i, dz_f, dz_c, dz_o = dz[:, :H], dz[:, H : 2 * H], dz[:, 2 * H : 3 * H], dz[:, 3 * H :]
    delta_h = sc.delta_h[:n]
    delta_C = sc.delta_C[:n]
    tmp_n = sc.tmp[:n]
    # delta_o = delta_t * tanh(C_t); dz_o = delta_o * o_t (1 - o_t)
    delta_o = dz_o
    np.multiply(delta_h, tanhC_t, out=delta_o)  # eq (11)  delta_o
    np.subtract(1.0, o_t, out=tmp_n)
    tmp_n *= o_t
    delta_o *= tmp_n  # eq (11)  dz_o
    # delta_C_t = delta_t * o_t * (1 - tanh^2 C_t) + delta_C_{t+1} * f_{t+1}
    np.square(tanhC_t, out=delta_C)
    np.subtract(1.0, delta_C, out=delta_C)
    delta_C *= o_t
    delta_C *= delta_h  # eq (12)  part from h_t
    if n_next and cell_path:
        delta_C[:n_next] += sc.carry[:n_next]  # eq (12)  cell-state path from C_{t+1}
    # delta_f = delta_C * C_{t-1};  delta_i = delta_C * c~_t
    delta_f, delta_i = dz_f, dz_i
    if t > 0:
        ps = pk.off[t - 1]
        np.multiply(delta_C, C[ps : ps + n], out=delta_f)  # eq (13)  delta_f
    else:
        delta_f[:] = 0.0  # C_0 = 0
    np.multiply(delta_C, c_tilde, out=delta_i)  # eq (14)  delta_i
    a_if = a[:, : 2 * H]  # i_t | f_t
    np.subtract(1.0, a_if, out=sc.tmp2[:n])
    sc.tmp2[:n] *= a_if
    dz[:, : 2 * H] *= sc.tmp2[:n]  # eq (13), (14)  dz_f = delta_f f(1-f), dz_i = delta_i i(1-i)
    # delta_c~ = delta_C * i_t;  dz_c = delta_c~ (1 - c~^2)
    delta_c_tilde = dz_c
    np.multiply(delta_C, i_t, out=delta_c_tilde)  # eq (15)  delta_c~
    np.square(c_tilde, out=tmp_n)
    np.subtract(1.0, tmp_n, out=tmp_n)
    delta_c_tilde *= tmp_n  # eq (15)  dz_c
    # what C_{t-1} receives through the cell state: delta_C_t * f_t
    np.multiply(delta_C, f_t, out=sc.carry[:n])  # eq (12)  carry for step t-1


def _delta_h(
    delta_h: np.ndarray,
    dh_in: np.ndarray,
    dZ: np.ndarray,
    weight_hh_T: np.ndarray,
    s: int,
    e: int,
    s_next: int,
    n_next: int,
) -> None:
    """delta_t = dE/dh_t into `delta_h` (n, H): the direct gradient plus, for the rows still alive at
    t+1, the recurrent part dz_{t+1} weight_hh^T."""
    if n_next:
        np.matmul(dZ[s_next : s_next + n_next], weight_hh_T, out=delta_h[:n_next])  # eq (10) recurrent part
        delta_h[:n_next] += dh_in[s : s + n_next]  # eq (10) direct part
        delta_h[n_next:] = dh_in[s + n_next : e]
    else:
        delta_h[:] = dh_in[s:e]  # eq (10) (last step: no recurrent part)


def _layer_weight_grads(x, h_prev, dZ, weight_ih, pk: Packing, need_dx: bool, ws, dx_key: str):
    """The weight gradients of one layer, summed over all time steps (and the batch), one matmul
    each, and the gradient into its input. Returns (dx or None, d_weight_ih, d_weight_hh, db)."""
    d_weight_ih = x.T @ dZ  # eq (16)  sum_t x_t^T dz_t          (in, 4H)
    b0 = pk.bs[0] if pk.bs else 0
    d_weight_hh = h_prev[b0:].T @ dZ[b0:]  # eq (17)  sum_t h_{t-1}^T dz_t  (H, 4H)  (h_0 = 0 skipped)
    db = dZ.sum(axis=0)  # eq (18)  sum_t dz_t                        (4H,)
    dx = None
    if need_dx:
        dx = buffer(ws, dx_key, (dZ.shape[0], weight_ih.shape[0]), dZ.dtype)
        np.matmul(dZ, weight_ih.T, out=dx)  # eq (19)  dE/dx_t = dz_t weight_ih^T  (P, in)
    return dx, d_weight_ih, d_weight_hh, db


# --------------------------------------------------------------------------------------
# Head: logits, (ReLU), log-softmax, NLL, and dE/dlogits
# --------------------------------------------------------------------------------------


def _head_loss(
    h_sel: np.ndarray, W_head: np.ndarray, b_head: np.ndarray, tgt: np.ndarray, relu: bool, ws: Workspace | None = None
):
    """Mean NLL over the N real positions and dE/dlogits (N, V), chunk by chunk."""
    N = h_sel.shape[0]
    V = W_head.shape[0]
    dtype = h_sel.dtype
    dlogits = buffer(ws, "dlogits", (N, V), dtype)  # (N, V) logits -> p -> dE/dlogits, in place
    db_head = np.zeros(V, dtype)  # (V,)
    W_head_T = W_head.T  # (H, V) view
    inv_n = 1.0 / N
    total = 0.0
    for r0 in range(0, N, HEAD_CHUNK):
        r1 = min(r0 + HEAD_CHUNK, N)
        a = dlogits[r0:r1]  # (n, V)
        np.matmul(h_sel[r0:r1], W_head_T, out=a)  # eq (6)  s_t = h_t W_head^T + b_head
        a += b_head
        if relu:
            np.maximum(a, 0.0, out=a)  # eq (6')  s_t <- max(s_t, 0)
            live = a > 0.0  # (n, V) where the ReLU passes gradient
        rows = np.arange(r1 - r0)
        t = tgt[r0:r1]
        a -= a.max(axis=1, keepdims=True)  # shift for a stable log-sum-exp
        s_tgt = a[rows, t].astype(np.float64)  # (n,) shifted target logit
        np.exp(a, out=a)
        sums = a.sum(axis=1, keepdims=True)  # (n, 1)
        total += float(np.sum(np.log(sums[:, 0], dtype=np.float64) - s_tgt))  # eq (7)  -log p_t[y_t]
        a *= inv_n / sums  # eq (8)  p_t / N
        a[rows, t] -= inv_n  # eq (8)  (p_t - onehot(y_t)) / N
        if relu:
            a *= live  # eq (8')  times 1[s_t > 0]
        db_head += a.sum(axis=0)  # eq (9)  dE/db_head = sum_t dE/ds_t
    return total * inv_n, dlogits, db_head


# --------------------------------------------------------------------------------------
# Model forward / backward
# --------------------------------------------------------------------------------------


def forward(
    params: Mapping[str, np.ndarray],
    config: Any,
    inputs: Any,
    targets: Any,
    pad_id: int,
    workspace: Workspace | None = None,
):
    """Loss (mean NLL over targets != pad_id) and the cache backward() needs.

    inputs, targets: integer arrays (B, T).  Returns (loss: float, cache: dict).
    workspace: optional Workspace whose buffers are reused (see Workspace).
    """
    ws = workspace
    d = dims(config)
    dtype = check_params(params, d, config)
    inputs, targets = check_batch(inputs, targets, d.V)
    real = targets != pad_id  # (B, T)
    n_real = int(np.count_nonzero(real))
    if n_real == 0:
        raise ValueError("every target in the batch is pad_id: the mean NLL is undefined")
    pk = _live_packing(real)
    ids = packed(inputs, pk)  # (P,)
    x, layers = _layers_forward(params, d, ids, pk, dtype, ws)
    sel, tgt = _real_targets(targets, pk, pad_id, d.V)
    h_sel = np.take(
        x, sel, axis=0, out=buffer(ws, "h_sel", (sel.size, d.H), dtype)
    )  # (N, H) top-layer h_t at the real positions
    W_head = params["embedding.weight"] if d.tie else params["head.weight"]
    loss, dlogits, db_head = _head_loss(h_sel, W_head, params["head.bias"], tgt, d.relu, ws)
    cache = {
        "params": params,
        "dims": d,
        "pack": pk,
        "ids": ids,
        "layers": layers,
        "sel": sel,
        "h_sel": h_sel,
        "dlogits": dlogits,
        "db_head": db_head,
        "n_real": n_real,
        "dtype": dtype,
        "workspace": ws,
    }
    return loss, cache


def _live_packing(real: np.ndarray) -> Packing:
    """The packing of a batch whose real targets are where `real` (B, T) is True."""
    T = real.shape[1]
    # live length of row b = 1 + its last real target's step (0 if none)
    last = T - np.argmax(real[:, ::-1], axis=1)
    lengths = np.where(real.any(axis=1), last, 0)
    return pack(lengths)


def _layers_forward(
    params: Mapping[str, np.ndarray], d: Dims, ids: np.ndarray, pk: Packing, dtype: Any, ws: Workspace | None
) -> tuple[np.ndarray, list[dict]]:
    """The embedding and every LSTM layer over the packed ids: (the top layer's h_t (P, H), each layer's cache)."""
    x = np.take(
        params["embedding.weight"], ids, axis=0, out=buffer(ws, "x0", (ids.size, d.D), dtype)
    )  # eq (1)  x_t = embedding[id_t]   (P, D)
    layers = []
    for l in range(d.L):
        lc = _lstm_layer_forward(
            x, params[f"lstm.{l}.weight_ih"], params[f"lstm.{l}.weight_hh"], params[f"lstm.{l}.bias"], pk, ws, f"{l}."
        )
        layers.append(lc)
        x = lc["h"]  # eq (1)  the next layer's x_t is this layer's h_t   (P, H)
    return x, layers


def _real_targets(targets: np.ndarray, pk: Packing, pad_id: int, V: int) -> tuple[np.ndarray, np.ndarray]:
    """(sel, tgt): the packed rows whose target is real (N,), and those targets (N,)."""
    tgt_packed = packed(targets, pk)  # (P,)
    sel = np.flatnonzero(tgt_packed != pad_id)  # (N,) packed rows with a real target
    tgt = tgt_packed[sel]  # (N,)
    if tgt.min() < 0 or tgt.max() >= V:
        raise ValueError(f"target ids other than pad_id={pad_id} must lie in [0, {V}), got [{tgt.min()}, {tgt.max()}]")
    return sel, tgt


def _backward(cache: dict, cell_path: bool = True, keep_dz: bool = False) -> dict[str, np.ndarray]:
    params, d, pk = cache["params"], cache["dims"], cache["pack"]
    dlogits, h_sel, sel = cache["dlogits"], cache["h_sel"], cache["sel"]
    dtype = cache["dtype"]
    W_head = params["embedding.weight"] if d.tie else params["head.weight"]
    grads: dict[str, np.ndarray] = {}
    dW_head = dlogits.T @ h_sel  # eq (9)  dE/dW_head = sum_t (dE/ds_t)^T h_t   (V, H)
    ws = cache["workspace"]
    dh_sel = np.matmul(
        dlogits, W_head, out=buffer(ws, "dh_sel", (sel.size, d.H), dtype)
    )  # eq (10) head part of delta_t   (N, H)
    P = cache["ids"].shape[0]
    dh = buffer(ws, "dh_top", (P, d.H), dtype)  # (P, H) zero where the target is PAD
    dh.fill(0.0)
    dh[sel] = dh_sel
    dzs = {}
    for l in range(d.L - 1, -1, -1):
        dx, d_weight_ih, d_weight_hh, db, dZ = _lstm_layer_backward(
            cache["layers"][l],
            dh,
            params[f"lstm.{l}.weight_ih"],
            params[f"lstm.{l}.weight_hh"],
            pk,
            True,
            cell_path,
            None if keep_dz else ws,
            f"dx{l % 2}",
        )
        grads[f"lstm.{l}.weight_ih"] = d_weight_ih
        grads[f"lstm.{l}.weight_hh"] = d_weight_hh
        grads[f"lstm.{l}.bias"] = db
        if keep_dz:
            dzs[l] = dZ
        assert dx is not None  # need_dx=True above
        dh = dx  # eq (19)  dE/dx_t of layer l is the direct gradient into h_t of layer l-1
    dE = _scatter_add_rows(cache["ids"], dh, d.V)  # eq (20)  embedding: scatter-add by id
    if d.tie:
        dE += dW_head  # eq (21)  tied: embedding.weight also gets the head's gradient
    grads["embedding.weight"] = dE
    if not d.tie:
        grads["head.weight"] = dW_head
    grads["head.bias"] = cache["db_head"].copy()
    out = {k: grads[k] for k in param_names(d)}
    if keep_dz:
        out["_dz"] = dzs  # type: ignore[assignment]
    return out


def backward(cache: dict) -> dict[str, np.ndarray]:
    """Gradients of the loss w.r.t. every parameter (same keys, shapes, dtype as params).

    The cache is not modified, so calling backward twice gives the same result.
    """
    return _backward(cache)


def loss_and_grads(params: Mapping[str, np.ndarray], config: Any, inputs: Any, targets: Any, pad_id: int):
    """(loss, grads) in one call."""
    loss, cache = forward(params, config, inputs, targets, pad_id)
    return loss, backward(cache)


def _scatter_add_rows(ids: np.ndarray, rows: np.ndarray, V: int) -> np.ndarray:
    """out[v] = sum of rows[p] over p with ids[p] == v.   (V, D)

    One np.bincount per column (accumulates in float64): ~2x faster than np.add.at here.
    """
    D = rows.shape[1]
    rows_T = np.ascontiguousarray(rows.T)  # (D, P)
    out_T = np.empty((D, V), rows.dtype)
    for j in range(D):
        out_T[j] = np.bincount(ids, weights=rows_T[j], minlength=V)
    return np.ascontiguousarray(out_T.T)


def logits(params: Mapping[str, np.ndarray], config: Any, inputs: Any) -> np.ndarray:
    """Head outputs s_t (B, T, V) at every position, before the optional ReLU (eq (6))."""
    d = dims(config)
    check_params(params, d, config)
    inputs, _ = check_batch(inputs, None, d.V)
    B, T = inputs.shape
    pk = pack(np.full(B, T, dtype=np.int64))  # every position alive; order = identity
    x = params["embedding.weight"][packed(inputs, pk)]  # (T*B, D), step-major
    for l in range(d.L):
        x = _lstm_layer_forward(
            x, params[f"lstm.{l}.weight_ih"], params[f"lstm.{l}.weight_hh"], params[f"lstm.{l}.bias"], pk
        )["h"]
    W_head = params["embedding.weight"] if d.tie else params["head.weight"]
    s = x @ W_head.T  # eq (6)  (T*B, V)
    s += params["head.bias"]
    return np.ascontiguousarray(s.reshape(T, B, d.V).transpose(1, 0, 2))


def log_probs(params: Mapping[str, np.ndarray], config: Any, inputs: Any) -> np.ndarray:
    """Log-probabilities (B, T, V) of the next character at every position."""
    s = logits(params, config, inputs)  # (B, T, V)
    if getattr(config, "relu_logits", False):
        np.maximum(s, 0.0, out=s)  # eq (6')
    s -= s.max(axis=-1, keepdims=True)
    s -= np.log(np.exp(s).sum(axis=-1, keepdims=True))  # eq (7)  log p_t
    return s
