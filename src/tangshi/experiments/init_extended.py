"""The init study's second part: the mechanism behind the ranking, and enough seeds to rank.

1. Step 0, no training (init_mechanism.py): each init's gate pre-activations and hidden-state
   variance on one batch of real poems, the assignment's own reason ("the variance of the
   activations") tested directly, beside the variance argument's numbers (Xavier's bound on the
   stacked (D, 4H) matrix against one gate's, each init's embedding spread).
2. Seeds 0–2 of the arms a verdict rests on (PyTorch's default, Xavier, U(±1e-4)) and of the two
   that change only the embedding's init (Xavier with PyTorch's N(0,1) embedding, PyTorch's with a
   Xavier embedding); seed 0 of two gate arms (forget-gate bias 1, orthogonal W_hh).

Rendered from the report's JSON alone.
"""

from __future__ import annotations

import math
from pathlib import Path

from tangshi.experiments import init_mechanism
from tangshi.experiments.init_verdicts import LABELS
from tangshi.experiments.report import COLOURS, fmt_summary, plain_log_ticks, pyplot, separated, summary

ARM_LABELS = {
    **LABELS,
    "xavier_normal_embed": "Xavier, embedding N(0,1)",
    "torch_xavier_embed": "PyTorch default, embedding Xavier",
    "xavier_forget1": "Xavier, forget-gate bias 1",
    "xavier_orthogonal": "Xavier, orthogonal W_hh",
}
SHOWN_STEPS = (0, 9)  # h_t's variance at t = 1 and t = 10 (and the batch's last step)


def label(arm: str) -> str:
    return ARM_LABELS.get(arm, arm)


def mechanism(data_dir: Path, arms: tuple, model_over: dict) -> dict:
    """The step-0 summary of each arm (init_mechanism.measure) and the variance argument's numbers."""
    got = init_mechanism.measure(data_dir, schemes=arms, model_over=model_over)
    d = model_over.get("embed_dim", 256)
    h = model_over.get("hidden_dim", 256)
    return {
        "arms": got,
        "xavier_bound_stacked": init_mechanism.xavier_bound(d, 4 * h),
        "xavier_bound_gate": init_mechanism.xavier_bound(d, h),
        "embed_dim": d,
        "hidden_dim": h,
    }


def seeded(doc: dict, epochs: int) -> dict:
    """{arm: [record, ...]} of the runs with the assignment's recipe at the final budget, by seed."""
    out: dict = {}
    for rec in doc["runs"].values():
        spec = rec["spec"]
        if (
            spec["train"]["optimizer"] == "adam"
            and not spec["model"]["relu_logits"]
            and spec["train"]["epochs"] == epochs
        ):
            out.setdefault(spec["model"]["init"], []).append(rec)
    for recs in out.values():
        recs.sort(key=lambda r: r["spec"]["train"].get("seed", 0))
    return out


def seed_order(doc: dict) -> str:
    """Whether the random inits keep seed 0's order on every seed they all have ("" before two such seeds)."""
    arms = seeded(doc, doc["budget"]["epochs"])
    main = [a for a in ("torch", "uniform1e-4", "xavier") if a in arms]
    by_seed = {a: {r["spec"]["train"].get("seed", 0): _best(r) for r in arms[a]} for a in main}
    seeds = sorted(set.intersection(*(set(v) for v in by_seed.values()))) if main else []
    if len(main) < 2 or len(seeds) < 2:
        return ""
    orders = {s: sorted(main, key=lambda a: by_seed[a][s]) for s in seeds}
    named = ", ".join(map(str, seeds))
    if all(o == orders[seeds[0]] for o in orders.values()):
        return f" The same order on each of seeds {named}."
    other = [
        f"seed {s}: " + " < ".join(f"{label(a)} {by_seed[a][s]:.2f}" for a in o)
        for s, o in orders.items()
        if o != orders[seeds[0]]
    ]
    return f" Not the same order on every seed of {named} ({'; '.join(other)}): the ranking holds for seed 0 only."


