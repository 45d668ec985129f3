"""Tests for tangshi.constraints: decode with random logits through the masks
and check every poem against the form, rhyme, tone and repeat rules, using
tangshi.prosody (the package's rhyme table) as the judge."""

import math

import pytest
import torch

from tangshi.decode.constraints import (
    DecodeState,
    FormConstraint,
    FreeConstraint,
    SpecialIds,
    build_constraint,
    make_constraint,
)
from tangshi.errors import TangshiError
from tangshi.text import is_han, split_clauses
from tangshi.verse import prosody
from tangshi.verse.prosody import FORMS, PING, ZE

SPECIALS = ["<EOS>", "<OOV>", "<START>", "<PAD>"]
UNKNOWN = "乒"  # a Han character missing from the 平水韻 table
POEM = "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"
EXTRA = POEM + "春夏秋冬花鳥風月東南西北雨看" + "春風不度玉門關秋月還臨白帝城"


def make_itos(per_group=12, n_ze=200, extra=""):
    """Sorted characters (then the 4 specials), like tangshi.vocab.Vocab."""
    table = prosody.rhyme_table()
    chars = set()
    for g in table.groups:
        chars.update(table.group_chars[g][:per_group])
    ze_only = [c for c, t in table.char_tones.items() if t == frozenset({ZE})]
    chars.update(ze_only[:n_ze])
    chars.update("，。" + UNKNOWN + EXTRA + extra)
    return sorted(chars) + SPECIALS


ITOS = make_itos()
V = len(ITOS)
SP = SpecialIds.from_itos(ITOS)
PUNCT_IDS = [ITOS.index("，"), ITOS.index("。")]


def decode(c, batch, seed, *, greedy_logits=None):
    """Sample ``batch`` poems through ``c`` with random logits that push hard for
    specials and punctuation; check each step's mask and probabilities."""
    g = torch.Generator().manual_seed(seed)
    st = c.new_state(batch)
    out = [[] for _ in range(batch)]
    for _ in range(c.max_len):
        if greedy_logits is not None:
            logits = greedy_logits.expand(batch, V).clone()
        else:
            logits = torch.randn(batch, V, generator=g) * 3
            logits[:, [SP.eos, SP.oov, SP.start, SP.pad] + PUNCT_IDS] += 8.0
        m = c.mask(st)
        assert m.dtype == torch.bool and m.shape == (batch, V)
        assert m.any(dim=1).all(), "dead end: a row has no allowed token"
        probs = c.apply(logits, st).softmax(-1)
        assert (probs[~m] == 0).all()
        assert torch.allclose(probs.sum(-1), torch.ones(batch))
        if greedy_logits is not None:
            tok = probs.argmax(-1)
        else:
            tok = torch.multinomial(probs, 1, generator=g).squeeze(1)
        c.advance(st, tok)
        for b, t in enumerate(tok.tolist()):
            out[b].append(t)
    assert c.finished(st)
    return out


def to_text(ids):
    assert ids[-1] == SP.eos and SP.eos not in ids[:-1]
    return "".join(ITOS[i] for i in ids[:-1])


def matches_some_pattern(text, form):
    bodies = [b for b, _ in split_clauses(text)]
    for p in prosody.tone_patterns(form):
        if all(
            req == "中" or req in prosody.tones(ch)
            for body, line in zip(bodies, p.lines)
            for ch, req in zip(body, line)
        ):
            return True
    return False


def check_poem(text, form, *, acrostic=None, start="", rhyme=True, strict=False, no_repeat=True):
    form = FORMS[form]
    assert prosody.check_form(text, form), text
    parts = split_clauses(text)
    bodies = [b for b, _ in parts]
    assert len(bodies) == form.lines
    assert all(len(b) == form.chars_per_line for b in bodies)
    assert [e for _, e in parts] == ["，" if k % 2 == 0 else "。" for k in range(form.lines)]
    assert all(ch in ITOS and ch not in SPECIALS and is_han(ch) for b in bodies for ch in b)
    assert text.startswith(start)
    if acrostic:
        assert "".join(b[0] for b in bodies) == acrostic
    ends = [b[-1] for b in bodies[1::2]]
    if rhyme:
        assert prosody.shared_groups(ends), text
        assert prosody.rhyme_ok(text, form)
    if strict:
        assert matches_some_pattern(text, form), text
        assert prosody.tone_conformance(text, form) == 1.0
    if no_repeat:
        assert len(set(bodies)) == len(bodies), text
        if rhyme:
            assert len(set(ends)) == len(ends), text


# --------------------------------------------------------------- decoding


