"""The studies (optimizers, init) on tiny corpora, and the facts their reports rest on."""

import json
import math
import os
import re
import shutil

import numpy as np
import pytest
import torch

from tangshi.cli.main import main
from tangshi.errors import TangshiError
from tangshi.experiments import optimizer_extended
from tangshi.experiments import optimizers as optimizer_study
from tangshi.experiments.backprop import Task, one_hot_params, train_variant
from tangshi.experiments.backprop_report import reach_step, still_falling, verdict
from tangshi.experiments.study import Probe, Recorder, RunSpec, Study, distinct_units
from tangshi.model.lm import ModelConfig, PoetryLM


def _study_cli(which, prepared, out, work, *extra):
    return main(
        ["experiment", which, "--quick", "--data", str(prepared), "--out", str(out), "--work", str(work), *extra]
    )


def _sentences(text: str) -> list[str]:
    """A bottom line's sentences: split after a full stop followed by a space and a capital."""
    return re.split(r"(?<=\.)\s+(?=[A-Z])", text.strip())


def test_optimizers_quick_report_follows_its_json(tmp_path, tiny_prepared, capsys):
    out, work = tmp_path / "reports", tmp_path / "work"
    assert _study_cli("optimizers", tiny_prepared, out, work) == 0
    doc = json.loads((out / "optimizers.json").read_text(encoding="utf-8"))
    text = (out / "optimizers.md").read_text(encoding="utf-8")
    assert doc["format"] == optimizer_study.FORMAT and "command: `tangshi experiment optimizers --quick" in text
    # the bottom line comes first, its ranking from the finals' numbers, scoped to its budget
    bottom = text.split("**Bottom line.**", 1)[1].split("\n", 1)[0]
    assert text.index("**Bottom line.**") < text.index("Data:") and "constant learning rate" in bottom
    assert 1 < len(_sentences(bottom)) <= 3, bottom
    ranked = sorted(
        (r for r in optimizer_study._final_table(doc) if r["wd"] == optimizer_study.ORIGINAL_WD and r["runs"]),
        key=lambda r: r["best"]["mean"],
    )
    assert ", ".join(f"{r['optimizer']} {r['best']['mean']:.2f}" for r in ranked) in bottom
    b = optimizer_study.QUICK
    for opt, g in doc["grids"].items():  # each grid brackets its best, or says it could not
        scores = [doc["runs"][n]["best"]["dev_ppl"] if not doc["runs"][n]["diverged"] else math.inf for n in g["runs"]]
        k = scores.index(min(scores))
        assert g["best_lr"] == doc["runs"][g["runs"][k]]["spec"]["train"]["lr"]
        assert g["bracketed"] == (0 < k < len(scores) - 1)
        assert (
            g["bracketed"]
            or len(scores) == optimizer_study.MAX_GRID
            or g["best_lr"] in (optimizer_study.LADDER[0], optimizer_study.LADDER[-1])
        )
    finals = {(f["optimizer"], f["wd"]): f for f in doc["finals"]}
    assert set(finals) == {(o, 1e-4) for o in optimizer_study.OPTIMIZERS} | {(o, 0.0) for o in optimizer_study.CONTROLS}
    for f in finals.values():
        assert f["lr"] == doc["grids"][f["optimizer"]]["best_lr"] and len(f["runs"]) == b.seeds
        for n in f["runs"]:  # per-epoch history of every run, for --replot
            assert [h["epoch"] for h in doc["runs"][n]["history"]] == list(range(1, b.epochs + 1))
        mean = sum(doc["runs"][n]["best"]["dev_ppl"] for n in f["runs"]) / b.seeds
        assert f"| {f['optimizer']} | {f['lr']:g} | {f['wd']:g} | {mean:.2f} ± " in text  # the table is the runs'
    assert "**confirmed" in text or "**refuted" in text or "**partly" in text
    for k in ("final", "sweep", "updates", "rates"):
        assert (out / optimizer_study.NAMES[k]).stat().st_size > 10_000
    # the second part: each constant and scheduled run of the budget, at the final budget, in its table
    second = text.split("## The rate again, and schedules", 1)[1]
    table = optimizer_extended.by_rate(doc)
    assert set(table) == {("adam", "constant"), ("adagrad", "constant"), ("adam", "cosine"), ("adam", "1/√t")}
    # the fine grid's rates, and the rate of the first part's weight-decay-0 final run (seed 0): the same
    # settings, taken from there rather than trained twice (the plan leaves its fine run out)
    control = {f["lr"] for f in doc["finals"] if f["optimizer"] == "adam" and f["wd"] == 0.0}
    assert sorted(table[("adam", "constant")]) == sorted({1e-2, 3e-2} | control)
    assert list(table[("adam", "cosine")]) == [1e-2]
    for lr in control - {1e-2, 3e-2}:
        assert table[("adam", "constant")][lr]["spec"]["name"].startswith("final-") and "†" in second
    for lr in control & {1e-2, 3e-2}:
        assert f"fine-adam-lr{lr:g}-wd0-e2-s0" not in doc["runs"]  # not trained twice
    for grid in table.values():
        for rec in grid.values():
            assert len(rec["history"]) == b.epochs and rec["spec"]["train"]["weight_decay"] == 0.0
            assert f"{rec['best']['dev_ppl']:.1f} (ep {rec['best']['epoch']}; last " in second
    assert doc["runs"]["sched-cosine-adam-lr0.01-wd0-e2-s0"]["spec"]["train"]["schedule"] == "cosine"
    # Adam keeps two tensors of state per parameter, Adagrad one: counted, not assumed
    state = doc["state"]
    assert state["adam"]["floats"] == 2 * state["adagrad"]["floats"] == 2 * state["parameters"]
    # the row records of each epoch survive the report's thinning, and the verdicts read them
    rows = [r for n, r in doc["runs"].items() if n.startswith("rows-")]
    assert {r["spec"]["train"]["optimizer"] for r in rows} == {"adam", "adagrad"}
    assert re.search(r"- adagrad \(seed 0, \d+ epochs?, weight decay 0\): a row moves only in a step where", second)
    # dev NLL by character frequency: the buckets add up to the run's own dev figures (train.evaluate)
    from tangshi.data.splits import load_split
    from tangshi.model.checkpoint import load_checkpoint
    from tangshi.train.evaluate import evaluate

    freq = doc["by_frequency"]
    assert set(freq) == {"adam", "adagrad"} and freq["adam"]["lr"] == max(
        table[("adam", "constant")], key=lambda lr: -table[("adam", "constant")][lr]["best"]["dev_ppl"]
    )
    for opt in ("adam", "adagrad"):
        model, vocab, _ = load_checkpoint(work / freq[opt]["run"] / "best")
        ref = evaluate(model, load_split(tiny_prepared, "dev", vocab))
        buckets = [v for v in freq[opt]["buckets"].values() if v["tokens"]]
        assert sum(v["tokens"] for v in buckets) == ref["tokens"]
        mean = sum(v["nll"] * v["tokens"] for v in buckets) / ref["tokens"]
        assert mean == pytest.approx(ref["dev_nll"], rel=1e-6)
    assert "### Where the gap lies: dev NLL by the character's frequency" in second
    # the same command again trains nothing: every run is recorded
    before = {p.name: p.stat().st_mtime_ns for p in work.glob("*.json")}
    capsys.readouterr()
    assert _study_cli("optimizers", tiny_prepared, tmp_path / "again", work) == 0
    assert "training" not in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in work.glob("*.json")} == before
    # --replot renders the same report from the JSON alone
    (out / "optimizers.md").unlink()
    assert main(["experiment", "optimizers", "--replot", "--out", str(out)]) == 0
    again = (out / "optimizers.md").read_text(encoding="utf-8")
    assert again.replace(again.split("\n")[6] + "\n", "", 1) == text
    assert "rendered again from the JSON" in again
    # a best checkpoint gone from the work folder: the earlier report's measurement of the same run is
    # carried over and said to be (from --adopt's JSON or the report being replaced), never dropped silently
    gone = work / freq["adagrad"]["run"] / "best"
    shutil.move(gone, tmp_path / "kept-aside")
    assert _study_cli("optimizers", tiny_prepared, out, work, "--replace") == 0
    carried = json.loads((out / "optimizers.json").read_text(encoding="utf-8"))["by_frequency"]
    assert carried["adagrad"] == {**freq["adagrad"], "taken": True} and carried["adam"] == freq["adam"]
    said = (out / "optimizers.md").read_text(encoding="utf-8")
    assert f"The figures of {freq['adagrad']['run']} are an earlier report's measurement" in said
    assert optimizer_extended._frequency_verdict(freq)[0] in said  # the same verdict, from the same figures
    assert _study_cli("optimizers", tiny_prepared, tmp_path / "elsewhere", work) == 0  # nothing earlier
    lost = json.loads((tmp_path / "elsewhere" / "optimizers.json").read_text(encoding="utf-8"))["by_frequency"]
    assert lost["adagrad"] == {"run": freq["adagrad"]["run"], "lr": freq["adagrad"]["lr"], "missing": True}
    said = (tmp_path / "elsewhere" / "optimizers.md").read_text(encoding="utf-8")
    assert f"Not measured: the best checkpoint of {freq['adagrad']['run']} is not in the work folder" in said
    assert optimizer_extended._frequency_verdict(freq)[0] not in said


