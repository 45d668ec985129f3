"""Readings that Tang regulated verse uses, learned from the corpus.

The 平水韻 table gives a 多音字 every reading it ever had: 平 is in 庚 (píng) and in 先 (pián), 還 in 刪
and 先, 望 is 平 and 仄. A poet used some of these readings in verse and hardly ever the others, and a
reader hears a rhyme or a 平仄 slot filled by a rare reading as a mistake.

``learn(poems)`` counts, over the poems with one of the four forms exactly:

* **rhyme readings** — each time a character ends an even line of a poem whose *other* even lines
  share exactly one 平聲 group g, and g is one of the character's groups, one use of (character, g);
* **tone readings** — in the poems that fit one of the form's strict 平仄 patterns at every checked
  position (2nd, 4th, 6th and last of each line; a 多音字 fits both tones there), each checked
  position's required tone is one use of (character, tone).

A character with more than one reading and at least ``min_uses`` uses keeps the readings that hold
at least ``min_share`` of its uses; a character with fewer uses keeps the table's readings (too few
to tell). Only the characters whose readings change are stored. The values chosen, and what they
cost on real poems, are in ``tangshi data habits``' table and in docs/reader.md.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from tangshi.errors import TangshiError
from tangshi.verse import prosody

MIN_SHARE = 0.05  # a reading used in fewer than 1 in 20 of a character's uses is rare
MIN_USES = 20  # below this many uses a character keeps every reading the table gives it


def count_uses(poems: list[str]) -> tuple[dict[str, Counter], dict[str, Counter]]:
    """(character → Counter of rhyme groups, character → Counter of tones) over ``poems``."""
    rhyme: dict[str, Counter] = defaultdict(Counter)
    tone: dict[str, Counter] = defaultdict(Counter)
    for poem, form, bodies in prosody.in_form(poems):
        ends = [bodies[i][-1] for i in range(1, len(bodies), 2)]
        for i, ch in enumerate(ends):
            others = prosody.shared_groups(ends[:i] + ends[i + 1 :])
            if len(others) == 1 and others & prosody.rhyme_groups(ch):
                rhyme[ch][next(iter(others))] += 1
        best = prosody.best_pattern(poem, form)
        if best is not None and best[1] == 1.0:
            for body, line in zip(bodies, best[0].lines):
                for ch, req in zip(body, line):
                    if req != prosody.EITHER:
                        tone[ch][req] += 1
    return rhyme, tone


def _kept(counts: dict[str, Counter], table, min_share: float, min_uses: int) -> dict[str, list[str]]:
    out = {}
    for ch, c in sorted(counts.items()):
        total = sum(c.values())
        readings = table(ch)
        if total < min_uses or len(readings) < 2:
            continue
        keep = sorted(r for r in readings if c[r] / total >= min_share)
        if len(keep) < len(readings):
            out[ch] = keep
    return out


def learn(poems: list[str], *, min_share: float = MIN_SHARE, min_uses: int = MIN_USES) -> dict:
    """The readings table (JSON-ready): per character whose readings change, the kept ones and
    the counts behind them."""
    rhyme, tone = count_uses(poems)
    groups = _kept(rhyme, prosody.rhyme_groups, min_share, min_uses)
    tones = _kept(tone, prosody.tones, min_share, min_uses)
    return {
        "min_share": min_share,
        "min_uses": min_uses,
        "rhyme": {ch: {"keep": keep, "uses": dict(rhyme[ch])} for ch, keep in groups.items()},
        "tone": {ch: {"keep": keep, "uses": dict(tone[ch])} for ch, keep in tones.items()},
    }


@dataclass(frozen=True)
class Readings:
    """The learned restrictions: a character absent from both maps keeps the table's readings."""

    groups: dict[str, frozenset[str]]
    tones: dict[str, frozenset[str]]

    @classmethod
    def from_table(cls, table: dict) -> Readings:
        try:
            return cls(
                {str(ch): frozenset(v["keep"]) for ch, v in table["rhyme"].items()},
                {str(ch): frozenset(v["keep"]) for ch, v in table["tone"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise TangshiError(f"the readings table is malformed ({type(e).__name__}: {e})") from None

    def rhyme_groups(self, ch: str) -> frozenset[str]:
        """The 平聲 groups ``ch`` rhymes in, in verse (none when its 平 reading is rare)."""
        if prosody.PING not in self.tone_set(ch):
            return frozenset()
        return self.groups.get(ch, prosody.rhyme_groups(ch))

    def shared_groups(self, chars) -> frozenset[str]:
        """The groups all ``chars`` rhyme in with the readings verse uses (prosody.shared_groups, so
        restricted); empty for no characters."""
        groups = [self.rhyme_groups(ch) for ch in chars]
        return frozenset.intersection(*groups) if groups else frozenset()

    def tone_set(self, ch: str) -> frozenset[str]:
        """The tones ``ch`` takes in verse."""
        return self.tones.get(ch, prosody.tones(ch))

    def rare(self, ch: str, group: str | None = None, tone: str | None = None) -> bool:
        """Whether ``ch`` read in ``group`` (or with ``tone``) is a reading verse rarely uses."""
        if group is not None and group in prosody.rhyme_groups(ch) and group not in self.rhyme_groups(ch):
            return True
        return tone is not None and tone in prosody.tones(ch) and tone not in self.tone_set(ch)


def _fits(readings: Readings, bodies: list[str], pattern: prosody.TonePattern) -> bool:
    return all(
        req == prosody.EITHER or req in readings.tone_set(ch)
        for body, line in zip(bodies, pattern.lines)
        for ch, req in zip(body, line)
    )


def coverage(readings: Readings, poems: list[str]) -> dict:
    """What the restriction costs real poems (the held-out part): of the poems with one of the four
    forms whose even lines rhyme by the table, how many still rhyme with the readings verse uses; of
    those that fit a strict 平仄 pattern by the table, how many still fit one."""
    rhymed = kept_rhyme = fitted = kept_tone = 0
    for poem, form, bodies in prosody.in_form(poems):
        ends = [bodies[i][-1] for i in range(1, len(bodies), 2)]
        if prosody.shared_groups(ends):
            rhymed += 1
            kept_rhyme += bool(readings.shared_groups(ends))
        best = prosody.best_pattern(poem, form)
        if best is not None and best[1] == 1.0:
            fitted += 1
            kept_tone += any(_fits(readings, bodies, p) for p in prosody.tone_patterns(form))
    return {"rhymed": rhymed, "still_rhymed": kept_rhyme, "strict": fitted, "still_strict": kept_tone}