@pytest.mark.parametrize("form", list(FORMS))
def test_plain_form(form):
    c = make_constraint(ITOS, SP, form, rhyme=False, tone="off", no_repeat=False)
    for ids in decode(c, 50, seed=1):
        check_poem(to_text(ids), form, rhyme=False, no_repeat=False)


@pytest.mark.parametrize("form", list(FORMS))
def test_rhyme_and_no_repeat(form):
    c = make_constraint(ITOS, SP, form, rhyme=True, tone="off", no_repeat=True)
    for ids in decode(c, 50, seed=2):
        check_poem(to_text(ids), form, rhyme=True)


@pytest.mark.parametrize("form", list(FORMS))
def test_strict_tone_rhyme_acrostic(form):
    acrostic = "春夏秋冬花鳥風月"[: FORMS[form].lines]
    c = make_constraint(ITOS, SP, form, acrostic=acrostic, rhyme=True, tone="strict", no_repeat=True)
    texts = [to_text(ids) for ids in decode(c, 50, seed=3)]
    for text in texts:
        check_poem(text, form, acrostic=acrostic, rhyme=True, strict=True)
        assert UNKNOWN not in text  # unknown tone never fits a checked slot in strict mode
    # both 平起 and 仄起 openings occur: the pattern is chosen by the sample
    openings = {prosody.best_pattern(t, form)[0].name[:2] for t in texts}
    assert openings == {"平起", "仄起"}


@pytest.mark.parametrize("form", ["wujue", "qilv"])
def test_start_text(form):
    n = FORMS[form].chars_per_line
    start = "春風"
    c = make_constraint(ITOS, SP, form, start=start, rhyme=True, tone="strict")
    for ids in decode(c, 50, seed=4):
        check_poem(to_text(ids), form, start=start, strict=True)
    full = "".join([t for t in ITOS if is_han(t)][:n])  # a whole first line plus its comma
    c = make_constraint(ITOS, SP, form, start=full + "，", rhyme=True, tone="off")
    assert c.start == full + "，"
    for ids in decode(c, 20, seed=5):
        check_poem(to_text(ids), form, start=full + "，")


def test_start_and_acrostic_agree():
    c = make_constraint(ITOS, SP, "wujue", start="春風", acrostic="春夏秋冬")
    for ids in decode(c, 20, seed=6):
        check_poem(to_text(ids), "wujue", start="春風", acrostic="春夏秋冬")


def test_simplified_start_is_converted():
    assert "東" in ITOS and "东" not in ITOS
    c = make_constraint(ITOS, SP, "wujue", start="东风", acrostic="东南西北")
    assert c.start == "東風" and c.acrostic == "東南西北"
    for ids in decode(c, 5, seed=7):
        assert to_text(ids).startswith("東風")


def test_masked_probabilities_exactly_zero_and_ratios_kept():
    c = make_constraint(ITOS, SP, "wujue", rhyme=True, tone="strict")
    g = torch.Generator().manual_seed(0)
    st = c.new_state(8)
    for step in range(c.max_len):
        logits = torch.randn(8, V, generator=g)
        m = c.mask(st)
        p = logits.masked_fill(~m, float("-inf")).softmax(-1)
        assert (p[~m] == 0).all()
        for b in range(8):
            ref = logits[b, m[b]].softmax(-1)  # model probabilities renormalised
            assert torch.allclose(p[b, m[b]], ref)
        c.advance(st, torch.multinomial(p, 1, generator=g).squeeze(1))


def test_no_repeat_against_adversarial_greedy():
    # the same logits every step: greedy decoding wants to repeat everything
    g = torch.Generator().manual_seed(11)
    fixed = torch.randn(1, V, generator=g)
    c = make_constraint(ITOS, SP, "wulv", rhyme=True, tone="strict", no_repeat=True)
    (ids,) = decode(c, 1, seed=0, greedy_logits=fixed)
    check_poem(to_text(ids), "wulv", strict=True)
    # the test can fail: without no_repeat the same lines come back
    c = make_constraint(ITOS, SP, "wulv", rhyme=True, tone="strict", no_repeat=False)
    (ids,) = decode(c, 1, seed=0, greedy_logits=fixed)
    bodies = [b for b, _ in split_clauses(to_text(ids))]
    assert len(set(bodies)) < len(bodies)


