"""tangshi: a character-level LSTM over the Complete Tang Poems (全唐诗), and a poem writer on it.

    import tangshi
    poet = tangshi.load()
    poems = poet.write(tangshi.PoemRequest(form="qijue", acrostic="春夏秋冬"))

The names below load on first use (PEP 562): `import tangshi` stays light, and `tangshi --help`
never imports torch (about 1.5 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_PUBLIC = {
    "load": "tangshi.api",
    "Poet": "tangshi.api",
    "PoemResult": "tangshi.api",
    "CoupletResult": "tangshi.api",
    "PoemRequest": "tangshi.decode.request",
    "CoupletRequest": "tangshi.decode.request",
    "TangshiError": "tangshi.errors",
}
__all__ = [
    "CoupletRequest",
    "CoupletResult",
    "PoemRequest",
    "PoemResult",
    "Poet",
    "TangshiError",
    "__version__",
    "load",
]

if TYPE_CHECKING:
    from tangshi.api import CoupletResult, PoemResult, Poet, load
    from tangshi.decode.request import CoupletRequest, PoemRequest
    from tangshi.errors import TangshiError


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'tangshi' has no attribute {name!r}")
