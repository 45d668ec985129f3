"""Rhyme: the even lines end in one 平水韻 平聲 group.

The first rhyme character may be any character of a *viable* group (one with enough characters
in the vocabulary to finish the poem, repeats excluded when `no_repeat`); each later one must
share a group with all earlier ones: the set of consistent groups (a bit mask, the rule's part of
the row state) is intersected with each chosen character's groups, which handles 多音字.

The set starts narrowed by what is fixed before decoding: a chosen group (`group`) and every
rhyme character forced by the start text or the acrostic, wherever it stands in the poem. A
request whose fixed characters share no viable group is refused here, with the reason.

Line 1's last character (a `first_end` position) either rhymes or ends on 仄, as in Tang verse
(a 平 ending outside the rhyme is heard as a broken rhyme): it may be a character with a 仄
reading or one in a group still possible that has a character to spare for it (`roomy`), and a
character with a 平 reading in those groups narrows the set as a rhyme does (首句入韻). A given
line 1 narrows the set the same way when it can; when it cannot (its rhyme is not among the groups
the other given lines leave), the user's line stands as written.

A generated character rhymes only with a reading verse uses (tables.gmask); a given one with any
reading of the table (tables.gmask_all): the user's text is read as the table allows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tangshi.errors import TangshiError
from tangshi.verse import prosody

from .base import Rule
from .tables import T_ZE, VocabTables, vocab_tables

if TYPE_CHECKING:
    from tangshi.data.vocab import Vocab


def group_counts(tables: VocabTables) -> list[int]:
    """Per 平聲 group (table order): how many Han characters of the vocabulary it holds."""
    counts = [0] * tables.n_groups
    for m in tables.gmask[tables.han].tolist():
        g = 0
        while m:
            if m & 1:
                counts[g] += 1
            m >>= 1
            g += 1
    return counts


class Rhyme(Rule):
    def __init__(
        self,
        tables: VocabTables,
        form,
        no_repeat: bool,
        label: str,
        forced: dict[int, int] | None = None,
        layout=(),
        itos=(),
        group: str | None = None,
    ):
        forced = forced or {}
        slots = [p.t for p in layout if p.rhyme]
        fixed = [(t, forced[t]) for t in slots if t in forced]
        free = len(slots) - len(fixed)
        need = form.n_rhymes + form.lines - 1 if no_repeat else 1
        counts = group_counts(tables)
        names = prosody.rhyme_table().groups
        viable = sum(1 << g for g, c in enumerate(counts) if c >= need) if free else (1 << tables.n_groups) - 1
        if not viable:
            raise TangshiError(
                f"no 平水韻 rhyme group has {need} characters in the vocabulary (the largest has "
                f"{max(counts) if counts else 0}); cannot rhyme the {form.n_rhymes} rhyme positions of a {label}"
                + (" without repeats (allow them with --allow-repeats)" if no_repeat else "")
            )
        S = viable
        if group is not None:
            g = names.index(group)
            if not viable >> g & 1:
                raise TangshiError(
                    f"rhyme group {group} has only {counts[g]} characters the model knows; a {label} "
                    f"needs {need}" + (" (fewer with --allow-repeats)" if no_repeat else "")
                )
            S = 1 << g
        S = self._narrow_by_fixed(tables, form, fixed, S, group, need, label, itos)
        # line 1 may rhyme only in a group with a character to spare for it
        roomy = sum(1 << g for g, c in enumerate(counts) if c > need) if no_repeat else viable
        self.roomy = roomy & viable
        for p in layout:
            if p.first_end and p.t in forced:  # a given line 1 rhymes when it can: it fixes the group
                S = S & int(tables.gmask_all[forced[p.t]]) & self.roomy or S
        self.initial_groups = S
        self.gmask_np = tables.gmask & viable  # (V,) each id's viable groups
        self.gmask = tables.gmask.tolist()
        self.given = {t: int(tables.gmask_all[tok]) for t, tok in forced.items()}  # position → the given one's groups
        self.ze = (tables.tcode & T_ZE) != 0  # (V,) a 仄 reading
        self.ze.setflags(write=False)

    @staticmethod
    def _narrow_by_fixed(tables: VocabTables, form, fixed, S: int, group, need: int, label: str, itos) -> int:
        """The groups left by the given rhyme characters; a character that leaves none is refused."""
        for t, tok in fixed:
            line = t // (form.chars_per_line + 1) + 1
            ch = itos[tok]
            if not tables.gmask_all[tok]:
                raise TangshiError(
                    f"'{ch}' ends line {line}, a rhyme position of a {label}, but it is in no 平水韻 "
                    "平聲 group (a 仄 character cannot rhyme); choose another character or use --no-rhyme"
                )
            if not S & int(tables.gmask_all[tok]):
                chars = "、".join(itos[k] for _, k in fixed)
                why = (
                    f"is not in rhyme group {group}"
                    if group
                    else (
                        f"shares no 平聲 group that has {need} characters with the other rhyme characters ({chars})"
                        if len(fixed) > 1
                        else f"is in no 平聲 group with {need} characters the model knows"
                    )
                )
                raise TangshiError(f"'{ch}' at the end of line {line} {why}; cannot rhyme this {label}")
            S &= int(tables.gmask_all[tok])
        return S

    def initial(self) -> int:
        return self.initial_groups  # S: the groups still consistent with every rhyme so far

    def limit(self, pos, row, S: int):
        if pos.rhyme:
            return ("S", S)
        return ("O", S) if pos.first_end else None

    def factor(self, key) -> np.ndarray:
        if key[0] == "S":
            return (self.gmask_np & key[1]) != 0
        return ((self.gmask_np & (key[1] & self.roomy)) != 0) | self.ze

    def advance(self, pos, row, S: int, tok: int) -> int:
        if pos.rhyme:
            return S & self.given.get(pos.t, self.gmask[tok])
        if pos.first_end:
            # a 平 reading in the groups rhymes; a 仄 one leaves S
            return S & self.given.get(pos.t, self.gmask[tok]) & self.roomy or S
        return S


def rhyme_groups_known(vocab: Vocab) -> list[dict]:
    """The 平水韻 平聲 groups in table order, each with its characters in the table and how many of
    them the model's vocabulary knows (what --rhyme-group can choose from)."""
    specials = frozenset((vocab.eos_id, vocab.oov_id, vocab.start_id, vocab.pad_id))
    known = group_counts(vocab_tables(tuple(vocab.itos), specials))
    table = prosody.rhyme_table()
    return [
        {"group": g, "name": prosody.short_group_name(g), "characters": len(table.group_chars[g]), "known": k}
        for g, k in zip(table.groups, known)
    ]
