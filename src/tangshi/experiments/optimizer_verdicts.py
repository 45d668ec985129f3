"""The verdicts of `tangshi experiment optimizers` (optimizers.py), computed from the report's numbers
alone, and its bottom line."""

from __future__ import annotations

from tangshi.experiments import optimizer_extended
from tangshi.experiments.report import separated

ORIGINAL_WD = 1e-4  # the assignment's weight decay: coupled L2 for adam/adagrad/sgd, decoupled for adamw
CONTROLS = ("adam", "adagrad")  # also run with weight decay 0


def _row(finals, opt, wd=ORIGINAL_WD):
    return next((r for r in finals if r["optimizer"] == opt and r["wd"] == wd), None)


def update_decay(doc: dict, row: dict) -> dict | None:
    """How the assignment-0 run's per-parameter RMS update changes: mean over the first epoch's steps
    against the mean over the last epoch's, per parameter."""
    rec = doc["runs"][row["runs"][0]]
    steps = {int(k): v["update_rms"] for k, v in rec.get("probes", {}).items() if "update_rms" in v}
    if not steps or rec["diverged"]:
        return None
    per_epoch = rec["history"][0].get("steps") or max(1, max(steps) // len(rec["history"]))
    first = [s for s in steps if s <= per_epoch]
    last = [s for s in steps if s > max(steps) - per_epoch]
    ratio = {}
    for p in steps[first[0]]:
        a = sum(steps[s][p] for s in first) / len(first)
        z = sum(steps[s][p] for s in last) / len(last)
        if a > 0 and z > 0:
            ratio[p] = a / z
    return {"ratios": ratio, "min": min(ratio.values()), "max": max(ratio.values())} if ratio else None


def _scope(doc: dict) -> str:
    """What verdict 2 rests on, said beside it."""
    b = doc["budget"]
    return (
        f"at a constant rate for {b['epochs']} epochs on this model, each rate chosen by a {b['sweep_epochs']}-epoch "
        "sweep (not a verdict on Adam in general, nor with a schedule: the second part below)"
    )


def _decay_verdict(doc: dict, ada: dict | None, adam: dict | None) -> str:
    """Verdict 1: does Adagrad's step shrink, and more than Adam's? From one run of each (seed 0)."""
    da, dm = (update_decay(doc, r) if r else None for r in (ada, adam))
    claim = '1. *"Adagrad\'s learning rate decays towards zero."* — '
    if not (ada and da and dm):
        return claim + "**not measured**: a seed-0 run with update probes is missing or diverged."
    rec = doc["runs"][ada["runs"][0]]
    e, seed = len(rec["history"]), rec["spec"]["train"].get("seed", 0)
    span = lambda d: f"×{d['min']:.2g}–×{d['max']:.2g}"
    facts = (
        f"on one run of each (seed {seed}, weight decay {ORIGINAL_WD:g}, each at its chosen rate), "
        f"from epoch 1 to epoch {e}, Adagrad's root-mean-square update per step shrinks {span(da)} across "
        f"the parameters; Adam's changes {span(dm)} (a ratio below 1 means it grew)"
    )
    if da["min"] > 2 and da["min"] > dm["max"]:
        return (
            claim + f"**confirmed**: {facts}. G only accumulates, so lr/(√G+ε) falls roughly as 1/√t; "
            "it never reaches zero in finite training, but here its smallest shrink is "
            f"{da['min'] / dm['max']:.1f}× Adam's largest."
        )
    if da["min"] > 1:
        return claim + f"**partly**: {facts}; Adagrad's shrinks, but not clearly more than Adam's."
    return claim + f"**refuted** at this budget: {facts}."


def verdicts(doc: dict, finals: list[dict]) -> list[str]:
    out = []
    ada, adam = _row(finals, "adagrad"), _row(finals, "adam")
    out.append(_decay_verdict(doc, ada, adam))
    ranked = sorted((r for r in finals if r["wd"] == ORIGINAL_WD), key=lambda r: r["best"]["mean"])
    if len(ranked) >= 2:
        win = ranked[0]
        rest = ", ".join(f"{r['optimizer']} {r['best']['mean']:.2f}" for r in ranked[1:])
        clear = all(separated(win["best"], r["best"]) for r in ranked[1:])
        head = (
            f"best dev perplexity (mean of {win['best']['n']} seeds, each at its best rate, weight decay 1e-4): "
            f"{win['optimizer']} {win['best']['mean']:.2f}, then {rest}"
        )
        if win["optimizer"] in ("adam", "adamw"):
            who = "confirmed" if win["optimizer"] == "adam" else "confirmed for the Adam family (as AdamW)"
            word = who if clear else who + ", but not on every seed"
        else:
            word = "refuted"
        sep = (
            "every seed of the winner beats every seed of the others"
            if clear
            else "the seeds' ranges overlap: "
            + ", ".join(r["optimizer"] for r in ranked[1:] if not separated(win["best"], r["best"]))
        )
        out.append(f'2. *"Adam might be the best overall choice."* — **{word}** {_scope(doc)}: {head}; {sep}.')
        if ada and adam:
            gap = ada["best"]["mean"] - adam["best"]["mean"]
            who = "Adam beats Adagrad" if gap > 0 else "Adagrad beats Adam"
            solid = separated(adam["best"], ada["best"]) if gap > 0 else separated(ada["best"], adam["best"])
            out.append(
                f"   The assignment's own question, Adam against Adagrad: {who} by {abs(gap):.2f} points "
                f"({'on every seed' if solid else 'not on every seed'})."
            )
    else:
        out.append(
            '2. *"Adam might be the best overall choice."* — **not measured**: fewer than two optimisers '
            "have final runs with weight decay 1e-4."
        )
    out.append(_wd_verdict(finals))
    return out


def _wd_verdict(finals) -> str:
    claim = "3. *What coupled weight decay costs.* — "
    pairs = [(o, _row(finals, o), _row(finals, o, 0.0)) for o in CONTROLS]
    pairs = [(o, a, z) for o, a, z in pairs if a and z]
    if not pairs:
        return claim + "**not measured**: the weight-decay-0 runs are missing."
    parts = []
    for o, a, z in pairs:
        d = a["best"]["mean"] - z["best"]["mean"]
        tag = (
            "on every seed"
            if (separated(z["best"], a["best"]) if d > 0 else separated(a["best"], z["best"]))
            else "within the seeds' spread"
        )
        parts.append(
            f"{o}: wd 1e-4 {a['best']['mean']:.2f} vs wd 0 {z['best']['mean']:.2f} "
            f"({'costs' if d > 0 else 'gains'} {abs(d):.2f} points, {tag})"
        )
    text = claim + "; ".join(parts) + "."
    adamw, adam0 = _row(finals, "adamw"), _row(finals, "adam", 0.0)
    if adamw and adam0:
        d = adam0["best"]["mean"] - adamw["best"]["mean"]
        same = not separated(adamw["best"], adam0["best"]) and not separated(adam0["best"], adamw["best"])
        text += (
            f" AdamW (decoupled decay, lr·wd ≈ 0 per step) {adamw['best']['mean']:.2f} against Adam without decay "
            f"{adam0['best']['mean']:.2f}: "
            + (
                "the seeds' ranges overlap, so AdamW's lead over Adam is the cost of coupled L2, not a better "
                "optimiser."
                if same
                else f"{'AdamW' if d > 0 else 'Adam'} is ahead on every seed by {abs(d):.2f}."
            )
        )
    return text


# ---------------------------------------------------------------------------- the report
def bottom_line(doc: dict, finals: list[dict]) -> list[str]:
    """Three sentences for a reader in a hurry, from the numbers, scoped to the budget behind them."""
    b = doc["budget"]
    ranked = sorted((r for r in finals if r["wd"] == ORIGINAL_WD and r["runs"]), key=lambda r: r["best"]["mean"])
    if not ranked:
        return []
    order = ", ".join(f"{r['optimizer']} {r['best']['mean']:.2f}" for r in ranked)
    adam, adam0, adamw = _row(finals, "adam"), _row(finals, "adam", 0.0), _row(finals, "adamw")
    second = ""
    if adam and adam0 and adamw:
        overlap = not separated(adam0["best"], adamw["best"]) and not separated(adamw["best"], adam0["best"])
        second = f"; Adam without weight decay ({adam0['best']['mean']:.2f}) " + (
            f"matches AdamW ({adamw['best']['mean']:.2f}; their seeds' ranges overlap): what separates "
            f"them from Adam ({adam['best']['mean']:.2f}) is the coupled L2, not the optimiser"
            if overlap
            else f"and AdamW ({adamw['best']['mean']:.2f}) differ beyond their seeds' ranges"
        )
    rerun = optimizer_extended.bottom(doc)
    return [
        f"**Bottom line.** On this model, at a constant learning rate for {b['epochs']} epochs, each optimiser at "
        f"the rate its {b['sweep_epochs']}-epoch sweep chose (weight decay {ORIGINAL_WD:g}, mean best dev "
        f"perplexity of {b['seeds']} seeds): {order}{second}. This does not rank the optimisers in general: "
        "Adagrad's step decays as 1/√t by construction while every Adam run there kept a constant rate, and "
        "the rates were chosen at a shorter budget"
        + (
            f". {rerun}"
            if rerun
            else "; the study's reruns give Adam schedules and re-sweep the rate at the full budget."
        ),
        "",
    ]
