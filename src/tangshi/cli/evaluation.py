"""`tangshi eval`: dev perplexity of a checkpoint, on its own rebuilt dev split or a prepared one;
a titled model's dev poems read both after their titles and without them. Its imports are deferred
as in `commands` (so that `tangshi --help` stays fast)."""

from __future__ import annotations

import sys
from pathlib import Path

from tangshi.cli.common import print_json, resolve_checkpoint
from tangshi.errors import TangshiError


def _eval_split(args, meta: dict, vocab, titled: bool):
    """The dev split `tangshi eval` reads: the prepared folder's, or the checkpoint's own rebuilt."""
    if args.data:
        from tangshi.data.splits import load_split
        from tangshi.data.vocab import Vocab

        data_dir = Path(args.data)
        if Vocab.load(data_dir / "vocab.json") != vocab and not titled:  # said once, on the untitled pass
            print(
                f"note: {data_dir} has another vocabulary than the checkpoint; dev characters unknown to "
                "the checkpoint count as <OOV>",
                file=sys.stderr,
            )
        split = load_split(data_dir, "dev", vocab, titled=titled)
    else:
        from tangshi.model.bundled import rebuild_dev_split

        split = rebuild_dev_split(meta, vocab, source=Path(args.source), titled=titled)
    return split.head(args.limit) if args.limit is not None else split


def cmd_eval(args) -> int:
    from tangshi.model.checkpoint import load_checkpoint
    from tangshi.train.evaluate import evaluate
    from tangshi.train.start import require_device

    require_device(args.device)
    if args.batch is not None and not args.precision:
        raise TangshiError("--batch applies to evaluation through the decoding step: add --precision fp32 or int8")
    if args.batch is not None and args.batch < 1:
        raise TangshiError(f"--batch must be at least 1, got {args.batch}")
    if args.precision:
        from tangshi.model.step_weights import check_precision

        check_precision(args.precision, args.device)
    ck = resolve_checkpoint(args.checkpoint)
    model, vocab, meta = load_checkpoint(ck, device=args.device)
    res: dict = {}
    for titled in (True, False) if model.config.titles else (False,):  # a titled model: with titles, then without
        split = _eval_split(args, meta, vocab, titled)
        if args.precision:
            from tangshi.train.evaluate import evaluate_steps

            out = evaluate_steps(model, split, args.precision, device=args.device, batch=args.batch)
        else:
            out = evaluate(model, split, device=args.device)
        if res:  # the same poems without their titles
            res["untitled"] = {k: out[k] for k in ("dev_nll", "dev_ppl")}
        else:
            res.update(out)
    res["checkpoint"] = str(ck)
    if args.json:
        print_json(res)
    elif args.precision:
        print(
            f"dev perplexity {res['dev_ppl']:.3f} (mean NLL {res['dev_nll']:.4f} over {res['tokens']} tokens), "
            f"through the decoding step in {args.precision}"
        )
    else:
        print(
            f"dev perplexity {res['dev_ppl']:.3f} (mean NLL {res['dev_nll']:.4f} over {res['tokens']} tokens); "
            f"assignment's PAD-counted loss {res['original_loss']:.4f}, assignment's 2**loss {res['original_ppl']:.3f}"
        )
    if "untitled" in res and not args.json:
        without = res["untitled"]["dev_ppl"]
        print(f"(each poem read after its title; the same poems without: dev perplexity {without:.3f})")
    return 0