def _best(rec: dict) -> float:
    return math.inf if rec["diverged"] or not rec["best"] else rec["best"]["dev_ppl"]


def summaries(arms: dict) -> dict:
    """{arm: the summary (mean, sd, min, max, n) of its runs' best dev perplexity} for seeded(...)'s arms."""
    return {a: summary([_best(r) for r in recs]) for a, recs in arms.items()}


def bottom(doc: dict, lead_in: str = "Over", tail: str = "") -> str:
    """The second part for the bottom line: every arm over the seeds once some arm has two or more
    (the sentence opens with `lead_in` and ends with `tail`); before that, what swapping the
    embedding's init did on seed 0 ("" without either)."""
    arms = seeded(doc, doc["budget"]["epochs"])
    s = {a: v for a, v in summaries(arms).items() if a not in ("zeros", "constant")}
    if any(v["n"] > 1 for v in s.values()):
        ranked = sorted(s, key=lambda a: s[a]["mean"])
        said = "; ".join(
            f"{label(a)} {fmt_summary(s[a])}"
            + (f" ({s[a]['n']} seeds)" if s[a]["n"] > 1 else f" (seed {arms[a][0]['spec']['train'].get('seed', 0)})")
            for a in ranked
        )
        lead = _lead_shares(s)
        why = ""
        if lead and min(lead[1], lead[2]) > 0.5:
            moves = f"moves Xavier {lead[1]:.0%} and PyTorch's default {lead[2]:.0%} of the way to the other"
            why = (
                f" The init of the embedding alone carries most of PyTorch's lead over Xavier: swapping only it "
                f"{moves} ({lead[3]} seeds on the arm with fewest)."
                if lead[3] > 1
                else f" Swapping only the embedding's init {moves} (one seed on the arm with fewest: a direction)."
            )
        return f"{lead_in} the seeds run, best dev perplexity as mean ± sd (min–max): {said}{tail}.{why}"
    swaps = [
        (b, w) for b, w in (("xavier", "xavier_normal_embed"), ("torch", "torch_xavier_embed")) if b in s and w in s
    ]
    if not swaps:
        return ""
    said = "; ".join(
        f"{label(b)} {s[b]['mean']:.2f} → {s[w]['mean']:.2f} with {label(w).split(', ')[1]}" for b, w in swaps
    )
    return f"Changing only the embedding's init, on seed 0: {said} (one seed: a direction, not a verdict)."


def section(doc: dict, names: dict) -> list[str]:
    """The second part's sections: empty when the JSON holds none of it."""
    lines = _mechanism_section(doc.get("mechanism"), names)
    epochs = doc["budget"]["epochs"]
    arms = seeded(doc, epochs)
    if lines and (tested := reason_tested(doc["mechanism"], arms, epochs)):
        lines.append(tested + "\n")
    if any(len(r) > 1 for r in arms.values()) or set(arms) - set(LABELS):
        lines += _seeds_section(arms, epochs)
    return lines