class _FakeStudy:
    """Records whose best perplexity is a given function of the learning rate."""

    def __init__(self, score):
        self.score = score

    def recorded(self, spec):
        lr = spec.train["lr"]
        s = self.score(lr)
        return {"diverged": s is None, "best": None if s is None else {"dev_ppl": s, "epoch": 1}}


@pytest.mark.parametrize(
    "score,grid,best,inside",
    [
        (lambda lr: (math.log10(lr) + 2) ** 2 + 10, [3e-3, 1e-2, 3e-2], 1e-2, True),  # best in the middle already
        (lambda lr: (math.log10(lr) + 3.2) ** 2 + 10, [3e-4, 1e-3, 3e-3, 1e-2, 3e-2], 1e-3, True),  # widened downwards
        (lambda lr: None if lr > 0.05 else -lr, [3e-3, 1e-2, 3e-2, 0.1], 3e-2, True),  # a diverged rung brackets
        (lambda lr: -lr, [3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0], 3.0, False),  # stops at MAX_GRID, says so
    ],
)
def test_sweep_widens_until_the_best_is_inside(score, grid, best, inside):
    specs, state = optimizer_study.sweep_state("adam", _FakeStudy(score), optimizer_study.QUICK, "torch")
    assert state["lrs"] == grid and state["best_lr"] == best and state["bracketed"] is inside
    assert [s.train["lr"] for s in specs] == grid


def test_update_probe_is_the_step_taken():
    """Plain SGD without decay moves each parameter by lr·g: the probe's RMS update must be lr·RMS(g)."""
    torch.manual_seed(0)
    m = PoetryLM(ModelConfig(vocab_size=11, pad_id=10, embed_dim=6, hidden_dim=5, tie_weights=False))
    opt = torch.optim.SGD(m.parameters(), lr=0.3)
    rec = Recorder(("updates", "grads", "moved"), path=None)
    rec(0, Probe("torch", model=m))
    x, y = torch.randint(0, 10, (3, 7)), torch.randint(0, 10, (3, 7))
    _, loss = m(x, y)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in m.named_parameters()}
    opt.step()
    rec(1, Probe("torch", model=m))
    got = rec.records[1]
    assert got["grad_norms"]["head.bias"] == pytest.approx(float(grads["head.bias"].norm()), rel=1e-6)
    for name, want in (("head.bias", grads["head.bias"]), ("embedding.weight", grads["embedding.weight"])):
        assert got["update_rms"][name] == pytest.approx(0.3 * float(want.double().pow(2).mean().sqrt()), rel=1e-5)
        assert got["moved"][name] == pytest.approx(0.3 * float(want.abs().max()), rel=1e-5)


def _tiny_spec(**train):
    return RunSpec(
        "r",
        dict(embed_dim=8, hidden_dim=8, init="xavier"),
        dict(epochs=3, batch_size=16, optimizer="adam", lr=0.01, amp=False, **train),
        ("symmetry", "grads", "moved", "updates"),
    )


