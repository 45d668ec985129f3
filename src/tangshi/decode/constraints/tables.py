"""Prosody compiled into vocabulary tables, once per vocabulary: which ids are Han characters,
each id's tones (a bit code) and its 平水韻 平聲 rhyme groups (a bit mask)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from tangshi.text import is_han
from tangshi.verse import prosody
from tangshi.verse.prosody import PING, ZE

T_PING = 1  # tone code bits: a 多音字 has both, a character missing from the table neither
T_ZE = 2


@dataclass(frozen=True)
class VocabTables:
    han: np.ndarray  # (V,) bool: a Han character (not a special, not punctuation)
    tcode: np.ndarray  # (V,) int: T_PING | T_ZE bits
    gmask: np.ndarray  # (V,) int: bit g set when the character is in rhyme group g (prosody.rhyme_table().groups)
    n_groups: int

    @property
    def tcode_list(self) -> list[int]:
        return self.tcode.tolist()


@functools.lru_cache(maxsize=8)
def vocab_tables(itos: tuple[str, ...], specials: frozenset[int]) -> VocabTables:
    table = prosody.rhyme_table()
    gidx = {g: i for i, g in enumerate(table.groups)}
    V = len(itos)
    han = np.zeros(V, dtype=np.bool_)
    tcode = np.zeros(V, dtype=np.int64)
    gmask = np.zeros(V, dtype=np.int64)
    for i, tok in enumerate(itos):
        if i in specials or not is_han(tok):
            continue
        han[i] = True
        ts = prosody.tones(tok)
        tcode[i] = (T_PING if PING in ts else 0) | (T_ZE if ZE in ts else 0)
        m = 0
        for g in prosody.rhyme_groups(tok):
            m |= 1 << gidx[g]
        gmask[i] = m
    for a in (han, tcode, gmask):
        a.setflags(write=False)
    return VocabTables(han, tcode, gmask, len(table.groups))


def tone_filter(tables: VocabTables, tone_req: int) -> np.ndarray:
    """The ids whose tone satisfies `tone_req` (T_PING, T_ZE, or both bits: any known tone)."""
    if tone_req == (T_PING | T_ZE):
        return tables.tcode != 0
    return (tables.tcode & tone_req) != 0
