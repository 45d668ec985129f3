"""The character vocabulary: sorted training characters, then the assignment's four specials.

Order (the assignment's): every character of the training split, sorted by code point,
then ``<EOS>``, ``<OOV>``, ``<START>``, ``<PAD>``. Saved as JSON, never pickle. `Vocab.spell`
reads a user's text as the vocabulary spells it (simplified input as traditional, the corpus's marks).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tangshi.errors import TangshiError
from tangshi.text import as_corpus_marks, to_traditional

EOS, OOV, START, PAD = "<EOS>", "<OOV>", "<START>", "<PAD>"
SPECIALS = (EOS, OOV, START, PAD)  # the assignment's order, appended after the characters
VOCAB_FORMAT = "tangshi-vocab/1"


@dataclass(frozen=True)
class Vocab:
    itos: tuple[str, ...]
    # built from itos by __post_init__; not a constructor argument, and left out of repr, ==, and hash
    stoi: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if tuple(self.itos[-4:]) != SPECIALS:
            raise TangshiError(f"vocabulary must end with {', '.join(SPECIALS)}")
        if len(set(self.itos)) != len(self.itos):
            raise TangshiError("vocabulary has repeated entries")
        object.__setattr__(self, "stoi", {s: i for i, s in enumerate(self.itos)})

    # ids of the specials
    @property
    def eos_id(self) -> int:
        return self.stoi[EOS]

    @property
    def oov_id(self) -> int:
        return self.stoi[OOV]

    @property
    def start_id(self) -> int:
        return self.stoi[START]

    @property
    def pad_id(self) -> int:
        return self.stoi[PAD]

    @property
    def chars(self) -> tuple[str, ...]:
        """The real characters (specials excluded)."""
        return self.itos[: -len(SPECIALS)]

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, ch: str) -> bool:
        return ch in self.stoi and ch not in SPECIALS

    @classmethod
    def build(cls, poems: list[str]) -> Vocab:
        chars = sorted(set("".join(poems)))
        return cls(tuple(chars) + SPECIALS)

    def spell(self, text: str | None, what: str, keep: str = "") -> str:
        """`text` as the vocabulary spells it (whitespace dropped). The one script rule: a text is read
        as simplified when it holds a character the vocabulary lacks whose traditional form it knows
        (尽, 两, 个); a simplified text is converted to traditional, the corpus's script, as a whole
        (OpenCC s2t with its phrase context, so 两个黄鹂 is read 兩個黃鸝 and 白日依山尽，黄河 is read
        白日依山盡，黃河), a character whose converted form the vocabulary lacks staying as typed. A
        traditional text is kept as typed (咸陽 stays 咸陽, 床前 stays 床前). A character known in
        neither form is a clear error. Marks are read as the corpus writes them (text.as_corpus_marks:
        ',' and '；' are '，', '.' and '？' are '。'). The output is then written in the asked script.
        Characters in `keep` (a template's holes) pass as they are."""
        text = as_corpus_marks("".join((text or "").split()))
        converted = to_traditional(text)
        if len(converted) != len(text):  # OpenCC maps character to character; never expected
            converted = "".join(to_traditional(ch) for ch in text)
        simplified = any(orig not in self and ch in self for orig, ch in zip(text, converted))
        out = []
        for orig, ch in zip(text, converted):
            if orig in keep:
                out.append(orig)
            elif simplified and ch in self:
                out.append(ch)
            elif orig in self:
                out.append(orig)
            else:
                shown = f"'{orig}'" if orig == ch else f"'{orig}' (traditional '{ch}')"
                raise TangshiError(f"character {shown} in the {what} is not in the model's vocabulary")
        return "".join(out)

    def encode(self, text: str) -> list[int]:
        """Characters → ids; unknown characters become <OOV>."""
        oov = self.oov_id
        return [self.stoi.get(ch, oov) if ch not in SPECIALS else oov for ch in text]

    def decode(self, ids, stop_at_eos: bool = True) -> str:
        out = []
        for i in ids:
            tok = self.itos[int(i)]
            if tok == EOS and stop_at_eos:
                break
            if tok in (PAD, START):
                continue
            out.append(tok)
        return "".join(out)

    def id_of(self, ch: str) -> int:
        """The id of one real character, or a clear error naming it."""
        if ch not in self:
            raise TangshiError(f"character {ch!r} is not in the model's vocabulary")
        return self.stoi[ch]

    def to_json(self) -> dict:
        return {"format": VOCAB_FORMAT, "itos": list(self.itos)}

    @classmethod
    def from_json(cls, obj) -> Vocab:
        if not isinstance(obj, dict) or obj.get("format") != VOCAB_FORMAT or not isinstance(obj.get("itos"), list):
            raise TangshiError(f"not a tangshi vocabulary (expected format {VOCAB_FORMAT!r})")
        bad = next((i for i, s in enumerate(obj["itos"]) if not isinstance(s, str) or not s), None)
        if bad is not None:
            raise TangshiError(f"not a tangshi vocabulary: entry {bad} is {obj['itos'][bad]!r}, not a character")
        return cls(tuple(obj["itos"]))

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Vocab:
        path = Path(path)
        if not path.exists():
            raise TangshiError(f"vocabulary file not found: {path}")
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise TangshiError(f"malformed vocabulary JSON in {path}: {e}") from None
        except OSError as e:
            raise TangshiError(f"cannot read {path}: {e.strerror}") from None
        return cls.from_json(obj)