def test_tight_vocabulary_never_dead_ends():
    # exactly one viable 平 group with n_rhymes + lines - 1 = 5 characters (wujue)
    table = prosody.rhyme_table()
    dong = [
        c
        for c in table.group_chars["上平聲一東"]
        if prosody.tones(c) == {PING} and prosody.rhyme_groups(c) == {"上平聲一東"}
    ][:5]
    others = [table.group_chars[g][0] for g in table.groups[1:6]]  # 1 char in 5 groups
    ze = [c for c, t in table.char_tones.items() if t == frozenset({ZE})][:6]
    itos = sorted(set(dong + others + ze + ["，", "。"])) + SPECIALS
    c = make_constraint(itos, None, "wujue", rhyme=True, tone="strict", no_repeat=True)
    v = len(itos)
    for seed in range(10):
        g = torch.Generator().manual_seed(seed)
        fixed = torch.randn(1, v, generator=g) * 5
        st = c.new_state(5)
        toks = [[] for _ in range(5)]
        for _ in range(c.max_len):
            m = c.mask(st)
            assert m.any(1).all()
            logits = fixed.expand(5, v) + torch.randn(5, v, generator=g)
            tok = logits.masked_fill(~m, float("-inf")).argmax(-1)
            c.advance(st, tok)
            for b, t in enumerate(tok.tolist()):
                toks[b].append(t)
        for ids in toks:
            text = "".join(itos[i] for i in ids[:-1])
            bodies = [b for b, _ in split_clauses(text)]
            assert prosody.check_form(text, "wujue") and len(set(bodies)) == 4
            assert {b[-1] for b in bodies[1::2]} <= set(dong)
            assert matches_some_pattern(text, "wujue")
    # one character fewer in the group: impossible with no_repeat, fine without
    itos4 = sorted(set(dong[:4] + others + ze + ["，", "。"])) + SPECIALS
    with pytest.raises(TangshiError, match="rhyme group"):
        make_constraint(itos4, None, "wujue", rhyme=True, no_repeat=True)
    make_constraint(itos4, None, "wujue", rhyme=True, no_repeat=False)
    make_constraint(itos4, None, "wujue", rhyme=False, no_repeat=True)


def test_loose_bias():
    c = make_constraint(ITOS, SP, "wujue", rhyme=False, tone="loose", tone_penalty=3.0)
    st = c.new_state(1)
    # position 1 (not checked): no tone masking, no penalty
    assert torch.equal(c.bias(st), torch.zeros(1, V))
    c.advance(st, [ITOS.index("白")])
    # position 2 (checked, all four patterns alive): any known tone fits, unknown penalised
    b = c.bias(st)[0]
    assert b[ITOS.index(UNKNOWN)] == -3.0
    assert b[ITOS.index("日")] == 0 and b[ITOS.index("山")] == 0
    m = c.mask(st)[0]
    assert m[ITOS.index(UNKNOWN)]  # loose masks nothing by tone
    c.advance(st, [ITOS.index("日")])  # 仄: 仄起 patterns are best now
    c.advance(st, [ITOS.index("依")])
    b = c.bias(st)[0]  # position 4 needs 平
    assert b[ITOS.index("山")] == 0 and b[ITOS.index("月")] == -3.0
    assert b[SP.eos] == 0 and b[PUNCT_IDS[0]] == 0
    logits = torch.zeros(1, V)
    out = c.apply(logits, st)
    assert out[0, ITOS.index("月")] == -3.0 and out[0, ITOS.index("山")] == 0
    assert math.isinf(out[0, PUNCT_IDS[0]].item())
    # a mismatch does not break anything: 月 (仄) at position 4 is allowed, patterns re-ranked
    c.advance(st, [ITOS.index("月")])
    assert c.mask(st)[0].any()
    assert make_constraint(ITOS, SP, "wujue", tone="strict").bias(c.new_state(1)) is None


def test_strict_mask_content():
    c = make_constraint(ITOS, SP, "wujue", rhyme=True, tone="strict")
    m = c.mask([[]])[0]
    han = [i for i, t in enumerate(ITOS) if is_han(t)]
    assert m.nonzero().squeeze(1).tolist() == han  # position 1: any Han character
    m = c.mask([[SP.start, ITOS.index("白")]])[0]  # leading <START> is skipped
    assert m[ITOS.index("日")] and m[ITOS.index("山")] and m[ITOS.index("看")]
    assert not m[ITOS.index(UNKNOWN)]
    m = c.mask([[ITOS.index(ch) for ch in "白日依"]])[0]  # 仄起: position 4 must be 平
    assert m[ITOS.index("山")] and m[ITOS.index("看")] and not m[ITOS.index("月")]
    prefix = [ITOS.index(ch) for ch in "白日依山盡，黃河入海"]
    m = c.mask([prefix])[0]  # rhyme position 1: 平 characters of viable groups
    allowed = {ITOS[i] for i in m.nonzero().squeeze(1).tolist()}
    assert allowed and all(prosody.rhyme_groups(ch) for ch in allowed)
    assert "月" not in allowed
    prefix += [ITOS.index("流"), PUNCT_IDS[1]] + [ITOS.index(ch) for ch in "欲窮千里目，更上一層"]
    m = c.mask([prefix])[0]
    allowed = {ITOS[i] for i in m.nonzero().squeeze(1).tolist()}
    assert allowed and all("下平聲十一尤" in prosody.rhyme_groups(ch) for ch in allowed)
    assert "流" not in allowed  # no rhyme character twice
    m = c.mask([prefix + [ITOS.index("樓")]])[0]
    assert m.tolist() == [i == PUNCT_IDS[1] for i in range(V)]


