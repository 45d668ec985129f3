"""Prosody compiled into vocabulary tables, once per vocabulary: which ids are Han characters,
each id's tones (a bit code) and its 平水韻 平聲 rhyme groups (a bit mask).

``tcode`` and ``gmask`` hold the readings verse uses (verse/readings.py: a 多音字's rare reading is
left out), for what the decoder writes; ``tcode_all`` and ``gmask_all`` hold every reading of the
table, for what the user gives (their own text is read as the table allows)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from tangshi.text import is_han
from tangshi.verse import prosody
from tangshi.verse.habits import habits
from tangshi.verse.prosody import PING, ZE

T_PING = 1  # tone code bits: a 多音字 has both, a character missing from the table neither
T_ZE = 2


@dataclass(frozen=True)
class VocabTables:
    han: np.ndarray  # (V,) bool: a Han character (not a special, not punctuation)
    tcode: np.ndarray  # (V,) int: T_PING | T_ZE bits of the readings verse uses
    gmask: np.ndarray  # (V,) int: bit g set when the character rhymes in group g (prosody.rhyme_table().groups)
    n_groups: int
    tcode_all: np.ndarray  # the same two with every reading of the table
    gmask_all: np.ndarray

    @property
    def tcode_list(self) -> list[int]:
        return self.tcode.tolist()


@functools.lru_cache(maxsize=8)
def vocab_tables(itos: tuple[str, ...], specials: frozenset[int]) -> VocabTables:
    table = prosody.rhyme_table()
    readings = habits().readings
    gidx = {g: i for i, g in enumerate(table.groups)}
    V = len(itos)
    han = np.zeros(V, dtype=np.bool_)
    tcode, gmask, tcode_all, gmask_all = (np.zeros(V, dtype=np.int64) for _ in range(4))

    def code(ts: frozenset[str]) -> int:
        return (T_PING if PING in ts else 0) | (T_ZE if ZE in ts else 0)

    def bits(groups: frozenset[str]) -> int:
        return sum(1 << gidx[g] for g in groups)

    for i, tok in enumerate(itos):
        if i in specials or not is_han(tok):
            continue
        han[i] = True
        tcode_all[i], gmask_all[i] = code(prosody.tones(tok)), bits(prosody.rhyme_groups(tok))
        tcode[i], gmask[i] = code(readings.tone_set(tok)), bits(readings.rhyme_groups(tok))
    for a in (han, tcode, gmask, tcode_all, gmask_all):
        a.setflags(write=False)
    return VocabTables(han, tcode, gmask, len(table.groups), tcode_all, gmask_all)


def tone_filter(tables: VocabTables, tone_req: int) -> np.ndarray:
    """The ids whose tone satisfies `tone_req` (T_PING, T_ZE, or both bits: any known tone)."""
    if tone_req == (T_PING | T_ZE):
        return tables.tcode != 0
    return (tables.tcode & tone_req) != 0
