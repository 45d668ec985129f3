"""The compiled gate arithmetic (csrc/lstm_cell.c) against the same equations as PyTorch ops."""

import pytest
import torch

from tangshi.model import kernels
from tangshi.model.recurrence import LSTMRecurrence

needs_cell = pytest.mark.skipif(not kernels.detect().compiled, reason=f"fused cell: {kernels.detect().why}")


def _run(xz, w, h0, c0, up, with_state_grads, lib=None):
    hs, hT, cT = LSTMRecurrence.apply(xz, w, h0, c0, lib)
    loss = (hs * up).sum() + (hT.square().sum() + cT.sum() if with_state_grads else 0)
    return [hs, hT, cT, *torch.autograd.grad(loss, (xz, w, h0, c0))]


@needs_cell
@pytest.mark.parametrize(
    "T, B, H, strided, state_grads",
    [(7, 3, 5, False, True), (12, 8, 16, True, False), (1, 1, 1, True, True), (20, 4, 33, False, False)],
)
def test_fused_cell_equals_the_ops(T, B, H, strided, state_grads):
    """Outputs and every gradient (xz, weight_hh, h_0, C_0) within fp32's own tolerance (assert_close's
    defaults for float32), for odd sizes (H not a multiple of the vector width), a gradient from
    above that is a strided view (as `hs.transpose(0, 1)` gives), a C_0 that is not contiguous,
    and with and without gradients into the last state."""
    g = torch.Generator().manual_seed(T * 100 + H)
    xz = (torch.randn(T, B, 4 * H, generator=g) * 2).requires_grad_()
    w = (torch.randn(H, 4 * H, generator=g) / H**0.5).requires_grad_()
    h0 = torch.randn(B, H, generator=g).requires_grad_()
    c0 = torch.randn(H, B, generator=g).t().requires_grad_()  # not contiguous
    up = torch.randn(B, T, H, generator=g).transpose(0, 1) if strided else torch.randn(T, B, H, generator=g)
    want = _run(xz, w, h0, c0, up, state_grads, None)
    got = _run(xz, w, h0, c0, up, state_grads, kernels.detect().lib)
    for name, a, b in zip(("hs", "hT", "cT", "d_xz", "d_w", "d_h0", "d_c0"), got, want):
        torch.testing.assert_close(a, b, msg=name)


@needs_cell
def test_fused_cell_saturates_cleanly_and_keeps_nan():
    """Huge pre-activations give the gates torch gives, 0 and 1 to within 1e-7 (no inf, no NaN from
    exp's overflow); a NaN stays NaN, so a diverged run is still caught by its loss."""
    H = 4
    z = torch.tensor([[1e4, -1e4, 100.0, -100.0] * 4])  # i, f, c̃, o blocks of 4
    lib = kernels.detect().lib
    hs, _, cT = LSTMRecurrence.apply(z[None], torch.zeros(H, 4 * H), torch.zeros(1, H), torch.ones(1, H), lib)
    v = torch.tensor([1e4, -1e4, 100.0, -100.0])
    i = f = o = v.sigmoid()
    g = v.tanh()
    assert torch.isfinite(hs).all() and torch.isfinite(cT).all()
    torch.testing.assert_close(cT[0], f * 1.0 + i * g, rtol=0, atol=1e-7)
    torch.testing.assert_close(hs[0, 0], o * torch.tanh(cT[0]), rtol=0, atol=1e-7)
    z[0, 0] = float("nan")
    hs, _, cT = LSTMRecurrence.apply(z[None], torch.zeros(H, 4 * H), torch.zeros(1, H), torch.ones(1, H), lib)
    assert torch.isnan(cT[0, 0]) and torch.isnan(hs[0, 0, 0]) and torch.isfinite(hs[0, 0, 1:]).all()


def test_without_the_cell_the_ops_run(monkeypatch, tmp_path):
    """TANGSHI_FUSED_CELL=0, or a compiler that fails: no library, a reason, and the recurrence
    still runs (as PyTorch ops) and equals plain autograd through the same equations
    (`kernels.cell_ops`)."""
    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setenv("TANGSHI_FUSED_CELL", "0")
    assert kernels.detect() == kernels.Kernels(None, "off (TANGSHI_FUSED_CELL=0)")
    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.delenv("TANGSHI_FUSED_CELL")
    monkeypatch.setenv("CC", "false")  # a compiler that always fails
    monkeypatch.setattr(kernels, "_cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(kernels.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    ks = kernels.detect()
    assert ks.lib is None and ks.why.startswith(("build failed", "no C compiler"))
    _cell = kernels.cell_ops
    g = torch.Generator().manual_seed(1)
    xz = torch.randn(5, 2, 12, generator=g, requires_grad=True)
    w = torch.randn(3, 12, generator=g, requires_grad=True)
    hs, _, _ = LSTMRecurrence.apply(xz, w, torch.zeros(2, 3), torch.zeros(2, 3))
    h, c, ref = torch.zeros(2, 3), torch.zeros(2, 3), []
    for t in range(5):
        h, c = _cell(xz[t] + h @ w, c)
        ref.append(h)
    torch.testing.assert_close(hs, torch.stack(ref))
    torch.testing.assert_close(torch.autograd.grad(hs.sum(), w)[0], torch.autograd.grad(torch.stack(ref).sum(), w)[0])


@needs_cell
def test_a_damaged_cached_library_is_built_again(monkeypatch, tmp_path):
    """A cached library that does not load (here: cut to 100 bytes before any process loaded it) is
    compiled again, not used or kept."""
    monkeypatch.setattr(kernels, "_cache_dir", lambda: tmp_path)
    monkeypatch.setattr(kernels, "_state", {})
    lib = kernels._build(kernels._compiler())  # compiled, not loaded
    lib.write_bytes(lib.read_bytes()[:100])
    assert kernels.detect().compiled and lib.stat().st_size > 1000
    assert kernels.detect().why.endswith(str(lib))


def test_a_cache_folder_others_can_write_is_not_used(monkeypatch, tmp_path):
    """A library loaded from a folder that another user can write could be theirs: such folders are
    skipped (and none is built or loaded there), with a reason."""
    shared = [tmp_path / "cache", tmp_path / "tmp"]
    for folder in shared:
        folder.mkdir()
        folder.chmod(0o777)
    monkeypatch.setattr(kernels, "_cache_dir", lambda: shared[0])
    monkeypatch.setattr(kernels.tempfile, "gettempdir", lambda: str(shared[1]))
    (shared[1] / f"tangshi-{kernels.os.getuid()}").mkdir(mode=0o777)
    (shared[1] / f"tangshi-{kernels.os.getuid()}").chmod(0o777)
    monkeypatch.setattr(kernels, "_state", {})
    if kernels._compiler() is None:
        pytest.skip("no C compiler")
    assert kernels.detect().lib is None
    assert kernels.detect().why == "build failed: no cache folder that only this user can write, for the compiled cell"
    assert not list(tmp_path.rglob("*.so"))