def test_punctuation_and_eos_positions():
    c = make_constraint(ITOS, SP, "wujue", rhyme=False, no_repeat=False)
    ids = [ITOS.index(ch) for ch in "白日依山盡"]
    assert c.mask([ids])[0].tolist() == [i == PUNCT_IDS[0] for i in range(V)]
    full = [ITOS.index(ch) for ch in POEM]
    assert c.mask([full])[0].tolist() == [i == SP.eos for i in range(V)]
    assert c.mask([full + [SP.eos]])[0].tolist() == [i == SP.eos for i in range(V)]
    # inside lines: no specials, no punctuation
    m = c.mask([full[:3]])[0]
    for i in [SP.eos, SP.oov, SP.start, SP.pad] + PUNCT_IDS:
        assert not m[i]


def test_prefix_api_matches_state_api_and_select():
    c = make_constraint(ITOS, SP, "qijue", rhyme=True, tone="strict")
    g = torch.Generator().manual_seed(5)
    st = c.new_state(6)
    prefixes = [[SP.start] for _ in range(6)]
    for _ in range(c.max_len):
        m = c.mask(st)
        assert torch.equal(m, c.mask(prefixes))
        tok = torch.multinomial(m.float(), 1, generator=g).squeeze(1)
        c.advance(st, tok)
        for p, t in zip(prefixes, tok.tolist()):
            p.append(t)
    sel = st.select(torch.tensor([2, 2, 0]))
    assert isinstance(sel, DecodeState) and len(sel) == 3 and sel.done == [True] * 3
    half = c.replay([p[:10] for p in prefixes]).select([1, 1])
    assert torch.equal(c.mask(half)[0], c.mask(half)[1])


def test_advance_rejects_masked_token():
    c = make_constraint(ITOS, SP, "wujue")
    st = c.new_state(2)
    c.mask(st)
    with pytest.raises(ValueError, match="masked"):
        c.advance(st, [PUNCT_IDS[0], ITOS.index("東")])
    with pytest.raises(ValueError, match="masked"):
        c.advance(c.new_state(1), [SP.eos])  # no mask computed: per-row check
    one = c.new_state(1)
    c.mask(one)
    with pytest.raises(ValueError, match="masked"):
        c.advance(one, [PUNCT_IDS[0]])  # one row against its mask: the one-lookup path
    with pytest.raises(ValueError):
        c.replay([[ITOS.index("東"), PUNCT_IDS[1]]])


# ------------------------------------------------------------- free form


def test_free_constraint():
    itos = make_itos(extra="？")
    sp = SpecialIds.from_itos(itos)
    c = make_constraint(itos, sp, "free", rhyme=True, no_repeat=True)
    assert isinstance(c, FreeConstraint) and c.max_len is None
    m = c.mask([[]])[0]
    assert not m[sp.start] and not m[sp.pad] and not m[sp.oov] and m[sp.eos]
    assert m[itos.index("，")] and m[itos.index("東")]
    seps = [itos.index(ch) for ch in "，。？"]
    ids = [itos.index(ch) for ch in "東風，東"]
    m = c.mask([ids])[0]
    assert all(m[s] for s in seps)
    m = c.mask([ids + [itos.index("風")]])[0]  # 東風 would repeat
    assert not any(m[s] for s in seps) and not m[sp.eos] and m[itos.index("雨")]
    m = c.mask([ids + [itos.index("風"), itos.index("雨")]])[0]
    assert all(m[s] for s in seps)
    c2 = make_constraint(itos, sp, None, no_repeat=False)
    assert c2.mask([ids + [itos.index("風")]])[0][seps[0]]
    # start text is forced; decoding never produces START/PAD/OOV
    c3 = make_constraint(itos, sp, "free", start="春風，")
    g = torch.Generator().manual_seed(0)
    st = c3.new_state(20)
    out = [[] for _ in range(20)]
    for _ in range(30):
        logits = torch.randn(20, len(itos), generator=g)
        logits[:, [sp.oov, sp.start, sp.pad]] += 20
        tok = torch.multinomial(c3.apply(logits, st).softmax(-1), 1, generator=g).squeeze(1)
        c3.advance(st, tok)
        for b, t in enumerate(tok.tolist()):
            out[b].append(t)
    for ids in out:
        assert [itos[i] for i in ids[:3]] == list("春風，")
        assert not {sp.oov, sp.start, sp.pad} & set(ids)
        if sp.eos in ids:
            assert set(ids[ids.index(sp.eos) :]) == {sp.eos}


