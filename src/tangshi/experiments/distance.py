"""`tangshi experiment distance`: how far back the gradient reaches, on real poems, with a trained model.

For each poem, the loss is the model's −ln p(<EOS>) at the poem's last step T only, and BPTT
(`reference_lstm.LstmLayer.calc_delta`, the code docs/lstm-backprop.md points into) gives
δh_t = ∂E/∂h_t and δC_t = ∂E/∂C_t for every earlier step. The report plots their norms against the
distance T − t, as the geometric mean over the poems, once with correct BPTT and once without the
cell-state path (the assignment's first error: δC_{t+1} ⊙ f_{t+1} dropped). The top layer's deltas are shown.
"""

import json
from pathlib import Path

import numpy as np

from tangshi.data.prepare import read_split
from tangshi.errors import TangshiError
from tangshi.experiments.report import _header
from tangshi.lesson.reference_lstm import LstmLayer
from tangshi.model.checkpoint import load_checkpoint
from tangshi.outputs import OutputFolder

NAMES = {"md": "distance.md", "json": "distance.json", "plot": "distance.png"}
MIN_CHARS = 40  # poems at least this long, so that distances up to 40 are measured on every poem


def poem_deltas(params: dict, config, ids: list[int], eos: int, cell_path: bool) -> tuple[np.ndarray, np.ndarray]:
    """‖δh_t‖ and ‖δC_t‖ of the top layer for t = 1 … T (index 0 = t = 1), for E = −ln p_T(<EOS>)."""
    W_head = params["embedding.weight"] if getattr(config, "tie_weights", False) else params["head.weight"]
    xs = [params["embedding.weight"][i].reshape(-1, 1) for i in ids]
    layers = []
    for l in range(config.num_layers):
        layer = LstmLayer.from_canonical(
            params[f"lstm.{l}.weight_ih"], params[f"lstm.{l}.weight_hh"], params[f"lstm.{l}.bias"]
        )
        xs = layer.forward(xs)
        layers.append(layer)
    s = W_head @ xs[-1] + params["head.bias"].reshape(-1, 1)
    p = np.exp(s - s.max())
    p /= p.sum()
    p[eos, 0] -= 1.0  # ∂E/∂s_T for E = −ln p_T(<EOS>)
    dh = [np.zeros_like(xs[0]) for _ in xs[:-1]] + [W_head.T @ p]
    top = layers[-1]
    top.calc_delta(dh, cell_path=cell_path)
    T = len(ids)
    return (
        np.array([np.linalg.norm(top.dh[t]) for t in range(1, T + 1)]),
        np.array([np.linalg.norm(top.dC[t]) for t in range(1, T + 1)]),
    )


def run_distance(checkpoint, data_dir, out, n_poems: int = 100, argv=None, replace: bool = False, log=print) -> dict:
    model, vocab, _ = load_checkpoint(checkpoint)
    params = {k: v.double().numpy() for k, v in model.canonical_state_dict().items()}
    poems = [p for p in read_split(data_dir, "dev") if len(p) >= MIN_CHARS and all(ch in vocab for ch in p)][:n_poems]
    if not poems:
        raise TangshiError(f"no dev poem in {data_dir} has {MIN_CHARS} characters the model knows")
    D = MIN_CHARS  # distances 0 … D − 1 are measured on every poem
    logs = {k: np.zeros(D) for k in ("dh", "dC", "dh_original", "dC_original")}
    with OutputFolder(out, "reports", replace=replace, names=list(NAMES.values())) as folder:
        for k, poem in enumerate(poems):
            ids = [vocab.start_id] + vocab.encode(poem)
            for cell_path, suffix in ((True, ""), (False, "_seed")):
                dh, dC = poem_deltas(params, model.config, ids, vocab.eos_id, cell_path)
                logs["dh" + suffix] += np.log(dh[::-1][:D]) / len(poems)  # index = distance T − t
                logs["dC" + suffix] += np.log(dC[::-1][:D]) / len(poems)
            if (k + 1) % 25 == 0:
                log(f"{k + 1} poems")
        curves = {k: np.exp(v).tolist() for k, v in logs.items()}
        res = {
            "checkpoint": _shown(checkpoint),
            "data": str(data_dir),
            "poems": len(poems),
            "distances": D,
            "curves": curves,
        }
        with folder.staged() as stage:
            _plot(curves, stage / NAMES["plot"], len(poems))
            (stage / NAMES["md"]).write_text(
                _header("How far back the gradient reaches", argv) + _report(res), encoding="utf-8"
            )
            (stage / NAMES["json"]).write_text(json.dumps(res, indent=1), encoding="utf-8")
    return {**res, "report": str(folder.path / NAMES["md"])}


def _shown(path) -> str:
    """A path as the report shows it: relative to the working folder when it lies inside it."""
    p = Path(path).resolve()
    return str(p.relative_to(Path.cwd())) if p.is_relative_to(Path.cwd()) else str(p)


def _ratio(curve: list[float], d: int) -> float:
    return curve[d] / curve[0]


def _report(res: dict) -> str:
    c = res["curves"]
    rows = "\n".join(
        f"| {d} | {c['dh'][d]:.2e} | {c['dC'][d]:.2e} | {c['dh_original'][d]:.2e} | {c['dC_original'][d]:.2e} |"
        for d in (0, 1, 2, 5, 10, 20, 30, res["distances"] - 1)
    )
    far = res["distances"] - 1
    return f"""
Model: {res["checkpoint"]}. Poems: the first {res["poems"]} of {res["data"]}/dev.txt with at least {MIN_CHARS}
characters (the bundled model may have trained on some of them; that does not matter here). For each
poem, E = −ln p(<EOS>) at its last step T; the table gives the geometric mean over the poems of the
top layer's ‖δh_t‖ and ‖δC_t‖ at distance T − t, with correct BPTT and without the cell-state path.

| distance T − t | ‖δh_t‖ | ‖δC_t‖ | ‖δh_t‖, no cell path | ‖δC_t‖, no cell path |
|---|---|---|---|---|
{rows}

From distance 0 to {far}, ‖δC_t‖ falls by a factor {1 / _ratio(c["dC"], far):.3g} with correct BPTT and by
{1 / _ratio(c["dC_original"], far):.3g} without the cell-state path; ‖δh_t‖ by {1 / _ratio(c["dh"], far):.3g} and
{1 / _ratio(c["dh_original"], far):.3g}. At distance 0 the two agree (nothing has come back through time yet).

![‖δh_t‖ and ‖δC_t‖ against distance]({NAMES["plot"]})
"""


def _plot(curves: dict, path, n: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    d = range(len(curves["dh"]))
    ax.semilogy(d, curves["dC"], "-", color="C0", linewidth=2, label="‖δC_t‖, correct BPTT")
    ax.semilogy(d, curves["dh"], "-", color="C1", linewidth=2, label="‖δh_t‖, correct BPTT")
    ax.semilogy(d, curves["dC_original"], "--", color="C0", linewidth=1.5, label="‖δC_t‖, no cell-state path")
    ax.semilogy(d, curves["dh_original"], "--", color="C1", linewidth=1.5, label="‖δh_t‖, no cell-state path")
    ax.set_xlabel("distance T − t (steps back from the loss)")
    ax.set_ylabel("norm (geometric mean over poems)")
    ax.set_title(f"gradient of −ln p(<EOS>) at the last step, {n} poems, bundled model")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