def test_a_study_cut_short_continues_to_the_same_run(tmp_path, tiny_prepared):
    """Killed after epoch 1 (simulated: the run stopped there, no record), the study continues it:
    history and every probe equal those of an uninterrupted study."""
    from tangshi.experiments.study import train_run
    from tangshi.train.config import TrainConfig
    from tangshi.train.loop import fit
    from tangshi.train.start import Start
    from tangshi.train.torch_backend import TorchBackend

    spec = _tiny_spec()
    with Study(tmp_path / "a", tiny_prepared) as s:
        whole = s.run([spec])["r"]
    (tmp_path / "b").mkdir()
    rec = Recorder(spec.probes, tmp_path / "b" / "r.probes.json")
    from tangshi.experiments.study import _FlushingBackend

    fit(
        _FlushingBackend(TorchBackend(lambda step, model, opt: rec(step, Probe("torch", model=model))), rec),
        tiny_prepared,
        tmp_path / "b" / "r",
        spec.model,
        TrainConfig(**spec.train),
        start=Start.of(),
        progress=False,
        log=lambda *a: None,
        keep_epoch_checkpoints=False,
        stop_after_epoch=1,
    )
    cont = train_run(spec.as_json(), str(tmp_path / "b"), str(tiny_prepared), quiet=True)
    assert [h["dev_ppl"] for h in cont["history"]] == [h["dev_ppl"] for h in whole["history"]]
    a, b = whole["probes"], cont["probes"]
    resumed_at = str(whole["history"][0]["steps"] + 1)  # the first step after the checkpoint: no update before it
    assert set(a) - set(b) <= {resumed_at} and set(b) <= set(a) and len(a) > 6
    for step in b:
        assert a[step].keys() - b[step].keys() == ({"update_rms"} if step == resumed_at else set())
        for kind in ("distinct_units", "moved", "grad_norms", "update_rms"):
            if kind in b[step]:
                assert b[step][kind] == pytest.approx(a[step][kind], rel=1e-6, abs=1e-12), (step, kind)


def test_a_record_of_other_settings_is_refused(tmp_path, tiny_prepared):
    with Study(tmp_path / "w", tiny_prepared) as s:
        s.run([_tiny_spec()])
    other = RunSpec(
        "r",
        dict(embed_dim=8, hidden_dim=8, init="xavier"),
        dict(epochs=3, batch_size=16, optimizer="adam", lr=0.02, amp=False),
        (),
    )
    with Study(tmp_path / "w", tiny_prepared) as s, pytest.raises(TangshiError, match="other settings"):
        s.run([other])


def test_init_quick_tells_symmetric_from_stuck(tmp_path, tiny_prepared, capsys):
    out = tmp_path / "reports"
    assert _study_cli("init", tiny_prepared, out, tmp_path / "work") == 0
    doc = json.loads((out / "init.json").read_text(encoding="utf-8"))
    text = (out / "init.md").read_text(encoding="utf-8")
    bottom = text.split("**Bottom line.**", 1)[1].split("\n", 1)[0]
    assert "With all-zero weights only the output bias moves" in bottom and "seed 0" in bottom
    # seed 0 ranks; the seeds and the one-tensor arms follow in the same paragraph, read from their runs
    assert re.search(r"[Oo]ver the seeds run, best dev perplexity as mean ± sd \(min–max\): ", bottom)
    assert 1 < len(_sentences(bottom)) <= 3, bottom
    runs = {
        (
            r["spec"]["model"]["init"],
            r["spec"]["train"]["optimizer"],
            r["spec"]["model"]["relu_logits"],
            r["spec"]["train"]["seed"],
        ): r
        for r in doc["runs"].values()
    }
    # the first part: 5 arms x (the recipe, its ReLU); the second: 4 one-tensor and gate arms at seed 0,
    # and seeds 1-2 of the 5 arms a verdict rests on
    assert len(runs) == 5 * 2 + 4 + 5 * 2
    everything = set(runs["xavier", "adam", False, 0]["probes"]["1"]["moved"])
    for (arm, opt, relu, _), r in runs.items():
        probes = {int(k): v for k, v in r["probes"].items()}
        units = {s: v["distinct_units"] for s, v in probes.items()}
        moved = probes[max(probes)]["moved"]
        if arm in ("zeros", "constant"):
            assert set(units.values()) == {1}, (arm, opt, relu)  # symmetric at every recorded step
        else:
            assert units[0] == 16 and units[max(units)] == 16
        if arm == "zeros":  # only the output bias can move; under ReLU (derivative 0 at 0) not even that
            assert {k for k, v in moved.items() if v > 0} == (set() if relu else {"head.bias"})
            assert all(v == 0 for k, v in probes[1]["grad_norms"].items() if k != "head.bias")
        if arm == "constant":  # symmetric, yet every parameter moves
            assert {k for k, v in moved.items() if v > 0} == everything
    assert "1. *All-zero weights fail.* — **confirmed**" in text
    assert "**symmetric but not stuck**" in text
    # the distinct-units plot became a sentence read from the table
    assert "Distinct units over the steps, from the table: all zeros (adam + ReLU), all zeros (adam), " in text
    assert "Xavier (adam + ReLU), Xavier (adam): 16 at every recorded step." in text
    for k in ("curves", "step0", "grads"):
        assert (out / f"init_{k}.png").stat().st_size > 10_000
    assert "Incomplete" not in text
    # the second part: the step-0 mechanism of every arm, against the variance argument's numbers
    from tangshi.experiments.init_extended import label
    from tangshi.experiments.init_mechanism import xavier_bound

    mech = doc["mechanism"]
    assert f"bound {xavier_bound(16, 4 * 16):.3f}" in text and f"would get {xavier_bound(16, 16):.3f}" in text
    for arm in ("torch", "xavier_normal_embed"):  # PyTorch's embedding, N(0, 1): 29 × 16 draws
        assert 0.9 < mech["arms"][arm]["embed_std"] < 1.1
    assert mech["arms"]["xavier"]["embed_std"] < 0.3 and mech["arms"]["zeros"]["embed_std"] == 0.0
    second = text.split("## Seeds, and the arms that change one tensor", 1)[1]
    for arm in ("torch", "xavier", "uniform1e-4", "xavier_normal_embed", "torch_xavier_embed"):
        bests = [runs[arm, "adam", False, s]["best"]["dev_ppl"] for s in (0, 1, 2)]
        assert f"| {label(arm)} | " + " | ".join(f"{v:.2f}" for v in bests) + " | " in second
    assert "- Changing only the embedding's init, Xavier → Xavier, embedding N(0,1):" in second
    from tangshi.experiments.report import fmt_summary, summary

    xavier = summary([runs["xavier", "adam", False, s]["best"]["dev_ppl"] for s in (0, 1, 2)])
    assert f"Xavier {fmt_summary(xavier)} (3 seeds)" in bottom
    # --partial trains nothing and says which runs are missing
    (tmp_path / "work" / "xavier-adam-relu-e1.json").unlink()
    assert _study_cli("init", tiny_prepared, tmp_path / "part", tmp_path / "work", "--partial") == 0
    part = (tmp_path / "part" / "init.md").read_text(encoding="utf-8")
    assert "**Incomplete** (`--partial`): 23 of 24 runs are finished; still to train: xavier-adam-relu-e1." in part
    assert not (tmp_path / "work" / "xavier-adam-relu-e1.json").exists()
    # a study moved to another work folder takes its runs from its report's JSON instead of training them,
    # except a run the report holds with other settings (here one whose learning rate was changed)
    report = json.loads((out / "init.json").read_text(encoding="utf-8"))
    report["runs"]["torch-adam-e2-s1"]["spec"]["train"]["lr"] = 0.5
    (tmp_path / "old.json").write_text(json.dumps(report), encoding="utf-8")
    capsys.readouterr()
    assert (
        _study_cli("init", tiny_prepared, tmp_path / "moved", tmp_path / "w2", "--adopt", str(tmp_path / "old.json"))
        == 0
    )
    said = capsys.readouterr().out
    assert "took 23 run(s) from" in said and "training 1 run(s)" in said and "torch-adam-e2-s1:" in said
    moved = json.loads((tmp_path / "moved" / "init.json").read_text(encoding="utf-8"))
    assert moved["runs"]["xavier-adam-e2"]["history"] == doc["runs"]["xavier-adam-e2"]["history"]
    assert moved["runs"]["torch-adam-e2-s1"]["spec"]["train"]["lr"] == 0.01  # trained again, as the plan asks
    assert "23 taken from " in moved["header"]["trained"] and "1 at commit" in moved["header"]["trained"]
    main_table = text.split("## Verdicts", 1)[0].split("Distinct units", 1)[1]
    assert (
        main_table
        == (tmp_path / "moved" / "init.md")
        .read_text(encoding="utf-8")
        .split("## Verdicts", 1)[0]
        .split("Distinct units", 1)[1]
    )


