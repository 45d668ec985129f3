"""The model shipped in the repository under models/, used when no --checkpoint is given."""

from __future__ import annotations

import os
from pathlib import Path

from . import corpus
from .errors import TangshiError
from .train import Split
from .batches import encode_poems
from .vocab import Vocab

BUNDLED_NAME = "tangshi-default"
ENV_VAR = "TANGSHI_MODEL"  # overrides the bundled model's path


def bundled_model_path() -> Path:
    """models/tangshi-default in the source tree (an editable install), or $TANGSHI_MODEL."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    here = Path(__file__).resolve().parent
    for root in (here.parent.parent, Path.cwd()):
        cand = root / "models" / BUNDLED_NAME
        if (cand / "config.json").exists():
            return cand
    raise TangshiError(f"no --checkpoint given and no bundled model found (models/{BUNDLED_NAME}); "
                       f"train one with `tangshi train` or set {ENV_VAR}")


def rebuild_dev_split(meta: dict, vocab: Vocab, source: Path) -> Split:
    """Rebuild a checkpoint's own dev split from the poem files and the recorded sample and seed."""
    data_meta = meta.get("train", {}).get("data_meta")
    if not data_meta:
        raise TangshiError("the checkpoint does not record its data split; pass --data")
    n = None if data_meta["sample"] == "all" else int(data_meta["sample"])
    poems, _ = corpus.load_poems(Path(source))
    train, dev = corpus.sample_and_split(poems, n, int(data_meta["seed"]))
    if len(train) != data_meta["train"] or len(dev) != data_meta["dev"]:
        raise TangshiError(f"the poems in {source} do not rebuild the checkpoint's split "
                           f"({len(train)}/{len(dev)} vs {data_meta['train']}/{data_meta['dev']})")
    if Vocab.build(train) != vocab:
        raise TangshiError(f"the poems in {source} do not rebuild the checkpoint's vocabulary")
    return Split(*encode_poems(dev, vocab))
