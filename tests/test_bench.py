"""`tangshi bench` on a tiny corpus: the schema, and token counts that are exact."""

import json

from tangshi.cli.main import main
from tangshi.data.splits import load_split
from tangshi.data.vocab import Vocab


def test_bench_json(tmp_path, tiny_prepared, capsys):
    assert (
        main(
            [
                "bench",
                "--data",
                str(tiny_prepared),
                "--repeats",
                "1",
                "--warmup",
                "0",
                "--only",
                "seed,tangshi,nn_lstm,numpy",
                "--json",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in res["results"]]
    assert names == ["original", "tangshi", "nn_lstm", "numpy"]
    # 48 training poems = one batch of 48 quatrains, 24 characters + <EOS> each
    vocab = Vocab.load(tiny_prepared / "vocab.json")
    split = load_split(tiny_prepared, "train", vocab)
    assert int(split.lengths.sum()) == 48 * 25
    for r in res["results"]:
        assert r["ms"] > 0
        # tokens/s is rounded to an integer (±0.5) from the unrounded time; ms is rounded to 3 decimals (±0.0005 ms)
        tok_s = 48 * 25 / (r["ms"] / 1e3)
        assert abs(r["real_tokens_per_s"] - tok_s) <= 0.5 + tok_s * 0.0005 / r["ms"] + 1e-9
    assert res["results"][0]["speedup_vs_original"] == 1.0


def test_bench_says_what_it_ran(tiny_prepared, capsys):
    import torch

    assert (
        main(
            [
                "bench",
                "--data",
                str(tiny_prepared),
                "--repeats",
                "1",
                "--warmup",
                "0",
                "--only",
                "tangshi,nn_lstm,layer_nn",
                "--dtype",
                "bf16",
                "--json",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res["dtype"] == "bf16" and res["bf16_autocast"] is True and res["threads"] == torch.get_num_threads()
    assert set(res["cpu_flags"]) == {"amx", "avx512_bf16", "avx512", "avx512_vnni", "avx2"}
    assert res["cpu_flags"]["amx"] == torch.cpu._is_amx_tile_supported()
    kinds = {r["name"]: (r["kernel"], r["dtype"]) for r in res["results"]}
    from tangshi.model import kernels

    cell = "compiled gate arithmetic" if kernels.detect().compiled else "gate arithmetic as torch ops"
    loss = "loss: log_softmax + nll_loss under autocast"  # bf16 forced: the fused loss is for fp32
    assert kinds == {
        "tangshi": (f"tangshi (hand-written BPTT), {cell}, {loss}", "bf16"),
        "nn_lstm": (f"torch.nn.LSTM, {loss}", "bf16"),
        "layer_nn": ("torch.nn.LSTM", "fp32"),
    }
    assert res["fused_cell"] == kernels.detect().why


def test_bench_names_the_fp32_loss_path(tiny_prepared, capsys, monkeypatch):
    from tangshi.model import kernels

    assert (
        main(
            [
                "bench",
                "--data",
                str(tiny_prepared),
                "--repeats",
                "1",
                "--warmup",
                "0",
                "--only",
                "nn_lstm",
                "--dtype",
                "fp32",
                "--json",
            ]
        )
        == 0
    )
    (row,) = json.loads(capsys.readouterr().out)["results"]
    compiled = "compiled" if kernels.detect().compiled else "torch ops"
    monkeypatch.setattr(kernels, "_state", {"kernels": kernels.Kernels.off()})  # this process: no kernels
    assert (
        main(
            [
                "bench",
                "--data",
                str(tiny_prepared),
                "--repeats",
                "1",
                "--warmup",
                "0",
                "--only",
                "nn_lstm",
                "--dtype",
                "fp32",
                "--json",
            ]
        )
        == 0
    )
    (ops,) = json.loads(capsys.readouterr().out)["results"]
    assert (row["kernel"], ops["kernel"]) == (
        f"torch.nn.LSTM, loss: fused, {compiled}",
        "torch.nn.LSTM, loss: fused, torch ops",
    )