# ------------------------------------------------------- impossible requests


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(form="wujue", acrostic="春夏秋"), "acrostic"),
        (dict(form="wulv", acrostic="春夏秋冬"), "8 lines"),
        (dict(form="wujue", start="白日依山盡黃"), "line 1 is longer than 5 characters"),
        (dict(form="wujue", start="白日依山盡，黃河入海流，"), "line 2 of a 五言絕句 must end with '。', not '，'"),
        (dict(form="wujue", start="白日依山盡，黃河入海流。欲窮千里目，更上一層樓。更"), "longer than a whole"),
        (dict(form="wujue", start="白日，"), "has '，' after 2 characters of line 1"),
        (dict(form="wujue", start="白日依山盡。"), "must end with '，'"),
        (dict(form="wujue", start="白日ab"), "not a Chinese character"),
        (dict(form="wujue", start="白" + UNKNOWN.replace("乒", "乓")), "not in the model's vocabulary"),
        (dict(form="wujue", acrostic="春夏秋乓"), "not in the model's vocabulary"),
        (dict(form="wujue", acrostic="春夏，冬"), "not a Chinese character"),
        (dict(form="wujue", start="春風", acrostic="夏春秋冬"), "acrostic needs"),
        (dict(form="free", acrostic="春夏秋冬"), "acrostic"),
        (dict(form="free", tone="strict"), "regulated form"),
        (dict(form="wujue", tone="medium"), "tone mode"),
        (dict(form="sonnet"), "unknown form"),
        (dict(form="wujue", tone="loose", tone_penalty=-1), "penalty"),
        (dict(form="free", start="春乓"), "not in the model's vocabulary"),
    ],
)
def test_impossible_requests_raise(kwargs, match):
    form = kwargs.pop("form")
    with pytest.raises(TangshiError, match=match) as e:
        make_constraint(ITOS, SP, form, **kwargs)
    assert "\n" not in str(e.value)


def test_strict_start_that_fits_no_pattern():
    ping = next(ch for ch in ITOS if prosody.tones(ch) == {PING})
    ze = next(ch for ch in ITOS if prosody.tones(ch) == {ZE})
    bad = ping * 4  # 2nd and 4th both 平: no pattern has that
    with pytest.raises(TangshiError, match="tone pattern"):
        make_constraint(ITOS, SP, "wujue", start=bad, tone="strict")
    make_constraint(ITOS, SP, "wujue", start=bad, tone="loose")
    make_constraint(ITOS, SP, "wujue", start=ping + ze + ping + ping, tone="strict")
    with pytest.raises(TangshiError, match="tone pattern"):
        make_constraint(ITOS, SP, "wujue", start="白" + UNKNOWN, tone="strict")


def test_vocabulary_problems():
    no_comma = [t for t in ITOS if t != "，"]
    with pytest.raises(TangshiError, match="'，'"):
        make_constraint(no_comma, None, "wujue")
    with pytest.raises(TangshiError, match="special tokens"):
        make_constraint([t for t in ITOS if t != "<EOS>"], None, "wujue")
    tiny = ["東", "月", "，", "。"] + SPECIALS
    with pytest.raises(TangshiError, match="too few"):
        make_constraint(tiny, None, "wujue", rhyme=False)
    few = ["東", "紅", "月", "日", "，", "。"] + SPECIALS  # 2 characters of 一東 for 2 rhymes
    with pytest.raises(TangshiError, match="rhyme group"):
        make_constraint(few, None, "wujue", rhyme=True, no_repeat=True)
    make_constraint(few, None, "wujue", rhyme=True, no_repeat=False)
    with pytest.raises(TangshiError, match="仄-tone"):
        only_ping = sorted(prosody.rhyme_table().group_chars["上平聲一東"][:10]) + ["，", "。"] + SPECIALS
        make_constraint(only_ping, None, "wujue", rhyme=False, tone="strict")


