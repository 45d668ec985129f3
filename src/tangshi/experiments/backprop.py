"""`tangshi experiment backprop`: the assignment's three gradient errors, shown in training.

A memory task: each sequence is T symbols drawn uniformly from an alphabet of A; the target at
position t is the symbol seen K steps earlier (no target for the first K positions). A model that
remembers nothing scores ln A nats (chance); one that carries the symbol through K steps of its
cell state scores less. The same small LSTM (the NumPy twin, 1 layer) is trained from the same
weights on the same batches four times: with correct BPTT, and with each of the assignment's errors
(gradient_errors.assignment_gradients): no cell-state path; input-weight gradient from the last step only;
b_i and b_o given b_f's gradient. The report's table and verdict are computed from the runs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from tangshi.experiments.report import _header
from tangshi.lesson import numpy_lstm as nl
from tangshi.lesson import numpy_optim as nopt
from tangshi.lesson.gradient_errors import ASSIGNMENT_ERRORS, assignment_gradients
from tangshi.lesson.small_problem import SmallConfig
from tangshi.outputs import OutputFolder

PAD = 0
NAMES = {"md": "backprop.md", "json": "backprop.json", "curves": "backprop_curves.png"}
LABELS = {
    None: "correct BPTT",
    "no_cell_state_path": "no cell-state path (δC_t ⊙ f_t dropped)",
    "input_weights_last_step_only": "input weights from the last step only",
    "bias_i_o_set_to_delta_f": "b_i, b_o given b_f's gradient",
}


@dataclass(frozen=True)
class Task:
    alphabet: int = 11  # A: chance is ln A nats
    length: int = 20  # T
    lag: int = 8  # K: recall the symbol K steps back (at 3 every variant learns it: the h path alone suffices)
    hidden: int = 16
    batch: int = 32
    steps: int = 600
    lr: float = 1e-2
    seed: int = 0

    @property
    def config(self):
        return nl_config(self.alphabet + 1, self.hidden)


def nl_config(V: int, H: int):
    return SmallConfig(vocab_size=V, embed_dim=H, hidden_dim=H, num_layers=1)


def batch(task: Task, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.integers(1, task.alphabet + 1, size=(task.batch, task.length))
    y = np.full_like(x, PAD)
    y[:, task.lag :] = x[:, : -task.lag]  # the symbol K steps back
    return x, y


def train_variant(task: Task, error: str | None) -> dict:
    """Train from the task's seeded weights with one gradient (correct or an error); the same batches."""
    cfg = task.config
    params = nl.init_params(cfg, rng=task.seed, dtype=np.float64)
    opt = nopt.Adam(params, lr=task.lr)
    rng = np.random.default_rng(task.seed + 1)
    dev = batch(Task(**{**task.__dict__, "batch": 512}), np.random.default_rng(10_000 + task.seed))
    curve = []
    for step in range(1, task.steps + 1):
        x, y = batch(task, rng)
        loss, grads = assignment_gradients(params, cfg, x, y, error, pad_id=PAD)
        opt.step(grads)
        if step % 50 == 0 or step == 1:
            curve.append((step, float(loss), float(nl.forward(params, cfg, dev[0], dev[1], PAD)[0])))
    return {"error": error, "label": LABELS[error], "curve": curve, "first_dev": curve[0][2], "final_dev": curve[-1][2]}


def run_backprop(out, task: Task = Task(), argv=None, replace: bool = False, log=print) -> dict:
    with OutputFolder(out, "reports", replace=replace, names=list(NAMES.values())) as folder:
        runs = []
        for error in (None, *ASSIGNMENT_ERRORS):
            runs.append(train_variant(task, error))
            log(f"{LABELS[error]}: dev loss {runs[-1]['first_dev']:.3f} -> {runs[-1]['final_dev']:.3f} nats")
        chance = math.log(task.alphabet)
        report = _header("The assignment's gradient errors, in training", argv) + _report(runs, task, chance)
        with folder.staged() as stage:
            _plot(runs, stage / NAMES["curves"], chance, task)
            (stage / NAMES["md"]).write_text(report, encoding="utf-8")
            (stage / NAMES["json"]).write_text(
                json.dumps({"task": task.__dict__, "chance": chance, "runs": runs}, indent=1), encoding="utf-8"
            )
    return {"runs": runs, "chance": chance, "report": str(folder.path / NAMES["md"])}


def _verdict(run: dict, correct: dict, chance: float) -> str:
    learned = correct["final_dev"] - chance  # negative: below chance
    if run["error"] is None:
        return "learns the task" if learned < -0.1 else "does not learn the task at this budget"
    gap = run["final_dev"] - correct["final_dev"]
    if run["final_dev"] > chance - 0.1:
        return f"stays at chance (≥ ln A − 0.1); {gap:+.3f} nats against correct BPTT"
    share = (run["final_dev"] - chance) / learned if learned else float("nan")
    return f"learns {share:.0%} as much as correct BPTT below chance ({gap:+.3f} nats)"


def _report(runs: list[dict], task: Task, chance: float) -> str:
    correct = runs[0]
    rows = "\n".join(
        f"| {r['label']} | {r['first_dev']:.3f} | {r['final_dev']:.3f} | {_verdict(r, correct, chance)} |" for r in runs
    )
    training = f"Adam lr {task.lr}, batch {task.batch}, {task.steps} steps"
    return f"""
Task: sequences of {task.length} symbols from an alphabet of {task.alphabet}; the target at position
t is the symbol seen {task.lag} steps earlier. Chance is ln {task.alphabet} = {chance:.3f} nats. Model: the NumPy twin,
1 layer, E = H = {task.hidden}, Xavier init (seed {task.seed}); {training};
every run starts from the same weights and sees the same batches. Dev loss: 512 fixed sequences.

| gradient | dev loss at step 1 | dev loss at step {task.steps} | verdict (computed) |
|---|---|---|---|
{rows}

![dev loss of each gradient over steps]({NAMES["curves"]})
"""


def _plot(runs: list[dict], path, chance: float, task: Task) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r, style in zip(runs, ("-", "--", "-.", ":")):
        steps, _, dev = zip(*r["curve"])
        ax.plot(steps, dev, style, linewidth=2, label=r["label"])
    ax.axhline(chance, color="grey", linewidth=1)
    ax.annotate(
        f"chance, ln {task.alphabet}", (task.steps, chance), textcoords="offset points", xytext=(-80, 4), color="grey"
    )
    ax.set_xlabel("step")
    ax.set_ylabel("dev loss (nats)")
    ax.set_title(f"recall the symbol {task.lag} steps back: correct BPTT vs the assignment's errors")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
