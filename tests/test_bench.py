"""`tangshi bench` on a tiny corpus: the schema, and token counts that are exact."""

import json


from tangshi.cli import main
from tangshi.splits import load_split
from tangshi.vocab import Vocab


def test_bench_json(tmp_path, tiny_prepared, capsys):
    assert main(["bench", "--data", str(tiny_prepared), "--repeats", "1", "--warmup", "0",
                 "--only", "seed,tangshi,nn_lstm,numpy", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in res["results"]]
    assert names == ["seed", "tangshi", "nn_lstm", "numpy"]
    # 48 training poems = one batch of 48 quatrains, 24 characters + <EOS> each
    vocab = Vocab.load(tiny_prepared / "vocab.json")
    split = load_split(tiny_prepared, "train", vocab)
    assert int(split.lengths.sum()) == 48 * 25
    for r in res["results"]:
        assert r["ms"] > 0
        # tokens/s is rounded to an integer (±0.5) from the unrounded time; ms is rounded to 3 decimals (±0.0005 ms)
        tok_s = 48 * 25 / (r["ms"] / 1e3)
        assert abs(r["real_tokens_per_s"] - tok_s) <= 0.5 + tok_s * 0.0005 / r["ms"] + 1e-9
    assert res["results"][0]["speedup_vs_seed"] == 1.0