def test_special_ids_forms():
    d = {"eos": SP.eos, "oov": SP.oov, "start": SP.start, "pad": SP.pad}
    assert SpecialIds.coerce(d, ITOS) == SP
    assert SpecialIds.coerce({"<EOS>": SP.eos, "<OOV>": SP.oov, "<START>": SP.start, "<PAD>": SP.pad}, ITOS) == SP

    class VocabLike:
        eos_id, oov_id, start_id, pad_id = SP.eos, SP.oov, SP.start, SP.pad

    assert SpecialIds.coerce(VocabLike(), ITOS) == SP
    assert isinstance(FormConstraint(ITOS, d, "wujue"), FormConstraint)


def test_build_constraint_from_vocab_like_object():
    class VocabLike:
        itos = tuple(ITOS)
        eos_id, oov_id, start_id, pad_id = SP.eos, SP.oov, SP.start, SP.pad

    c = build_constraint(VocabLike(), "qijue", start="春風", rhyme=True, tone="strict")
    assert isinstance(c, FormConstraint) and c.max_steps == c.max_len == 4 * 8 + 1
    assert c.special == SP
    assert build_constraint(ITOS, "free").max_steps is None
    with pytest.raises(TangshiError, match="acrostic"):
        build_constraint(VocabLike(), "free", acrostic="春夏秋冬")
    # the prefix protocol of a decoder that never appends <EOS> to its prefixes
    prefixes = [[], []]
    for _ in range(c.max_steps):
        m = c.mask(prefixes)
        tok = m.float().argmax(-1).tolist()
        for p, t in zip(prefixes, tok):
            if t != SP.eos:
                p.append(t)
    assert all(prosody.check_form("".join(ITOS[i] for i in p), "qijue") for p in prefixes)
    assert c.mask(prefixes).tolist() == [[i == SP.eos for i in range(V)]] * 2


def test_speed_1000_wujue():
    """1,000 五絕 with rhyme + strict tone + no_repeat: constraint time well under 1 s."""
    import time

    c = make_constraint(ITOS, SP, "wujue", rhyme=True, tone="strict", no_repeat=True)
    g = torch.Generator().manual_seed(0)
    spent = 0.0
    for _ in range(4):
        st = c.new_state(250)
        for _ in range(c.max_len):
            t0 = time.process_time()
            m = c.mask(st)
            spent += time.process_time() - t0
            tok = (torch.rand(250, V, generator=g) * m).argmax(-1)  # uniform among allowed
            t0 = time.process_time()
            c.advance(st, tok)
            spent += time.process_time() - t0
        assert c.finished(st)
    assert spent < 1.0, f"constraint time {spent:.3f}s"


# --------------------------------------------------------------- continuation, hidden characters, keywords, rhyme group
def decode_avoiding(c, batch, seed, avoid=(), penalty=30.0, max_chars=None):
    """Like `decode`, with the characters `avoid` pushed down by `penalty` nats at every step
    (an adversarial model that never wants them). Free form: `max_chars` steps, then <EOS> for the
    rows still writing, as the decoder does."""
    g = torch.Generator().manual_seed(seed)
    st, out = c.new_state(batch), [[] for _ in range(batch)]
    idx = [ITOS.index(ch) for ch in avoid]
    if max_chars is not None:
        for _ in range(max_chars):
            logits = torch.randn(batch, V, generator=g) * 3
            logits[:, idx] -= penalty
            logits[:, SP.eos] += 3.0  # and one that likes to stop early
            tok = torch.multinomial(c.apply(logits, st).softmax(-1), 1, generator=g).squeeze(1)
            c.advance(st, tok)
            for b, t in enumerate(tok.tolist()):
                out[b].append(t)
        return ["".join(ITOS[i] for i in (ids[: ids.index(SP.eos)] if SP.eos in ids else ids)) for ids in out]
    for _ in range(c.max_len):
        logits = torch.randn(batch, V, generator=g) * 3
        logits[:, idx] -= penalty
        m = c.mask(st)
        assert m.any(dim=1).all(), "dead end: a row has no allowed token"
        tok = torch.multinomial(c.apply(logits, st).softmax(-1), 1, generator=g).squeeze(1)
        c.advance(st, tok)
        for b, t in enumerate(tok.tolist()):
            out[b].append(t)
    assert c.finished(st)
    return [to_text(ids) for ids in out]


CONTINUATION = {5: "白日依山盡，黃河入海流。", 7: "春風不度玉門關，秋月還臨白帝城。"}
# a partial third line whose 2nd character fits the pattern the two lines chose (粘: 平 after 白日…, 仄 after 春風…)
PARTIAL = {5: "春風", 7: "春月"}


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("partial", [0, 1, 2])
def test_continuation_keeps_the_given_lines(form, partial):
    n = FORMS[form].chars_per_line
    given = CONTINUATION[n] + PARTIAL[n][:partial]
    assert all(ch in ITOS for ch in given)
    for tone in ("strict", "off"):
        c = make_constraint(ITOS, SP, form, start=given, rhyme=True, tone=tone)
        assert c.start == given
        for text in decode_avoiding(c, 40, seed=3):
            check_poem(text, form, start=given, rhyme=True, strict=tone == "strict")


