"""The model shipped under models/: offline generation and a hand-checked eval."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from conftest import SHARED_POEMS
from tangshi.cli.main import main
from tangshi.model.bundled import bundled_model_path, rebuild_dev_split
from tangshi.model.checkpoint import load_checkpoint
from tangshi.verse.prosody import FORMS, check_form, rhyme_ok


def test_bundled_model_is_small_and_complete():
    path = bundled_model_path()
    names = sorted(p.name for p in path.iterdir())
    assert names == ["MODEL_CARD.md", "config.json", "model.safetensors", "vocab.json"]
    assert sum(p.stat().st_size for p in path.iterdir()) <= 20 * 1024 * 1024


def test_generates_offline_without_a_data_folder(tmp_path):
    """A fresh process in an empty folder (no data/, no network needed) writes a valid 五言绝句."""
    env = {k: v for k, v in os.environ.items() if k != "TANGSHI_MODEL"}
    p = subprocess.run(
        [sys.executable, "-m", "tangshi", "generate", "--form", "wujue", "--n", "3", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    poems = [q["text"] for q in json.loads(p.stdout)["poems"]]
    assert len(poems) == 3
    assert all(check_form(t, FORMS["wujue"]) and rhyme_ok(t, FORMS["wujue"]) for t in poems)
    assert not (tmp_path / "data").exists()


@pytest.mark.skipif(not SHARED_POEMS.exists(), reason="../shared poems not present")
def test_eval_matches_perplexity_by_hand(capsys):
    """`tangshi eval` on 6 dev poems = exp(mean −log p) computed here from the model's log-probs; for a titled
    model, both the poems read after their titles and without them (the title's positions carry no loss)."""
    assert main(["eval", "--source", str(SHARED_POEMS), "--limit", "6", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    model, vocab, meta = load_checkpoint(bundled_model_path())
    for titled in (True, False) if model.config.titles else (False,):
        split = rebuild_dev_split(meta, vocab, SHARED_POEMS, titled=titled)
        nll, n = 0.0, 0
        with torch.no_grad():
            for row in range(6):
                k = int(split.lengths[row])
                ids = split.inputs[row, :k][None]  # <START> [title <START>] c_1 … c_{k-1}
                logp = F.log_softmax(model(ids)[0][0].double(), -1)
                tgt = split.targets[row, :k]  # [<PAD> for the title] c_1 … c_{k-1} <EOS>
                real = tgt != vocab.pad_id
                nll -= float(logp[torch.arange(k), tgt][real].sum())
                n += int(real.sum())
        want = got if titled or not model.config.titles else got["untitled"]
        assert got["tokens"] == n
        assert math.isclose(want["dev_ppl"], math.exp(nll / n), rel_tol=1e-5)