def _mechanism_section(m: dict | None, names: dict) -> list[str]:
    if not m:
        return []
    lines = ["", "## At step 0: what each init gives the gates (the assignment's reason, tested)\n"]
    lines.append(
        f"One batch of training poems through each freshly built model, no training. U(±a) has variance "
        f"a²/3, so Xavier's a = √(6 / (n_in + n_out)) makes Var W = 2 / (n_in + n_out). This code, like the "
        f"assignment's, applies it to the stacked ({m['embed_dim']}, 4·{m['hidden_dim']}) matrix: bound "
        f"{m['xavier_bound_stacked']:.3f}, where one gate's ({m['embed_dim']}, {m['hidden_dim']}) block would "
        f"get {m['xavier_bound_gate']:.3f}. z = the gates' pre-activations; saturated = |z| > "
        f"{init_mechanism.SATURATED:g}, where σ′ < 0.05 and almost no gradient passes.\n"
    )
    lines.append(
        "| init | embedding std | z std (i / f / c̃ / o) | saturated share (i / f / c̃ / o) | "
        "Var h at t = 1 / 10 / last |"
    )
    lines.append("|---|---|---|---|---|")
    for arm, s in m["arms"].items():
        g = s["gates"]
        stds = " / ".join(f"{g[k]['std']:.3g}" for k in init_mechanism.GATE_NAMES)
        sat = " / ".join(f"{g[k]['saturated']:.1%}" for k in init_mechanism.GATE_NAMES)
        hv = s["h_var"]
        var = " / ".join(f"{hv[t]:.2e}" for t in (*SHOWN_STEPS, len(hv) - 1) if t < len(hv))
        lines.append(f"| {label(arm)} | {s['embed_std']:.3g} | {stds} | {sat} | {var} |")
    lines.append(
        f"\n![step 0: |z| of the gates, and Var h_t through time]({names['step0']})\n\nLeft, every gate "
        "pre-activation of the batch by |z|; right, the spread of h_t over the batch and the units at each t."
        + _through_time(m)
        + "\n"
    )
    return lines


def reason_tested(m: dict, arms: dict, epochs: int) -> str:
    """The assignment's reason for Xavier (keep the gates out of saturation) against the step-0 numbers,
    and whether the step-0 scale (the mean of the four gates' z std) orders the arms trained on two or
    more seeds: each pair goes with the scale (larger scale, lower perplexity on every seed), against
    it on every seed, or is not separated by the seeds."""
    gates = {a: s["gates"] for a, s in m["arms"].items()}
    if not gates:
        return ""
    sat = max(g[k]["saturated"] for g in gates.values() for k in g)
    said = (
        "**The assignment's reason, tested.** Xavier is meant to keep the gates out of saturation; at step 0 "
        f"no init here saturates more than {sat:.1%} of any gate's pre-activations (|z| > "
        f"{init_mechanism.SATURATED:g})"
        + (", so saturation does not separate them at the start." if sat < 0.01 else ".")
    )
    scale = {a: sum(g[k]["std"] for k in g) / len(g) for a, g in gates.items()}
    s = {a: v for a, v in summaries(arms).items() if a in scale and v["n"] > 1}
    if len(s) < 3:
        return said
    order = sorted(s, key=lambda a: -scale[a])
    with_, against, level = 0, [], 0
    for i, a in enumerate(order):
        for b in order[i + 1 :]:  # a has the larger scale
            if separated(s[a], s[b]):
                with_ += 1
            elif separated(s[b], s[a]):
                against.append(f"{label(b)} ahead of {label(a)}")
            else:
                level += 1
    n = min(r["n"] for r in s.values())
    listed = "; ".join(f"{label(a)} {scale[a]:.2g}, {s[a]['mean']:.2f}" for a in order)
    return (
        f"{said} What the inits do differ in is scale. Ordered by the gates' mean z std at step 0, largest "
        f"first, with the mean best dev perplexity ({epochs} epochs, {n}+ seeds each): {listed}. Of the "
        f"{len(order) * (len(order) - 1) // 2} pairs, {with_} go with the scale (the larger one lower on every "
        f"seed), {len(against)} against it on every seed"
        + (f" ({', '.join(against)})" if against else "")
        + f" and {level} {'is' if level == 1 else 'are'} not separated by the seeds"
        + (
            ": a larger scale at the start goes with a better result in most pairs here, but does not order them all."
            if against
            else "."
        )
    )


def _through_time(m: dict) -> str:
    """How far Var h_t moves from t = 1 to the last step, against how far apart the inits set it at t = 1."""
    firsts = {a: s["h_var"] for a, s in m["arms"].items() if s["h_var"] and s["h_var"][0] > 1e-20}
    if len(firsts) < 2:
        return ""
    moved = [v[-1] / v[0] for v in firsts.values()]
    apart = max(v[0] for v in firsts.values()) / min(v[0] for v in firsts.values())
    steps = len(next(iter(firsts.values())))
    said = (
        f" From t = 1 to t = {steps}, Var h_t changes by a factor of {min(moved):.2g} to {max(moved):.2g} "
        f"across the inits; at t = 1 the inits set it {apart:.1e}× apart"
    )
    return said + (": the init sets the scale, and time moves it far less." if apart > 10 * max(moved) else ".")