def test_continuation_that_fits_no_tone_pattern_is_refused():
    with pytest.raises(TangshiError, match="'夏' .* at line 3, position 2 fits no strict tone pattern"):
        make_constraint(ITOS, SP, "wujue", start="白日依山盡，黃河入海流。春夏", tone="strict")
    make_constraint(ITOS, SP, "wujue", start="白日依山盡，黃河入海流。春夏", tone="loose")


def test_continuation_narrows_the_rhyme_group():
    # 流 (尤) ends line 2: every later rhyme character must be in 尤 too
    c = make_constraint(ITOS, SP, "wulv", start="白日依山盡，黃河入海流。", rhyme=True)
    for text in decode_avoiding(c, 60, seed=4):
        ends = [b[-1] for b, _ in split_clauses(text)[1::2]]
        assert all("下平聲十一尤" in prosody.rhyme_groups(ch) for ch in ends), text


@pytest.mark.parametrize(
    "bad, match",
    [
        ("白日依山盡，黃河入海流，", "line 2 of a 五言絕句 must end with '。', not '，'"),
        ("白日依山盡，黃河入海流。欲窮千里目，更上一層樓。春", "longer than a whole"),
        ("白日依山盡，黃河入海", None),  # a partial second line is fine
        ("白日依山盡，黃河入海東南，", "line 2 is longer than 5 characters"),
        ("白日依山盡，黃河入。", "has '。' after 3 characters of line 2"),
    ],
)
def test_continuation_that_breaks_the_form(bad, match):
    if match is None:
        make_constraint(ITOS, SP, "wujue", start=bad)
        return
    with pytest.raises(TangshiError, match=match):
        make_constraint(ITOS, SP, "wujue", start=bad)


def test_continuation_whose_rhymes_disagree_is_refused():
    # 流 (尤) and 東 (東) at rhyme positions: no common group
    with pytest.raises(TangshiError, match="shares no 平聲 group"):
        make_constraint(ITOS, SP, "wujue", start="白日依山盡，黃河入海流。春夏秋冬月，南西北春東")
    with pytest.raises(TangshiError, match="no 平水韻 平聲 group"):  # a 仄 character at a rhyme position
        make_constraint(ITOS, SP, "wujue", start="白日依山盡，黃河入海月。")
    make_constraint(ITOS, SP, "wujue", start="白日依山盡，黃河入海月。", rhyme=False)


def ze_only(n):
    return [ch for ch in ITOS if prosody.tones(ch) == {ZE} and is_han(ch)][:n]


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("at", [1, 2, 3, -2, -1])
def test_acrostic_at_any_position(form, at):
    f = FORMS[form]
    j = at - 1 if at > 0 else f.chars_per_line + at
    # the hidden characters follow one strict pattern at column j; at the rhyme positions they rhyme (一東)
    pattern = prosody.tone_patterns(form)[0].lines
    dong = iter(ch for ch in ITOS if prosody.rhyme_groups(ch) == {"上平聲一東"} and prosody.tones(ch) == {PING})
    single = {
        t: iter([ch for ch in ITOS if prosody.tones(ch) == {t} and "上平聲一東" not in prosody.rhyme_groups(ch)])
        for t in (PING, ZE)
    }
    text = [
        next(dong) if j == f.chars_per_line - 1 and k % 2 else next(single[pattern[k][j].replace("中", ZE)])
        for k in range(f.lines)
    ]
    text = "".join(text)
    for tone in ("strict", "off"):
        c = make_constraint(ITOS, SP, form, acrostic=text, at=at, rhyme=True, tone=tone)
        for poem in decode_avoiding(c, 30, seed=5, avoid=text):
            check_poem(poem, form, rhyme=True, strict=tone == "strict")
            assert "".join(b[j] for b, _ in split_clauses(poem)) == text, poem


