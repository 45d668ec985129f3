"""The text of `tangshi gradcheck`: the result of lesson/gradcheck.run_gradcheck, as a reader sees it."""

from __future__ import annotations


def format_gradcheck(result: dict, full: bool = False) -> str:
    """The report: the model, the loss at initialisation, each parameter's errors, the reference LSTM
    and the assignment's errors; with `full` (or when a check failed) also the other configurations,
    the optimisers and the training kernel."""
    tol = result["tolerances"]
    full = full or not result["ok"]
    lines = _model_lines(result) + _init_lines(result) + [""]
    lines += _param_lines(result["params"], tol) + [""]
    if full:
        lines += _variant_lines(result["variants"]) + [""]
    lines += _comparison_lines(result, tol, full)
    lines.append("the assignment's errors, ||dW_seed - dW|| / ||dW|| (its gradient against the correct one):")
    for bug, d in result["assignment_errors"].items():
        lines.append(f"  {bug}:")
        for k, v in d.items():
            lines.append(f"    {k:<22} {v:.3f}")
    lines.append("")
    if not full:
        lines.append(
            "(tangshi gradcheck --all also shows three other configurations, five optimisers and the training kernel)"
        )
    lines.append("OK" if result["ok"] else "FAILED")
    return "\n".join(lines)


def _init_lines(result: dict) -> list[str]:
    i = result.get("init_loss")
    if not i:
        return []
    return [
        f"loss at initialisation {i['loss']:.3f} vs ln V = {i['ln_V']:.3f}: a model that knows nothing gives each "
        f"of the V characters about 1/V ({'within' if i['ok'] else 'NOT within'} {i.get('slack', 0.1):.0%})"
    ]


def _model_lines(result: dict) -> list[str]:
    m = result["model"]
    c = m["config"]
    return [
        f"gradcheck (seed {result['seed']}): V={c['vocab_size']} D={c['embed_dim']} H={c['hidden_dim']} "
        f"layers={c['num_layers']}, batch {m['batch'][0]}x{m['batch'][1]} with {m['real_targets']} real targets, "
        f"{m['dtype']}",
        f"loss {result['loss']['loss']:.6f}; |loss - torch| = {result['loss']['torch_loss_abs_diff']:.1e}, "
        f"|loss - nn.LSTM| = {result['loss']['torch_nn_loss_abs_diff']:.1e}",
    ]


def _param_lines(params: dict, tol: dict) -> list[str]:
    w = max(len(k) for k in params) + 2
    lines = [
        f"{'parameter':<{w}}{'fd rel err':>12}{'|torch|':>12}{'|nn.LSTM|':>12}",
        f"{'(tolerance)':<{w}}{tol['fd_rel_err']:>12.0e}{tol['torch_abs_diff']:>12.0e}{tol['torch_abs_diff']:>12.0e}",
    ]
    for k, v in params.items():
        lines.append(f"{k:<{w}}{v['fd_rel_err']:>12.2e}{v['torch_abs_diff']:>12.2e}{v['torch_nn_abs_diff']:>12.2e}")
    return lines


def _variant_lines(variants: dict) -> list[str]:
    lines = ["other configurations (max over parameters):"]
    for k, v in variants.items():
        skip = v.get("fd_elements_skipped_at_relu_kinks", 0)
        note = f"   ({skip} FD element{'s' if skip != 1 else ''} skipped at ReLU kinks)" if skip else ""
        lines.append(
            f"  {k:<24} fd rel err {v['fd_rel_err']:.2e}   |torch| {v['torch_abs_diff']:.2e}   "
            f"|loss| {v['loss_abs_diff']:.1e}{note}"
        )
    return lines


def _comparison_lines(result: dict, tol: dict, full: bool = True) -> list[str]:
    """The optimisers and the training kernel (with `full`), and the assignment-notation LSTM."""
    lines = []
    if full:
        lines.append(
            f"optimisers vs torch.optim, 10 steps, max |w - w_torch| over the weights w "
            f"(tolerance {tol['optimizer_abs_diff']:.0e}):"
        )
        lines += [f"  {k:<58} {v:.2e}" for k, v in result["optimizers"].items()] + [""]
    lines.append(
        f"the assignment-notation LSTM (lesson/reference_lstm.py) vs finite differences and vs the fast twin "
        f"(tolerance {tol['twin_abs_diff']:.0e}):"
    )
    lines += [
        f"  {k:<24} fd rel err {v['fd_rel_err']:.2e}   |twin| {v['twin_abs_diff']:.2e}   "
        f"|loss| {v['twin_loss_abs_diff']:.1e}"
        for k, v in result["reference_lstm"].items()
    ] + [""]
    if full:
        lines.append(
            f"the training kernel (LSTMRecurrence, fp32) vs autograd in float64, max relative error "
            f"(tolerance {tol['kernel_rel_err']:.0e}):"
        )
        lines += [
            f"  {k:<24} " + (f"{v['rel_err']:.2e}" if "rel_err" in v else f"skipped: {v['skipped']}")
            for k, v in result["training_kernel"].items()
        ] + [""]
    return lines
