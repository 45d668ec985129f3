"""--preset original (alias seed) is the assignment's recipe exactly; explicit options win over any preset."""

import pytest

from tangshi.cli.main import build_parser
from tangshi.model.lm import ModelConfig
from tangshi.train.config import config_from_preset


def _resolve(argv):
    args = build_parser().parse_args(["train", *argv])  # the options come from the config dataclasses
    return config_from_preset(
        args.preset, {k: getattr(args, k) for k in args.model_opts}, {k: getattr(args, k) for k in args.train_opts}
    )


def test_original_preset_is_the_assignments_recipe():
    model, cfg = _resolve(["--preset", "original"])
    m = ModelConfig(vocab_size=10, pad_id=9, **model)
    # the assignment's Part 2: 256/256, 1 layer, its own gates, ReLU on the logits, PAD in the loss, untied, Xavier
    assert (m.embed_dim, m.hidden_dim, m.num_layers, cfg.impl) == (256, 256, 1, "tangshi")
    assert m.relu_logits and m.pad_in_loss and not m.tie_weights and m.init == "xavier"
    assert (m.dropout_embed, m.dropout_hidden, m.dropout_output, m.weight_drop) == (0, 0, 0, 0)
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.epochs, cfg.batch_size) == ("adam", 0.01, 1e-4, 50, 128)
    assert (cfg.schedule, cfg.clip, cfg.bucket) == ("constant", 0.0, False)


def test_explicit_options_override_a_preset():
    model, cfg = _resolve(["--preset", "default", "--lr", "0.5", "--dropout-output", "0.05", "--epochs", "3"])
    assert cfg.lr == 0.5 and cfg.epochs == 3 and model["dropout_output"] == 0.05
    base_model, base_cfg = _resolve(["--preset", "default"])
    assert base_model["dropout_output"] != 0.05 and base_cfg.lr != 0.5


def test_no_preset_is_the_original_without_its_bugs():
    model, cfg = _resolve([])
    m = ModelConfig(vocab_size=10, pad_id=9, **model)
    assert not m.relu_logits and not m.pad_in_loss
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.epochs, cfg.batch_size) == ("adam", 0.01, 1e-4, 50, 128)


@pytest.mark.parametrize("bad", [["--preset", "best"]])
def test_unknown_preset_is_an_argparse_error(bad, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["train", *bad])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_default_preset_is_the_measured_recipe():
    # docs/training.md, run F2: the values that reached the 10k split's best dev perplexity
    model, cfg = _resolve(["--preset", "default"])
    m = ModelConfig(
        vocab_size=10,
        pad_id=9,
        embed_dim=8,
        hidden_dim=8,
        **{k: v for k, v in model.items() if k not in ("embed_dim", "hidden_dim")},
    )
    assert m.tie_weights and m.init == "torch" and not m.relu_logits and not m.pad_in_loss
    assert (m.dropout_embed, m.dropout_chars, m.dropout_output, m.weight_drop) == (0.2, 0.0, 0.4, 0.3)
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.epochs) == ("adamw", 3e-3, 0.1, 32, 40)
    assert (cfg.schedule, cfg.warmup, cfg.clip, cfg.bucket) == ("cosine", 0.05, 1.0, True)
    old, old_cfg = _resolve(["--preset", "awd-v1"])  # session 1's preset, still reachable
    assert (old["dropout_output"], old_cfg.schedule, old_cfg.batch_size, old_cfg.weight_decay) == (
        0.3,
        "onecycle",
        128,
        0.01,
    )


def test_original_is_the_assignments_name_and_seed_its_alias():
    assert _resolve(["--preset", "original"]) == _resolve(["--preset", "seed"])


def test_every_option_has_help():
    import argparse

    def walk(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from walk(sub)
            elif action.help is None:
                yield f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"

    assert list(walk(build_parser())) == []