def test_acrostic_position_is_checked():
    for at in (0, 6, -6):
        with pytest.raises(TangshiError, match="--at must be a position 1..5 or -5..-1"):
            make_constraint(ITOS, SP, "wujue", acrostic="春夏秋冬", at=at)
    with pytest.raises(TangshiError, match="ends line 2, a rhyme position"):  # 夏 is 仄
        make_constraint(ITOS, SP, "wujue", acrostic="春夏秋冬", at=-1)
    make_constraint(ITOS, SP, "wujue", acrostic="春夏秋冬", at=-1, rhyme=False)
    with pytest.raises(TangshiError, match="has '日' at line 1, position 2, but the acrostic needs '春' there"):
        make_constraint(ITOS, SP, "wujue", start="白日依山盡", acrostic="春夏秋冬", at=2)


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("tone", ["strict", "loose", "off"])
def test_keywords_always_appear(form, tone):
    keywords = "".join(ze_only(3))  # 仄-only: they can never take a rhyme position
    c = make_constraint(ITOS, SP, form, keywords=keywords, rhyme=True, tone=tone)
    for poem in decode_avoiding(c, 40, seed=6, avoid=keywords):  # a model that never wants them
        check_poem(poem, form, rhyme=True, strict=tone == "strict")
        assert all(k in poem for k in keywords), poem


def test_keywords_with_a_continuation_and_an_acrostic():
    c = make_constraint(
        ITOS, SP, "qijue", start="春風不度玉門關，", acrostic="春秋花月", keywords="雨看", tone="strict"
    )
    for poem in decode_avoiding(c, 40, seed=7, avoid="雨看"):
        check_poem(poem, "qijue", start="春風不度玉門關，", acrostic="春秋花月", strict=True)
        assert "雨" in poem and "看" in poem


def test_keywords_that_cannot_be_placed_are_refused():
    full = "白日依山盡，黃河入海流。欲窮千里目，更上一層"
    with pytest.raises(TangshiError, match="keyword '月' fits no free position .* rhyme group"):
        make_constraint(ITOS, SP, "wujue", start=full, keywords="月")
    make_constraint(ITOS, SP, "wujue", start=full, keywords="樓")  # 樓 rhymes with 流
    with pytest.raises(TangshiError, match="21 characters to place but a 五言絕句 has only 20 free positions"):
        make_constraint(ITOS, SP, "wujue", keywords="".join(ze_only(21)))
    with pytest.raises(TangshiError, match="not a Chinese character"):
        make_constraint(ITOS, SP, "wujue", keywords="月，")
    # strict tones, 仄-only keywords: the 8 unchecked positions (1st and 3rd of each line) and the end of
    # line 3 (仄 in all four patterns) can take them; every other checked position is 平 in some pattern
    make_constraint(ITOS, SP, "wujue", keywords="".join(ze_only(9)), tone="strict")
    with pytest.raises(TangshiError, match="cannot all be placed"):
        make_constraint(ITOS, SP, "wujue", keywords="".join(ze_only(10)), tone="strict")


def test_free_form_keywords():
    c = make_constraint(ITOS, SP, "free", keywords="雨看", max_chars=12)
    for poem in decode_avoiding(c, 40, seed=8, avoid="雨看", max_chars=12):
        assert "雨" in poem and "看" in poem and len(poem) <= 12, poem
    with pytest.raises(TangshiError, match="has room for only 1 more after the start text"):
        make_constraint(ITOS, SP, "free", start="春風", keywords="雨看", max_chars=3)


@pytest.mark.parametrize("name", ["東", "一東", "上平聲一東", "东", "風"])
def test_rhyme_group_by_name_or_character(name):
    c = make_constraint(ITOS, SP, "wulv", rhyme_group=name)
    for poem in decode_avoiding(c, 30, seed=9):
        ends = [b[-1] for b, _ in split_clauses(poem)[1::2]]
        assert all("上平聲一東" in prosody.rhyme_groups(ch) for ch in ends), poem


def test_rhyme_group_errors():
    with pytest.raises(TangshiError, match="several 平聲 rhyme groups"):
        make_constraint(ITOS, SP, "wujue", rhyme_group="行")
    with pytest.raises(TangshiError, match="unknown rhyme group"):
        make_constraint(ITOS, SP, "wujue", rhyme_group="xyz")
    with pytest.raises(TangshiError, match="not in rhyme group 上平聲一東"):
        make_constraint(ITOS, SP, "wujue", start="白日依山盡，黃河入海流。", rhyme_group="東")
    with pytest.raises(TangshiError, match="cannot be given with --no-rhyme"):
        make_constraint(ITOS, SP, "wujue", rhyme_group="東", rhyme=False)
    with pytest.raises(TangshiError, match="regulated form"):
        make_constraint(ITOS, SP, "free", rhyme_group="東")
    small = make_itos(per_group=4)  # each group 4 characters: a 五絕 without repeats needs 2 + 4 - 1 = 5
    with pytest.raises(
        TangshiError, match=r"rhyme group 上平聲三江 has only \d characters the model knows; a 五言絕句 needs 5"
    ):
        make_constraint(small, None, "wujue", rhyme_group="江")
