"""The experiments' --quick modes, and the facts their reports rest on."""

import json

import pytest
import torch

from tangshi.cli import main
from tangshi.experiments import distinct_units
from tangshi.model import ModelConfig, PoetryLM


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_optimizers_quick_writes_report(tmp_path, tiny_prepared, capsys, backend):
    out = tmp_path / "reports"
    stem = "optimizers" if backend == "torch" else "optimizers-numpy"
    assert main(["experiment", "optimizers", "--quick", "--backend", backend,
                 "--data", str(tiny_prepared), "--out", str(out)]) == 0
    text = (out / f"{stem}.md").read_text(encoding="utf-8")
    assert f"command: `tangshi experiment optimizers --quick --backend {backend}" in text
    assert f"{backend} backend" in text and f"]({stem}_best.png)" in text
    rows = json.loads((out / f"{stem}.json").read_text())["rows"]
    assert {r["optimizer"] for r in rows} == {"adam", "adagrad", "sgd", "adamw"}
    assert all(r["best_dev_ppl"] > 1 for r in rows)
    ada = [r for r in rows if r["optimizer"] == "adagrad"]
    assert all(r["effective_step"] < r["effective_step_1"] for r in ada)  # Adagrad's step decays
    assert (out / f"{stem}_best.png").stat().st_size > 1000
    # the two backends write side by side: neither overwrites the other's files
    assert not (backend == "numpy" and (out / "optimizers.md").exists())


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_init_quick_zero_init_stays_symmetric(tmp_path, tiny_prepared, capsys, backend):
    out = tmp_path / "reports"
    stem = "init" if backend == "torch" else "init-numpy"
    assert main(["experiment", "init", "--quick", "--backend", backend,
                 "--data", str(tiny_prepared), "--out", str(out)]) == 0
    res = json.loads((out / f"{stem}.json").read_text())
    z, x = res["results"]["zeros"], res["results"]["xavier"]
    assert z["distinct_units"]["end"] == 1 and z["distinct_units"]["1"] == 1
    assert x["distinct_units"]["0"] == 16 and x["distinct_units"]["end"] == 16
    # under zero init, only the output bias receives a gradient
    assert z["grad_norm_step1"]["head.bias"] > 0
    assert all(v == 0.0 for k, v in z["grad_norm_step1"].items() if k != "head.bias")
    assert [k for k, v in z["max_change"].items() if v > 0] == ["head.bias"]
    assert (out / f"{stem}.md").exists() and (out / f"{stem}_curves.png").stat().st_size > 1000


def test_distinct_units_counts_groups():
    m = PoetryLM(ModelConfig(vocab_size=11, pad_id=10, embed_dim=4, hidden_dim=6, init="zeros"))
    assert distinct_units(m) == 1
    with torch.no_grad():
        m.lstm[0].bias[2] = 1e-3  # the input-gate bias of unit 2: only unit 2 now differs
    assert distinct_units(m) == 2


def test_adagrad_effective_step_falls_monotonically():
    """On a fixed batch, lr/(√G+ε) never rises: G only accumulates squared gradients."""
    torch.manual_seed(0)
    m = PoetryLM(ModelConfig(vocab_size=11, pad_id=10, embed_dim=8, hidden_dim=8))
    opt = torch.optim.Adagrad(m.parameters(), lr=0.05)
    x = torch.randint(0, 10, (4, 7)); y = torch.randint(0, 10, (4, 7))
    steps = []
    for _ in range(15):
        _, loss = m(x, y)
        opt.zero_grad(); loss.backward(); opt.step()
        G = torch.cat([opt.state[p]["sum"].flatten() for p in m.parameters()])
        steps.append(float((0.05 / (G.sqrt() + 1e-10)).median()))
    assert all(b <= a for a, b in zip(steps, steps[1:]))
    assert steps[-1] < steps[0]


@pytest.mark.parametrize("which", ["optimizers", "init"])
def test_missing_data_is_one_line_and_creates_nothing(tmp_path, capsys, which):
    out = tmp_path / "reports"
    assert main(["experiment", which, "--quick", "--data", str(tmp_path / "nope"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope" in err and not out.exists()


def test_backprop_experiment_separates_correct_bptt_from_the_missing_cell_path(tmp_path, capsys):
    """Recall 8 steps back: correct BPTT leaves chance; without the cell-state path it stays there."""
    import math

    from tangshi.backprop_study import Task, train_variant
    from tangshi.cli import main

    task = Task(steps=300)
    chance = math.log(task.alphabet)
    good, bad = train_variant(task, None), train_variant(task, "no_cell_state_path")
    assert good["final_dev"] < chance - 0.2
    assert bad["final_dev"] > chance - 0.05
    assert main(["experiment", "backprop", "--quick", "--out", str(tmp_path / "r")]) == 0
    report = (tmp_path / "r" / "backprop.md").read_text(encoding="utf-8")
    runs = json.loads((tmp_path / "r" / "backprop.json").read_text(encoding="utf-8"))["runs"]
    assert [r["error"] for r in runs] == [None, "no_cell_state_path", "input_weights_last_step_only",
                                          "bias_i_o_set_to_delta_f"]
    assert all(f"{r['final_dev']:.3f}" in report for r in runs)  # the table is the runs' numbers
    assert (tmp_path / "r" / "backprop_curves.png").stat().st_size > 10_000