def _seeds_section(arms: dict, epochs: int) -> list[str]:
    lines = [f"## Seeds, and the arms that change one tensor ({epochs} epochs, the assignment's recipe)\n"]
    lines.append(
        "Best dev perplexity of each seed, and over the seeds mean ± standard deviation (min–max). "
        "A run whose best epoch is its last was still improving.\n"
    )
    seeds = sorted({r["spec"]["train"].get("seed", 0) for recs in arms.values() for r in recs})
    lines.append("| init | " + " | ".join(f"seed {s}" for s in seeds) + " | over the seeds | still improving |")
    lines.append("|---|" + "---|" * (len(seeds) + 2))
    for arm, recs in sorted(arms.items(), key=lambda kv: summary([_best(r) for r in kv[1]])["mean"]):
        by_seed = {r["spec"]["train"].get("seed", 0): r for r in recs}
        cells = [f"{_best(by_seed[s]):.2f}" if s in by_seed else "" for s in seeds]
        still = sum(r["best"] is not None and r["best"]["epoch"] == epochs for r in recs)
        lines.append(
            f"| {label(arm)} | " + " | ".join(cells) + f" | {fmt_summary(summary([_best(r) for r in recs]))} "
            f"| {still} of {len(recs)} |"
        )
    lines.append("\n### Verdicts of the second part (computed from the table above)\n")
    lines += verdicts(arms)
    return lines


def verdicts(arms: dict) -> list[str]:
    """The ranking where the seeds separate the arms, and what swapping the embedding's init does."""
    s = summaries(arms)
    out = []
    main = [a for a in ("torch", "uniform1e-4", "xavier") if a in s]
    ranked = sorted(main, key=lambda a: s[a]["mean"])
    for a, b in zip(ranked, ranked[1:]):
        if min(s[a]["n"], s[b]["n"]) < 2:
            word = f"ahead of {label(b)} on the one seed both have run (a direction, not a verdict)"
        elif separated(s[a], s[b]):
            worst = f"its worst of {s[a]['n']} against the other's best of {s[b]['n']}"
            word = f"better than {label(b)} on every seed ({worst})"
        else:
            word = f"not separated from {label(b)} by these seeds (their ranges overlap)"
        out.append(f"- {label(a)} ({s[a]['mean']:.2f}) is {word}.")
    for base, swapped in (("xavier", "xavier_normal_embed"), ("torch", "torch_xavier_embed")):
        if base in s and swapped in s:
            d = s[swapped]["mean"] - s[base]["mean"]
            n = min(s[base]["n"], s[swapped]["n"])
            sep = separated(s[swapped], s[base]) or separated(s[base], s[swapped])
            out.append(
                f"- Changing only the embedding's init, {label(base)} → {label(swapped)}: {s[base]['mean']:.2f} → "
                f"{s[swapped]['mean']:.2f} ({d:+.2f}; {n} seed{'s' if n != 1 else ''}"
                f"{', every seed the same way' if sep and n > 1 else ', within the seeds spread' if n > 1 else ''})."
            )
    out += _lead(s)
    for gate in ("xavier_forget1", "xavier_orthogonal"):
        if gate in s and "xavier" in arms:
            x0 = next((r for r in arms["xavier"] if r["spec"]["train"].get("seed", 0) == 0), None)
            if x0 is not None:
                g = s[gate]["mean"]
                out.append(
                    f"- {label(gate)}: {g:.2f} against Xavier's {_best(x0):.2f} on the same seed (one seed: "
                    "no verdict, a direction)."
                )
    out.append("")
    return out


LEAD_ARMS = ("torch", "xavier", "xavier_normal_embed", "torch_xavier_embed")


