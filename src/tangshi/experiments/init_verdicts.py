"""What `tangshi experiment init` (init.py) concludes, computed from its table of runs, and the names
its report speaks in: the arms' labels, the variants' names, which rows belong to a variant.
"""

from __future__ import annotations

from tangshi.model.lm import CONSTANT_INIT

LABELS = {
    "zeros": "all zeros",
    "constant": f"constant {CONSTANT_INIT:g}",
    "uniform1e-4": "U(±1e-4)",
    "xavier": "Xavier",
    "torch": "PyTorch default",
}


def variant_name(opt: str, relu: bool) -> str:
    return f"{opt}{' + ReLU' if relu else ''}"


def pick(table: list[dict], opt: str = "adam", relu: bool = False) -> dict:
    """The rows of one variant, by arm (default: the assignment's recipe)."""
    return {r["arm"]: r for r in table if r["optimizer"] == opt and r["relu"] == relu}


def n_epochs(n: int) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def verdicts(doc: dict, table: list[dict]) -> list[str]:
    uni, out = doc["unigram_ppl"], []
    zero = [r for r in table if r["arm"] == "zeros"]
    if zero:
        out.append(_zeros_verdict(zero, table, uni))
    const = [r for r in table if r["arm"] == "constant"]
    if const:
        out.append(_constant_verdict(const, uni))
    orig = pick(table)
    random_arms = [a for a in ("uniform1e-4", "xavier", "torch") if a in orig]
    if "xavier" in orig and len(random_arms) > 1:
        out.append(_xavier_verdict(table, orig, random_arms))
    return out


def _zeros_verdict(zero: list[dict], table: list[dict], uni: float) -> str:
    """1. All-zero weights fail: only the output bias moves."""
    parts = []
    for r in zero:
        moved = sorted(set(r["moved"]) - set(r["still"]))
        parts.append(
            f"{variant_name(r['optimizer'], r['relu'])} ({n_epochs(r['epochs'])}, seed 0): {r['units_end']} "
            "distinct unit(s), parameters "
            f"that moved: {', '.join(moved) or 'none'}, best dev ppl {r['best']:.2f}"
        )
    stuck = all(set(r["moved"]) - set(r["still"]) <= {"head.bias"} for r in zero)
    why = (
        " With every weight 0, h_t = 0 at every step, so every gradient but the output bias's is exactly 0: "
        "the model can learn character frequencies and nothing else."
    )
    if any(r["relu"] for r in zero):
        why += " Under ReLU even the bias's gradient is 0, because ReLU's derivative at 0 is 0."
    original_zero = pick(table).get("zeros")
    if original_zero and original_zero["best"] > uni:
        why += (
            " With the assignment's recipe it ends above the unigram perplexity "
            f"({original_zero['best']:.2f} > {uni:.2f}) in {n_epochs(original_zero['epochs'])}, though the "
            "output bias alone could reach the unigram's; why it falls short was not tested here."
        )
    return (
        "1. *All-zero weights fail.* — "
        + ("**confirmed**" if stuck else "**refuted**")
        + f" (unigram perplexity {uni:.2f}): "
        + "; ".join(parts)
        + "."
        + (why if stuck else "")
    )


def _constant_verdict(const: list[dict], uni: float) -> str:
    """2. A constant non-zero init: symmetric (one distinct unit), but are its parameters stuck?"""
    sym = all(set(r["units"].values()) == {1} for r in const)
    moving = all(not r["still"] for r in const)
    word = (
        "**symmetric but not stuck**" if sym and moving else "**symmetric and stuck**" if sym else "**not symmetric**"
    )
    return (
        f"2. *A constant non-zero init.* — {word}: in every variant the hidden units stay "
        + ("exactly one distinct unit at every recorded step" if sym else "distinct (see the table)")
        + (", while every parameter moves" if moving else "")
        + "; best dev ppl "
        + ", ".join(
            f"{variant_name(r['optimizer'], r['relu'])} ({n_epochs(r['epochs'])}, seed 0) {r['best']:.2f}"
            for r in const
        )
        + f" ({sum(r['trains'] for r in const)} of {len(const)} more than 5% below the unigram perplexity "
        + f"{uni:.2f})"
        + (
            ". The network trains as if it had one hidden unit. Two different failures: all-zero weights get "
            "no gradient at all (verdict 1), a constant init gets gradients but the same one for every unit, "
            "so its units never become different (symmetry); all-zero weights are symmetric too, but their "
            "zero gradients stop them first."
            if sym
            else "."
        )
    )


def _xavier_verdict(table: list[dict], orig: dict, random_arms: list[str]) -> str:
    """3. Xavier works: the random inits with the assignment's recipe, ranked; then the tiny init under SGD."""
    ranked = sorted(random_arms, key=lambda a: orig[a]["best"])
    x = orig["xavier"]
    hidden = x["units"].get(0)
    broken = all(orig[a]["units_end"] == hidden for a in random_arms)
    below = [a for a in random_arms if orig[a]["trains"]]
    order = " < ".join(f"{LABELS[a]} {orig[a]['best']:.2f}" for a in ranked)
    if ranked[0] == "xavier":
        lead = f"Xavier is best, {orig[ranked[1]]['best'] - x['best']:.2f} points ahead of {LABELS[ranked[1]]}"
    else:
        lead = (
            f"Xavier is not the best here: {LABELS[ranked[0]]} beats it by "
            f"{x['best'] - orig[ranked[0]]['best']:.2f} points"
        )
    text = (
        f"3. *Xavier works.* — with the assignment's recipe ({n_epochs(x['epochs'])}, Adam, seed 0), "
        + (
            "every random init keeps all its units distinct"
            if broken
            else "not every random init keeps its units distinct"
        )
        + f" and {len(below)} of {len(random_arms)} end more than 5% below the unigram perplexity; "
        + f"best dev ppl {order}. {lead}."
    )
    return text + _sgd_note(table, orig)


def _sgd_note(table: list[dict], orig: dict) -> str:
    """How far U(±1e-4) ends from Xavier under plain SGD, against the same under Adam ("" without both)."""
    sgd = pick(table, "sgd")
    if not ("xavier" in sgd and "uniform1e-4" in sgd):
        return ""
    a, u = sgd["xavier"], sgd["uniform1e-4"]
    gap_sgd, gap_adam = u["best"] - a["best"], orig["uniform1e-4"]["best"] - orig["xavier"]["best"]
    return (
        f" Under plain SGD ({n_epochs(a['epochs'])}), where the step is the raw gradient, U(±1e-4) ends "
        f"{gap_sgd:+.2f} points from Xavier; under Adam {gap_adam:+.2f}. "
        + (
            "The tiny init loses more where the step is the raw gradient: Adam divides each step by the "
            "parameter's own gradient scale, so tiny weights with tiny gradients still move."
            if gap_sgd > gap_adam
            else "The tiny init does not lose more under SGD at this budget."
        )
    )
