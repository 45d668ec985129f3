"""tangshi's public Python API: load a model once, then write poems or couplets with typed
requests and typed results.

    import tangshi
    poet = tangshi.load()  # the bundled model (or tangshi.load("runs/default/best"))
    for poem in poet.write(tangshi.PoemRequest(form="qijue", acrostic="春夏秋冬")):
        print(poem.text, poem.rhyme_group, poem.tone_pattern)
    (couplet,) = poet.couplet(tangshi.CoupletRequest(first="两个黄鹂鸣翠柳"))
    print(couplet.second)

`write` and `couplet` run the request's task (`tangshi.decode.poems.PoemTask`, `CoupletTask`); the
command line (`tangshi generate`, `tangshi couplet`) and the web API (`tangshi serve`) run the same
task through `Poet.records`, so all three write the same poems for the same request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

from tangshi.data.vocab import Vocab
from tangshi.decode.poems import CoupletTask, PoemTask, records
from tangshi.decode.request import CoupletRequest, PoemRequest
from tangshi.model.bundled import bundled_model_path
from tangshi.model.checkpoint import load_checkpoint
from tangshi.model.lm import PoetryLM


@dataclass(frozen=True)
class PoemResult:
    """One poem. The form's fields (valid_form, rhyme_group, tone_pattern, tone_conformance) are
    None for free verse; `score` (mean log-probability per token) only with `candidates`; `title`
    only when the request gave one."""

    text: str
    lines: tuple[str, ...]
    form: str
    title: str | None = None  # the title it was written on (PoemRequest.title)
    valid_form: bool | None = None
    rhyme_group: str | None = None  # the 平水韻 group every rhyme position shares
    tone_pattern: str | None = None  # e.g. 平起首句入韻
    tone_conformance: float | None = None  # the share of 平仄 positions the pattern fixes that the poem keeps
    score: float | None = None

    @classmethod
    def of(cls, record: dict) -> PoemResult:
        return cls(**{**_known(cls, record), "lines": tuple(record.get("lines") or ())})


@dataclass(frozen=True)
class CoupletResult:
    """One couplet: the 上联 as given (in the output's script), the 下联 written, and the checks
    `tangshi metrics --couplet` reports (positions whose 平仄 are opposed, of those checked)."""

    first: str
    second: str
    text: str
    layout_ok: bool
    opposed: int
    checked: int
    shared: tuple[str, ...]
    mirrored: bool
    ends_ping: bool
    first_ends_ze: bool
    score: float | None = None

    @classmethod
    def of(cls, record: dict) -> CoupletResult:
        return cls(**{**_known(cls, record), "shared": tuple(record.get("shared") or ())})


def _known(cls, record: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in record.items() if k in names}


class Poet:
    """A loaded model and its vocabulary: `write` poems, `couplet` for a 上联. Thread-safe for
    decoding: nothing in it changes after loading."""

    def __init__(self, model: PoetryLM, vocab: Vocab, checkpoint: Path | None = None):
        self.model, self.vocab, self.checkpoint = model, vocab, checkpoint

    def records(self, request: PoemRequest | CoupletRequest) -> tuple[Iterator[dict], dict]:
        """The request's records as `--json` prints them, streamed, and the fields that follow them."""
        return records(self.model, self.vocab, request)

    def write(self, request: PoemRequest | None = None, **settings) -> list[PoemResult]:
        """The poems of `request` (or of `PoemRequest(**settings)`), best first with candidates."""
        task = PoemTask(self.model, self.vocab, request if request is not None else PoemRequest(**settings))
        return [PoemResult.of(r) for r in task.stream()]

    def couplet(self, request: CoupletRequest | None = None, **settings) -> list[CoupletResult]:
        """The 下联 of `request.first` (or of `CoupletRequest(**settings)`)."""
        task = CoupletTask(self.model, self.vocab, request if request is not None else CoupletRequest(**settings))
        return [CoupletResult.of(r) for r in task.stream()]


def load(checkpoint: str | Path | None = None, device: str = "cpu") -> Poet:
    """A `Poet` over a checkpoint folder (default: the bundled model)."""
    path = Path(checkpoint) if checkpoint is not None else bundled_model_path()
    model, vocab, _ = load_checkpoint(path, device=device)
    return Poet(model, vocab, path)