def _lead_shares(s: dict) -> tuple[float, float, float, int] | None:
    """PyTorch's lead over Xavier (mean best dev perplexity), the share of it that Xavier with the N(0,1)
    embedding closes, the share PyTorch's default with Xavier's embedding gives back, the fewest seeds."""
    if not all(a in s for a in LEAD_ARMS) or s["xavier"]["mean"] <= s["torch"]["mean"]:
        return None
    t, x, xn, tx = (s[a] for a in LEAD_ARMS)
    gap = x["mean"] - t["mean"]
    return gap, (x["mean"] - xn["mean"]) / gap, (tx["mean"] - t["mean"]) / gap, min(v["n"] for v in (t, x, xn, tx))


def _lead(s: dict) -> list[str]:
    """How much of PyTorch's lead over Xavier the embedding's init alone carries, from both sides."""
    shares = _lead_shares(s)
    if shares is None:
        return []
    gap, closes, gives, n = shares
    t, x, xn, tx = (s[a] for a in LEAD_ARMS)
    near = (
        "behind PyTorch's default on every seed"
        if separated(t, xn)
        else "ahead of PyTorch's default on every seed"
        if separated(xn, t)
        else "not separated from PyTorch's default by these seeds (their ranges overlap)"
    )
    return [
        f"- PyTorch's lead over Xavier ({gap:.2f} points) and the embedding: Xavier with PyTorch's N(0,1) "
        f"embedding closes {closes:.0%} of it ({xn['mean']:.2f}); PyTorch's default with "
        f"Xavier's embedding gives back {gives:.0%} of it ({tx['mean']:.2f}); "
        f"{n} seed{'s' if n != 1 else ''} on the arm with fewest. Xavier with the N(0,1) embedding is {near}"
        + (" (one seed: a direction)." if n < 2 else ".")
    ]


def plot_step0(doc: dict, path) -> None:
    """Left: the share of the gates' pre-activations at step 0 in each bin of |z| (log), one line per
    init, dotted where σ saturates. Right: the variance of h_t over the batch and units, by t."""
    plt = pyplot()
    fig, (ax, av) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": (3, 2)})
    m = doc.get("mechanism")
    edges = init_mechanism.HIST_EDGES
    centres = [math.sqrt(edges[k] * edges[k + 1]) for k in range(1, len(edges) - 1)] + [edges[-1] * 1.5]
    styles = ("-", "--", ":", "-.")
    for k, (arm, s) in enumerate((m or {}).get("arms", {}).items()):
        colour, style = COLOURS.get(arm, f"C{k % 10}"), styles[k % len(styles)]
        hist = s.get("hist")
        if hist and any(hist[1:]):  # all zeros (nothing above 1e-6) has nothing to draw on a log axis
            ax.plot(centres, hist[1:], style, color=colour, marker="o", ms=3, label=label(arm))
        steps = [(t + 1, v) for t, v in enumerate(s.get("h_var", [])) if v > 1e-20]  # below: rounding, not spread
        if steps:
            av.plot([t for t, _ in steps], [v for _, v in steps], style, color=colour, lw=1.4)
    if not ax.lines:
        for a in (ax, av):
            a.axis("off")
        ax.text(0.5, 0.5, "no step-0 measurement in this report", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.axvline(init_mechanism.SATURATED, color="k", ls=":", lw=1)
        ax.set_xscale("log")
        plain_log_ticks(ax, "x")
        ax.set_xlabel("|z|, a gate's pre-activation (dotted: |z| = 3, σ′ < 0.05)")
        ax.set_ylabel("share of all gate pre-activations")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, ncol=2)
        ax.set_title("what each init feeds the gates", fontsize=10)
        av.set_yscale("log")
        av.set_xlabel("t (characters into the poem)")
        av.set_ylabel("Var h_t (over the batch and the units)")
        av.grid(alpha=0.3, which="both")
        av.set_title("h_t's spread through time (none for zeros and constant)", fontsize=10)
    fig.suptitle("step 0: one batch of training poems through each fresh model, before any update", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
