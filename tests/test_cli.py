"""The CLI end to end on a tiny corpus, and bad input: one line, non-zero exit, nothing overwritten."""

import json
import subprocess
import sys

import pytest

from tangshi.cli.main import main


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_end_to_end(tmp_path, tiny_source, capsys):
    prep = tmp_path / "prep"
    code, out, _ = run(
        ["data", "prepare", "--source", str(tiny_source), "--out", str(prep), "--poems", "all", "--json"], capsys
    )
    assert code == 0
    s = json.loads(out)
    assert {"poems_read", "dropped", "in_range", "train", "dev", "vocab_size", "dev_oov_rate", "out"} <= s.keys()
    assert (s["poems_read"], s["train"], s["dev"]) == (60, 48, 12)
    code, out, _ = run(
        [
            "train",
            "--data",
            str(prep),
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--embed-dim",
            "16",
            "--hidden-dim",
            "16",
            "--quiet",
        ],
        capsys,
    )
    assert code == 0 and "best dev perplexity" in out
    code, out, _ = run(["eval", "--checkpoint", str(tmp_path / "run" / "best"), "--data", str(prep), "--json"], capsys)
    ev = json.loads(out)
    assert code == 0 and {"dev_ppl", "dev_nll", "original_loss", "original_ppl", "tokens"} <= ev.keys()
    assert ev["tokens"] == 12 * 25  # 12 dev quatrains × (24 characters + <EOS>)
    code, out, _ = run(
        ["generate", "--checkpoint", str(tmp_path / "run" / "best"), "--start", "春", "--strategy", "seed", "--json"],
        capsys,
    )
    poem = json.loads(out)["poems"][0]["text"]
    assert code == 0 and poem.startswith("春") and len(poem) == 95
    code, out, _ = run(
        [
            "generate",
            "--checkpoint",
            str(tmp_path / "run" / "best"),
            "--start",
            "春",
            "--n",
            "3",
            "--seed",
            "1",
            "--json",
        ],
        capsys,
    )
    poems = json.loads(out)["poems"]
    assert code == 0 and len(poems) == 3 and all(p["text"].startswith("春") for p in poems)
    code2, out2, _ = run(
        [
            "generate",
            "--checkpoint",
            str(tmp_path / "run" / "best"),
            "--start",
            "春",
            "--n",
            "3",
            "--seed",
            "1",
            "--json",
        ],
        capsys,
    )
    assert out2 == out  # --seed makes sampling reproducible


@pytest.fixture
def trained(tmp_path, tiny_prepared, capsys):
    code, _, _ = run(
        [
            "train",
            "--data",
            str(tiny_prepared),
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--embed-dim",
            "8",
            "--hidden-dim",
            "8",
            "--quiet",
        ],
        capsys,
    )
    assert code == 0
    return tmp_path / "run" / "best"


def _one_line_error(code, err, pattern):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tangshi: error:") and pattern in lines[0], err


def test_missing_data_folder(tmp_path, capsys):
    code, _, err = run(["data", "prepare", "--source", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], capsys)
    _one_line_error(code, err, "data folder not found")
    assert not (tmp_path / "o").exists()


def test_malformed_json_overwrites_nothing(tmp_path, tiny_source, capsys):
    out = tmp_path / "prep"
    assert run(["data", "prepare", "--source", str(tiny_source), "--out", str(out), "--poems", "all"], capsys)[0] == 0
    before = (out / "train.txt").read_bytes()
    (tiny_source / "poet.tang.1000.json").write_text('[{"paragraphs": ["春', encoding="utf-8")
    code, _, err = run(
        ["data", "prepare", "--source", str(tiny_source), "--out", str(out), "--poems", "all", "--replace"], capsys
    )
    _one_line_error(code, err, "malformed JSON")
    assert (out / "train.txt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prep", "raw"]  # no temp folder left behind


def test_unknown_start_character(trained, capsys):
    code, out, err = run(["generate", "--checkpoint", str(trained), "--start", "龘"], capsys)
    _one_line_error(code, err, "龘")
    assert out == ""


def test_truncated_checkpoint(trained, capsys):
    w = trained / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    code, _, err = run(["generate", "--checkpoint", str(trained), "--start", "春"], capsys)
    _one_line_error(code, err, "corrupt checkpoint")


def test_missing_train_data(tmp_path, capsys):
    code, _, err = run(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r"), "--quiet"], capsys)
    _one_line_error(code, err, "prepared data folder not found")
    assert not (tmp_path / "r").exists()


def test_no_traceback_in_a_real_process(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "tangshi", "eval", "--checkpoint", str(tmp_path / "x")], capture_output=True, text=True
    )
    assert p.returncode == 2
    assert p.stderr.strip() == f"tangshi: error: checkpoint not found: {tmp_path / 'x'}"


def test_threads_limit_numpy_blas_too():
    """--threads N sets torch's threads and the BLAS that NumPy links (the NumPy twin's products)."""
    import threadpoolctl
    import torch

    from tangshi.cli.common import set_threads

    before = torch.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=None):  # restores every pool afterwards
        set_threads(1)
        blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
        assert torch.get_num_threads() == 1 and blas and all(p["num_threads"] == 1 for p in blas)
    torch.set_num_threads(before)
