"""The revision bar, measured: 100 revisions across the four forms (25 each) with the bundled model.

For trial i: write a poem (seed i), open one of its lines (line 1 + i mod the form's lines), write it again
with --candidates 8, and check (1) every character outside the opened line is byte for byte the poem's
(and the chosen version is one of the 8 candidates below),
(2) the chosen version scores at least the mean of the 8 candidates, by the reader's score it is ranked by
and by the whole poem's mean log-probability alone. The 8 candidates are the same samples a request for
--n 8 --candidates 1 draws with the same seed, each with its scores.

    python scripts/revise_check.py            # prints one line per form and the totals
"""

from __future__ import annotations

import sys

from tangshi.api import load
from tangshi.decode.request import PoemRequest
from tangshi.text import split_lines

K = 8
FORMS = ("wujue", "qijue", "wulv", "qilv")


def trial(poet, form: str, i: int) -> tuple[bool, bool, bool]:
    poem = next(iter(poet.records(PoemRequest(form=form, seed=i))[0]))["text"]
    lines = split_lines(poem)
    k = 1 + i % len(lines)
    ask = dict(template=poem, revise=str(k), seed=1000 + i)
    chosen = next(iter(poet.records(PoemRequest(**ask, candidates=K))[0]))
    every = list(poet.records(PoemRequest(**ask, n=K, candidates=1))[0])
    kept = all(a == b for j, (a, b) in enumerate(zip(split_lines(chosen["text"]), lines)) if j != k - 1)
    kept = kept and len(chosen["text"]) == len(poem) and chosen["text"] in [c["text"] for c in every]
    reader_ok = chosen["reader_score"] >= sum(c["reader_score"] for c in every) / K - 1e-9
    lp_ok = chosen["score"] >= sum(c["score"] for c in every) / K - 1e-9
    return kept, reader_ok, lp_ok


def main() -> int:
    poet = load()
    totals = [0, 0, 0, 0]
    for form in FORMS:
        got = [trial(poet, form, i) for i in range(25)]
        counts = [sum(g[j] for g in got) for j in range(3)]
        print(f"{form}: kept {counts[0]}/25, reader's score ≥ mean {counts[1]}/25, log-prob ≥ mean {counts[2]}/25")
        totals = [t + c for t, c in zip(totals, [*counts, 25])]
    print(
        f"all: kept {totals[0]}/{totals[3]}, reader's score ≥ mean {totals[1]}/{totals[3]}, "
        f"log-prob ≥ mean {totals[2]}/{totals[3]}"
    )
    return 0 if totals[0] == totals[1] == totals[3] else 1


if __name__ == "__main__":
    sys.exit(main())