def test_replot_errors_are_one_line(tmp_path, capsys):
    assert main(["experiment", "init", "--replot", "--out", str(tmp_path)]) == 2
    assert "init.json does not exist" in capsys.readouterr().err
    (tmp_path / "init.json").write_text("{not json", encoding="utf-8")
    assert main(["experiment", "init", "--replot", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot be read" in err


def test_distinct_units_counts_groups():
    m = PoetryLM(ModelConfig(vocab_size=11, pad_id=10, embed_dim=4, hidden_dim=6, init="zeros"))
    assert distinct_units(m.canonical_state_dict(), 6) == 1
    with torch.no_grad():
        m.lstm[0].bias[2] = 1e-3  # the input-gate bias of unit 2: only unit 2 now differs
    assert distinct_units(m.canonical_state_dict(), 6) == 2


def test_adagrad_step_falls_monotonically():
    """On a fixed batch, lr/(√G+ε) never rises: G only accumulates squared gradients."""
    torch.manual_seed(0)
    m = PoetryLM(ModelConfig(vocab_size=11, pad_id=10, embed_dim=8, hidden_dim=8))
    opt = torch.optim.Adagrad(m.parameters(), lr=0.05)
    x = torch.randint(0, 10, (4, 7))
    y = torch.randint(0, 10, (4, 7))
    steps = []
    for _ in range(15):
        _, loss = m(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        G = torch.cat([opt.state[p]["sum"].flatten() for p in m.parameters()])
        steps.append(float((0.05 / (G.sqrt() + 1e-10)).median()))
    assert all(b <= a for a, b in zip(steps, steps[1:]))
    assert steps[-1] < steps[0]


@pytest.mark.parametrize("which", ["optimizers", "init"])
def test_missing_data_is_one_line_and_creates_nothing(tmp_path, capsys, which):
    out = tmp_path / "reports"
    assert (
        main(
            [
                "experiment",
                which,
                "--quick",
                "--data",
                str(tmp_path / "nope"),
                "--out",
                str(out),
                "--work",
                str(tmp_path / "w"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope" in err and not out.exists() and not (tmp_path / "w").exists()


def test_backprop_experiment_separates_correct_bptt_from_the_missing_cell_path(tmp_path, capsys):
    """Recall 8 steps back, one-hot inputs: correct BPTT leaves chance; without the cell-state path it stays there
    (this seed, 300 steps); the quick command writes one run per gradient, seed and lag, and the table is theirs."""
    task = Task(steps=300)
    chance = math.log(task.alphabet)
    good, bad = train_variant(task, None), train_variant(task, "no_cell_state_path")
    assert good["final_dev"] < chance - 0.2
    assert bad["final_dev"] > chance - 0.05
    assert main(["experiment", "backprop", "--quick", "--out", str(tmp_path / "r")]) == 0
    report = (tmp_path / "r" / "backprop.md").read_text(encoding="utf-8")
    doc = json.loads((tmp_path / "r" / "backprop.json").read_text(encoding="utf-8"))
    runs = doc["runs"]
    errors = [None, "no_cell_state_path", "input_weights_last_step_only", "bias_i_o_set_to_delta_f"]
    assert [(r["lag"], r["seed"], r["error"]) for r in runs] == [
        (lag, seed, e) for lag in (3, 8) for seed in (0, 1) for e in errors
    ]
    assert all(f"{r['final_dev']:.3f}" in report for r in runs)  # the tables are the runs' numbers
    assert len(doc["verdicts"]) == 2 * 4 and "**Bottom line.**" in report
    bottom = report.split("**Bottom line.**", 1)[1].split("\n", 1)[0]
    assert len(_sentences(bottom)) == 3 and all(f"lag {lag}" in bottom for lag in (3, 8)), bottom
    assert (tmp_path / "r" / "backprop_curves.png").stat().st_size > 10_000
    before = report[report.index("- seeds:") :]
    assert main(["experiment", "backprop", "--replot", "--out", str(tmp_path / "r")]) == 0
    again = (tmp_path / "r" / "backprop.md").read_text(encoding="utf-8")
    assert "rendered again from the JSON" in again and again.endswith(before)


def test_backprop_embedding_is_a_frozen_identity():
    """One-hot inputs: x_t is id_t's unit vector, and training never moves it."""
    task = Task(steps=3)
    params = one_hot_params(task)
    assert np.array_equal(params["embedding.weight"], np.eye(task.alphabet + 1))
    run = train_variant(task, "input_weights_last_step_only")  # asserts the embedding did not move
    assert len(run["curve"]) == 2 and run["curve"][-1][0] == 3


def _bp_run(error, seed, devs, lag=8, every=500):
    """A hand-made record: dev loss `devs[i]` at step (i + 1) * every."""
    return {
        "error": error,
        "lag": lag,
        "seed": seed,
        "curve": [((i + 1) * every, 0.0, d) for i, d in enumerate(devs)],
        "final_dev": devs[-1],
    }


def test_backprop_verdict_at_chance_only_when_every_seed_is():
    chance = math.log(11)  # 2.398
    runs = [_bp_run(None, s, [2.0, 1.7]) for s in (0, 1, 2)]
    runs += [_bp_run("no_cell_state_path", s, [2.39, d]) for s, d in ((0, 2.395), (1, 2.38), (2, 2.40))]
    v = verdict(runs, 8, "no_cell_state_path", chance, 1000)
    assert v["kind"] == "at chance" and v["seeds"] == [0, 1, 2]
    assert v["text"].startswith("lag 8, seeds 0, 1, 2, 1000 steps: stays at chance on every seed: 2.395/2.380/2.400")
    runs[3] = _bp_run("no_cell_state_path", 0, [2.39, 1.69])  # seed 0 escapes: no longer "at chance"
    v = verdict(runs, 8, "no_cell_state_path", chance, 1000)
    assert v["kind"] == "seed-dependent"
    assert [o["kind"] for o in v["outcomes"]] == ["matches", "at chance", "at chance"]
    assert "seed 0 1.690 (correct 1.700" in v["text"] and "seed 1 2.380 (correct 1.700): stays at chance" in v["text"]


def test_backprop_verdict_delay_below_and_the_reference():
    chance = math.log(11)
    runs = [_bp_run(None, s, [1.8, 1.72, 1.72, 1.72]) for s in (0, 1, 2)]
    runs += [_bp_run("input_weights_last_step_only", s, [2.3, 2.0, 1.9, 1.73]) for s in (0, 1, 2)]
    runs += [_bp_run("bias_i_o_set_to_delta_f", s, [1.8, 1.7, 1.68, 1.66]) for s in (0, 1, 2)]
    late = verdict(runs, 8, "input_weights_last_step_only", chance, 2000)
    assert (
        late["kind"] == "delayed"
        and "reached at steps 2000/2000/2000 against correct BPTT's 1000/1000/1000" in (late["text"])
    )
    low = verdict(runs, 8, "bias_i_o_set_to_delta_f", chance, 2000)
    assert low["kind"] == "below" and "1.660/1.660/1.660 against correct BPTT's 1.720/1.720/1.720" in low["text"]
    assert "Why is not known" in low["text"]
    ref = verdict(runs, 8, None, chance, 2000)
    assert ref["kind"] == "reference" and "ends at 1.720/1.720/1.720 nats where perfect recall is 0" in ref["text"]
    assert reach_step(runs[3], 1.75) == 2000 and reach_step(runs[3], 1.0) is None
    assert still_falling(runs[3]) == pytest.approx(1.9 - 1.73) and still_falling(runs[0]) is None
    assert "still falling at the last step (nats over the last 500 steps) on seed 0 (−0.170)" in late["text"]


def test_a_work_folder_holding_other_files_is_refused(tmp_path, tiny_prepared, capsys):
    work = tmp_path / "mine"
    work.mkdir()
    (work / "notes.txt").write_text("mine", encoding="utf-8")
    assert _study_cli("init", tiny_prepared, tmp_path / "out", work) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did not write ('notes.txt')" in err
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"] and not (tmp_path / "out").exists()


def _final(opt, wd, seeds):
    from tangshi.experiments.report import summary

    return {"optimizer": opt, "wd": wd, "best": summary(seeds), "runs": [f"final-{opt}-wd{wd}-s0"]}


def test_optimizer_verdicts_follow_the_numbers():
    """The verdicts' words come from the seeds' numbers: who wins, whether every seed agrees, and
    what coupled weight decay costs (hand-made seeds; no update probes, so verdict 1 is 'not measured')."""
    from tangshi.experiments.optimizers import verdicts

    finals = [
        _final("adam", 1e-4, [200.0, 202.0, 204.0]),
        _final("adagrad", 1e-4, [230.0, 231.0, 240.0]),
        _final("adamw", 1e-4, [190.0, 195.0, 199.0]),
        _final("adam", 0.0, [191.0, 194.0, 198.0]),
        _final("adagrad", 0.0, [232.0, 235.0, 236.0]),
    ]
    doc = {
        "budget": {"epochs": 20, "sweep_epochs": 5},
        "runs": {r["runs"][0]: {"probes": {}, "diverged": False, "history": []} for r in finals},
    }
    text = "\n".join(verdicts(doc, finals))
    assert '1. *"Adagrad\'s learning rate decays towards zero."* — **not measured**' in text
    assert "**confirmed for the Adam family (as AdamW)** at a constant rate for 20 epochs on this model, " in text
    assert "then adam 202.00, adagrad 233.67" in text
    assert "every seed of the winner beats every seed of the others" in text
    assert "Adam beats Adagrad by 31.67 points (on every seed)" in text
    assert "adam: wd 1e-4 202.00 vs wd 0 194.33 (costs 7.67 points, on every seed)" in text
    assert "adagrad: wd 1e-4 233.67 vs wd 0 234.33 (gains 0.67 points, within the seeds' spread)" in text
    assert "the seeds' ranges overlap, so AdamW's lead over Adam is the cost of coupled L2" in text
    # Adagrad best, ranges overlapping Adam's: refuted, and not on every seed
    finals = [_final("adam", 1e-4, [200.0, 210.0, 220.0]), _final("adagrad", 1e-4, [195.0, 205.0, 206.0])]
    text = "\n".join(
        verdicts(
            doc | {"runs": {r["runs"][0]: {"probes": {}, "diverged": False, "history": []} for r in finals}}, finals
        )
    )
    assert "**refuted** at a constant rate for 20 epochs on this model, each rate chosen by a 5-epoch sweep" in text
    assert "the seeds' ranges overlap: adam" in text
    assert "Adagrad beats Adam by 8.00 points (not on every seed)" in text
    assert "3. *What coupled weight decay costs.* — **not measured**" in text
    # one optimiser only: the comparison is not measured
    assert '2. *"Adam might be the best overall choice."* — **not measured**' in "\n".join(verdicts(doc, finals[:1]))


def test_trained_line_names_each_commit_and_the_unrecorded(tmp_path):
    """A study continued across commits says which code trained how many runs, and when; a record
    written before records kept their commit is dated by its file and named as such."""
    from tangshi.experiments.report import trained_line

    stamps = [
        {"commit": "abc1234", "finished": "2026-12-01 10:00 UTC"},
        {"commit": "abc1234", "finished": "2026-12-01 11:00 UTC"},
        {"commit": None, "finished": "2026-11-30 09:00 UTC"},
    ]
    assert trained_line(stamps) == (
        "1 by a commit their records do not name (written before records kept it), finished 2026-11-30 09:00 UTC; "
        "2 at commit `abc1234`, finished 2026-12-01 10:00 UTC – 2026-12-01 11:00 UTC"
    )
    # runs taken from an earlier report keep the commits that trained them, where their records name one
    old = {"adopted_from": "reports/x.json (written …)", "finished": "2026-12-01 10:00 UTC"}
    taken = [{**old, "commit": "def5678"}, {**old, "commit": "abc1234"}, {**old, "commit": "abc1234"}, old]
    assert trained_line(taken) == "4 taken from reports/x.json (written …) (trained at commits `abc1234`, `def5678`)"
    assert trained_line([old]) == "1 taken from reports/x.json (written …)"
    (tmp_path / "old-run.json").write_text("{}", encoding="utf-8")
    os.utime(tmp_path / "old-run.json", (1796000000, 1796000000))  # 2026-11-30 00:53 UTC
    study = Study(tmp_path, tmp_path, commit="def5678")
    assert study.trained("old-run") == {"commit": None, "finished": "2026-11-30 00:53 UTC"}
    study.results["new-run"] = {"trained": {"commit": "def5678", "finished": "2026-12-01 19:00 UTC"}}
    assert study.trained("new-run")["commit"] == "def5678"


def test_row_probe_adagrad_moves_only_the_rows_of_characters_present(tmp_path, tiny_prepared):
    """The mechanism the optimiser study names: without weight decay Adagrad changes an embedding row
    only in a step where its character occurs (a zero gradient adds nothing to its accumulator and
    takes no step), while Adam keeps moving rows whose characters are absent (its first moment
    decays over about 1/(1 − β1) = 10 steps). One epoch of each on the tiny corpus."""
    from tangshi.experiments.study import ROW_BUCKETS, frequency_buckets, train_run

    buckets = frequency_buckets(tiny_prepared)
    assert buckets.min() == 0 and set(buckets.tolist()) <= set(range(len(ROW_BUCKETS)))
    rows = {}
    for opt, lr in (("adagrad", 3e-2), ("adam", 1e-2)):
        # one poem a step: most characters are absent from most steps
        train = dict(epochs=1, optimizer=opt, lr=lr, weight_decay=0.0, seed=0, batch_size=1, amp=False)
        spec = RunSpec(f"rows-{opt}", dict(embed_dim=8, hidden_dim=8), train, ("rows",))
        rec = train_run(spec.as_json(), str(tmp_path / "work"), str(tiny_prepared), quiet=True)
        ((_, probe),) = [(k, v) for k, v in rec["probes"].items() if "rows" in v]
        rows[opt] = probe["rows"]
    # the tiny corpus's 29 characters all rank in the top 50; the specials, never a target, are "rarer"
    assert all(rows["adagrad"][b]["absent"] == 0.0 for b in ROW_BUCKETS)  # exactly: no gradient, no step
    top, adam = rows["adagrad"]["top 50"], rows["adam"]["top 50"]
    assert top["present_rows"] > 0 and top["present"] > 0
    assert adam["absent"] > 0.3 * adam["present"]  # Adam's momentum keeps moving the rows of absent characters
    # every row of a bucket is counted once a step, present or absent: the same number of steps in each bucket
    sizes = {b: int((buckets == k).sum()) for k, b in enumerate(ROW_BUCKETS)}
    steps = {(b, v["present_rows"] + v["absent_rows"]) for b, v in rows["adam"].items() if sizes[b]}
    assert {b for b, _ in steps} == {"top 50", "rarer"}  # the tiny corpus fills these two
    assert len({n // sizes[b] for b, n in steps}) == 1 and all(n % sizes[b] == 0 for b, n in steps)


def test_step0_pre_activations_follow_the_variance_argument(tiny_prepared):
    """U(±a) has variance a²/3; Xavier's a on the stacked (D, 4H) weight_ih gives Var W = 2/(D + 4H),
    so at t = 1 (h_0 = 0, zero biases) z = x W has variance E‖x‖² · Var W over the units: the
    measured spread matches the formula (to sampling error), and zeros give no spread at all."""
    from tangshi.experiments.init_mechanism import measure, step0, summarise, xavier_bound
    from tangshi.model.lm import ModelConfig, PoetryLM

    D = H = 64
    assert xavier_bound(256, 4 * 256) == pytest.approx(0.0685, abs=1e-4)  # the stacked matrix
    assert xavier_bound(256, 256) == pytest.approx(0.1083, abs=1e-4)  # one gate's
    torch.manual_seed(0)
    model = PoetryLM(ModelConfig(vocab_size=40, pad_id=0, embed_dim=D, hidden_dim=H, init="xavier"))
    ids = torch.randint(4, 40, (64, 5))
    run = step0(model, ids)
    z1 = run["z"][:, 0]  # (B, 4H) at t = 1
    x1 = run["x"][:, 0]  # (B, D)
    var_w = xavier_bound(D, 4 * H) ** 2 / 3
    predicted = float((x1.pow(2).sum(dim=1).mean() * var_w).sqrt())
    assert float(z1.std()) == pytest.approx(predicted, rel=0.1)
    zero = summarise(
        step0(PoetryLM(ModelConfig(vocab_size=40, pad_id=0, embed_dim=D, hidden_dim=H, init="zeros")), ids)
    )
    assert all(g["std"] == 0.0 and g["saturated"] == 0.0 for g in zero["gates"].values()) and max(zero["h_var"]) == 0.0
    got = measure(tiny_prepared, schemes=("xavier", "torch", "uniform1e-4"), batch=8)
    # the PyTorch default's N(0, 1) embedding feeds gates about 5× Xavier's spread; U(±1e-4) almost none
    assert got["torch"]["gates"]["f"]["std"] > 3 * got["xavier"]["gates"]["f"]["std"]
    assert got["uniform1e-4"]["gates"]["f"]["std"] < 1e-3 < got["xavier"]["gates"]["f"]["std"]


def test_thin_keeps_every_epochs_row_record():
    from tangshi.experiments.report import thin

    points = {"5": {"x": 1}, "105": {"rows": {}}, "106": {"x": 2}, "110": {"x": 3}}
    assert list(thin(points)) == ["5", "105", "110"]


def test_adopt_takes_only_what_the_folder_lacks_from_a_report_of_the_same_data(tmp_path, tiny_prepared, capsys):
    """A record the work folder holds is kept as it is; a run the report holds with other settings is
    left out; a report of other data is refused in one line; a run adopted twice keeps its first source."""
    from tangshi.experiments.report import adopt_report, data_meta
    from tangshi.experiments.study import Study

    spec_a = _tiny_spec()
    spec_b = RunSpec("s", dict(embed_dim=8, hidden_dim=8, init="xavier"), dict(epochs=1, batch_size=16, amp=False), ())
    spec_c = RunSpec("t", dict(embed_dim=8, hidden_dim=8, init="xavier"), dict(epochs=1, batch_size=16, amp=False), ())
    fake = {"history": [{"epoch": 1, "dev_ppl": 9.0}], "diverged": False, "best": {"epoch": 1, "dev_ppl": 9.0}}
    other_c = {**spec_c.as_json(), "train": {**spec_c.as_json()["train"], "epochs": 2}}
    report = {
        "format": "f",
        "header": {"date": "2026-01-01 00:00 UTC", "hardware": "elsewhere"},
        "data_meta": data_meta(tiny_prepared),
        "runs": {
            "r": {**fake, "spec": spec_a.as_json()},
            "s": {**fake, "spec": spec_b.as_json(), "trained": {"adopted_from": "the first report"}},
            "t": {**fake, "spec": other_c},
        },
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(report), encoding="utf-8")
    with Study(tmp_path / "w", tiny_prepared, log=print) as study:
        study.run([spec_a])  # trained here: its record must stay
        mine = json.loads((tmp_path / "w" / "r.json").read_text(encoding="utf-8"))
        adopt_report(study, path, "f", lambda: [spec_a, spec_b, spec_c])
    assert json.loads((tmp_path / "w" / "r.json").read_text(encoding="utf-8")) == mine
    taken = json.loads((tmp_path / "w" / "s.json").read_text(encoding="utf-8"))
    assert taken["history"] == fake["history"] and taken["trained"]["adopted_from"] == "the first report"
    assert not (tmp_path / "w" / "t.json").exists()  # other settings: to be trained, not taken
    assert "took 1 run(s) from" in capsys.readouterr().out
    report["data_meta"] = "8000 train / 2000 dev poems, vocabulary 5359, sample 10000, seed 0"
    path.write_text(json.dumps(report), encoding="utf-8")
    with Study(tmp_path / "w2", tiny_prepared) as study, pytest.raises(TangshiError, match="other data"):
        adopt_report(study, path, "f", lambda: [spec_a])
    assert not (tmp_path / "w2" / "r.json").exists()
    assert main(["experiment", "init", "--quick", "--adopt", str(path), "--partial", "--data", str(tiny_prepared)]) == 2


def _fake_run(name, model, train, best, diverged=False):
    hist = [{"epoch": 1, "dev_ppl": best}]
    return name, {
        "spec": {"name": name, "model": model, "train": train, "probes": []},
        "history": hist,
        "diverged": diverged,
        "best": None if diverged else hist[0],
    }


def test_second_part_verdicts_claim_no_more_than_their_runs():
    """One seed each ranks nothing; a diverged optimiser is said to diverge and compared with nothing;
    one rate run is not a bracket."""
    from tangshi.experiments import init_extended, optimizer_extended

    adam = dict(optimizer="adam", epochs=2, seed=0)
    runs = dict(
        _fake_run(f"{a}-adam-e2", {"init": a, "relu_logits": False}, adam, p)
        for a, p in (("torch", 150.0), ("xavier", 170.0))
    )
    arms = init_extended.seeded({"runs": runs, "budget": {"epochs": 2}}, 2)
    said = " ".join(init_extended.verdicts(arms))
    assert "a direction, not a verdict" in said and "every seed" not in said
    assert init_extended.bottom({"runs": runs, "budget": {"epochs": 2}}) == ""  # the one-seed caveat stays

    doc = {
        "budget": {"epochs": 2},
        "runs": dict(
            [
                _fake_run(
                    "fine-adagrad-lr0.03-wd0-e2-s0",
                    {},
                    dict(optimizer="adagrad", lr=0.03, epochs=2),
                    0.0,
                    diverged=True,
                ),
                _fake_run("fine-adam-lr0.01-wd0-e2-s0", {}, dict(optimizer="adam", lr=0.01, epochs=2), 150.0),
            ]
        ),
    }
    said = " ".join(optimizer_extended.verdicts(doc))
    assert "adagrad, constant rate: diverged at every rate run (0.03)" in said
    assert "adam, constant rate (seed 0, 2 epochs, weight decay 0): best at lr 0.01, 150.00 (the one rate run: " in said
    assert "Adagrad's best" not in said and "nan" not in said and "inf" not in said
    assert "adagrad constant diverged at every rate run" in optimizer_extended.bottom(doc)


def test_a_fine_cell_is_taken_from_the_first_parts_run_of_the_same_settings_only():
    """A final run trained with the fine grid's settings fills its cell (marked †); one with another weight
    decay does not; where both parts trained the same settings, the repeat's gap is computed, not filled."""
    from tangshi.experiments import optimizer_extended as ox

    same = dict(epochs=2, weight_decay=0.0, seed=0, batch_size=4)
    doc = {
        "budget": {"epochs": 2},
        "runs": dict(
            [
                _fake_run("fine-adam-lr0.003-wd0-e2-s0", {}, dict(same, optimizer="adam", lr=0.003), 180.0),
                _fake_run("fine-adagrad-lr0.03-wd0-e2-s0", {}, dict(same, optimizer="adagrad", lr=0.03), 170.0),
                _fake_run("final-adam-lr0.01-wd0-e2-s0", {}, dict(same, optimizer="adam", lr=0.01), 190.0),
                _fake_run("final-adagrad-lr0.03-wd0-e2-s0", {}, dict(same, optimizer="adagrad", lr=0.03), 168.0),
                _fake_run(
                    "final-adam-lr0.02-wd0.0001-e2-s0",
                    {},
                    dict(same, optimizer="adam", lr=0.02, weight_decay=1e-4),
                    100.0,
                ),
            ]
        ),
    }
    table = ox.by_rate(doc)
    assert sorted(table[("adam", "constant")]) == [0.003, 0.01]  # 0.02 had weight decay 1e-4: not this grid
    assert table[("adagrad", "constant")][0.03]["spec"]["name"].startswith("fine-")  # its own run is kept
    assert ox._cell(table[("adam", "constant")][0.01]).endswith("†")
    said = " ".join(ox._repeats(doc))
    assert "adagrad lr 0.03: 170.00 here, 168.00 in the first part, 1.2% apart" in said  # |170 − 168| / 168
    said = " ".join(ox.verdicts(doc))
    assert "adam, constant rate (seed 0, 2 epochs, weight decay 0): best at lr 0.003, 180.00 (at the edge of" in said


def test_the_plan_leaves_out_a_fine_run_a_final_run_already_trained_unless_recorded():
    from tangshi.experiments import optimizers as ox

    b = ox.QUICK
    final = ox._spec("final", "adam", 1e-2, 0.0, b.epochs, 0, b, "torch", probes=("updates",))
    other = ox._spec("final", "adam", 1e-2, 1e-4, b.epochs, 0, b, "torch")
    ext = ox.extended_specs(b)
    fine = next(s for s in ext if s.name == f"fine-adam-lr0.01-wd0-e{b.epochs}-s0")

    class Records:
        def __init__(self, names):
            self.names = names

        def recorded(self, spec):
            return {} if spec.name in self.names else None

    kept = ox._not_repeats(Records(set()), [final, other], ext)
    assert fine not in kept and len(kept) == len(ext) - 1  # only the run of the same settings goes
    assert fine in ox._not_repeats(Records({fine.name}), [final], ext)  # trained already: kept, reported
    assert ox._not_repeats(Records(set()), [other], ext) == ext  # weight decay 1e-4: other settings


def test_verdict_3_says_whether_seed_0s_order_holds_on_every_seed():
    from tangshi.experiments import init_extended

    def runs(ppl):  # {(arm, seed): best dev ppl}
        return {
            f"{a}-{s}": _fake_run(
                f"{a}-{s}", {"init": a, "relu_logits": False}, dict(optimizer="adam", epochs=2, seed=s), p
            )[1]
            for (a, s), p in ppl.items()
        }

    doc = {"budget": {"epochs": 2}}
    one = {("torch", 0): 150.0, ("xavier", 0): 170.0, ("torch", 1): 151.0}
    assert init_extended.seed_order({**doc, "runs": runs(one)}) == ""  # xavier has one seed: nothing to say
    same = {**one, ("xavier", 1): 171.0, ("torch", 2): 149.0, ("xavier", 2): 165.0}
    assert init_extended.seed_order({**doc, "runs": runs(same)}) == " The same order on each of seeds 0, 1, 2."
    flip = {**same, ("xavier", 2): 140.0}
    said = init_extended.seed_order({**doc, "runs": runs(flip)})
    assert "seed 2: Xavier 140.00 < PyTorch default 149.00" in said and "seed 0 only" in said and "seed 1:" not in said


def test_the_embedding_share_of_pytorchs_lead_is_computed_from_both_swaps():
    from tangshi.experiments import init_extended

    ppl = {"torch": (150.0, 152.0), "xavier": (190.0, 192.0), "xavier_normal_embed": (154.0, 156.0)}
    ppl["torch_xavier_embed"] = (180.0,)
    runs = {
        f"{a}-{seed}": _fake_run(
            f"{a}-{seed}", {"init": a, "relu_logits": False}, dict(optimizer="adam", epochs=2, seed=seed), p
        )[1]
        for a, ps in ppl.items()
        for seed, p in enumerate(ps)
    }
    said = " ".join(init_extended.verdicts(init_extended.seeded({"runs": runs, "budget": {"epochs": 2}}, 2)))
    # gap 191 − 151 = 40; (191 − 155) / 40 = 90%; (180 − 151) / 40 = 72.5% → 72%
    assert "PyTorch's lead over Xavier (40.00 points)" in said and "closes 90% of it (155.00)" in said
    assert "gives back 72% of it (180.00)" in said and "1 seed on the arm with fewest" in said
    assert "behind PyTorch's default on every seed (one seed: a direction)." in said  # 154 > 152
    doc = {"runs": runs, "budget": {"epochs": 2}}
    assert "Swapping only the embedding's init moves Xavier 90% and PyTorch's default 72%" in init_extended.bottom(doc)
    assert "(one seed on the arm with fewest: a direction)" in init_extended.bottom(doc)
    seed1 = _fake_run(
        "tx-1", {"init": "torch_xavier_embed", "relu_logits": False}, dict(optimizer="adam", epochs=2, seed=1), 182.0
    )
    said = init_extended.bottom({**doc, "runs": {**runs, "tx-1": seed1[1]}})  # (181 − 151) / 40 = 75%
    assert (
        "carries most of PyTorch's lead over Xavier: swapping only it moves Xavier 90% and PyTorch's default 75%"
        in said
    )
    assert "(2 seeds on the arm with fewest)" in said


def test_the_assignments_reason_is_tested_against_saturation_and_the_step0_scale():
    """Hand-made: three arms whose step-0 scale is 1 > 0.1 > 0.01. The first is ahead of the second on
    every seed (with the scale), the third ahead of the second on every seed (against it), the first
    and the third overlap (not separated): 1 with, 1 against, 1 level; saturation is the maximum share."""
    from tangshi.experiments import init_extended

    def gates(std, sat=0.0):
        return {"gates": {k: {"std": std, "saturated": sat} for k in ("i", "f", "c", "o")}}

    m = {"arms": {"torch": gates(1.0, 0.004), "xavier": gates(0.1), "uniform1e-4": gates(0.01)}}
    ppl = {"torch": (150.0, 160.0), "xavier": (170.0, 172.0), "uniform1e-4": (155.0, 165.0)}
    runs = dict(
        _fake_run(f"{a}-{s}", {"init": a, "relu_logits": False}, dict(optimizer="adam", epochs=2, seed=s), p)
        for a, ps in ppl.items()
        for s, p in enumerate(ps)
    )
    arms = init_extended.seeded({"runs": runs, "budget": {"epochs": 2}}, 2)
    said = init_extended.reason_tested(m, arms, 2)
    assert "saturates more than 0.4% of any gate's pre-activations" in said and "does not separate" in said
    assert "PyTorch default 1, 155.00; Xavier 0.1, 171.00; U(±1e-4) 0.01, 160.00" in said
    assert "Of the 3 pairs, 1 go with the scale" in said
    assert "1 against it on every seed (U(±1e-4) ahead of Xavier) and 1 is not separated" in said
    one_seed = {a: recs[:1] for a, recs in arms.items()}  # one seed each: no ordering is claimed
    assert "pairs" not in init_extended.reason_tested(m, one_seed, 2)
    m["arms"]["xavier"] = gates(0.1, 0.2)
    assert "more than 20.0%" in init_extended.reason_tested(m, arms, 2)
    assert "does not separate" not in init_extended.reason_tested(m, arms, 2)
