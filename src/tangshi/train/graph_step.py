"""One optimiser step, eager or replayed from a CUDA graph.

On a GPU, tangshi's step is about 2,000 small kernels (a handful per gate per time
step, forward and backward), and launching them costs more than running them.
A CUDA graph records the whole step — forward, backward, clipping and the
optimiser update — once, and replays it with one launch.

A graph needs fixed shapes, fixed addresses and no host synchronisation, so the
graphed step differs from the eager one in ways that leave its numbers unchanged:

- the batch is padded with PAD to (batch_size, L), L being the batch's longest
  poem rounded up to a multiple of `len_multiple` (8 by default, so at most 8
  graphs for lengths ≤ 64). A causal LSTM never looks right and PAD targets carry
  no loss, so the extra rows and columns change nothing;
- the loss is cross-entropy over every position with PAD ignored — the mean NLL
  over real targets, the same number the eager step computes from real positions
  only (the eager step gathers them with a boolean mask, which needs the host);
- the gradients live in fixed tensors that every graph writes, and the optimiser
  keeps lr and its step count on the device (`capturable=True`), so the schedule
  still moves the learning rate between replays.

With the assignment's PAD-counted loss nothing is padded: every distinct shape gets a graph.
`static_loss` and the padding run on any device, so the CPU tests check that the
graphed step's loss and gradients equal the eager step's; the capture itself needs CUDA.
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F

from tangshi.data.batches import SEQ_LEN
from tangshi.errors import TangshiError
from tangshi.model.lm import PoetryLM

GRAPH_OPTIMIZERS = ("adam", "adamw")  # the optimisers with lr and step on the device (capturable)


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def pad_batch(x: torch.Tensor, y: torch.Tensor, rows: int, length: int, pad_id: int):
    """(b, l) → (rows, length), the new rows and columns all PAD."""
    b, l = x.shape
    if (b, l) == (rows, length):
        return x, y
    if b > rows or l > length:
        raise ValueError(f"batch {tuple(x.shape)} does not fit ({rows}, {length})")
    xp = x.new_full((rows, length), pad_id)
    yp = y.new_full((rows, length), pad_id)
    xp[:b, :l], yp[:b, :l] = x, y
    return xp, yp


def static_loss(model: PoetryLM, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training loss without host synchronisation: the head runs at every position
    and PAD targets are ignored (counted, with the assignment's `pad_in_loss`)."""
    h, _ = model.hidden(x)
    logits = model.logits(h)  # (B, L, V) fp32
    ignore = -100 if model.config.pad_in_loss else model.config.pad_id
    return F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=ignore)


def graph_capturable_optimizer(name: str) -> None:
    if name not in GRAPH_OPTIMIZERS:
        raise TangshiError(
            f"--cuda-graph needs an optimiser that keeps its state on the GPU "
            f"({', '.join(GRAPH_OPTIMIZERS)}), not {name}; use --no-cuda-graph"
        )


class TrainStep:
    """`step(x, y)` runs one optimiser step on a batch and returns its loss (a 0-dim
    tensor on the device; with graphs it is overwritten by the next replay, so read it
    or accumulate it before the next step).

    mode "eager": the model's own loss (real positions only), the usual step.
    mode "static": the graph's step run eagerly (padded batch, fixed gradient tensors);
        any device — this is what the tests compare with "eager".
    mode "graph": the static step, run eagerly `warmup` times per shape on a side stream
        (lazy initialisation must not happen during capture), then captured and replayed. CUDA only.
    """

    MODES = ("eager", "static", "graph")

    def __init__(
        self,
        model: PoetryLM,
        optimizer: torch.optim.Optimizer,
        clip: float = 0.0,
        amp: bool = False,
        mode: str = "eager",
        batch_size: int | None = None,
        len_multiple: int = 8,
        warmup: int = 2,
    ):
        if mode not in self.MODES:
            raise ValueError(f"unknown step mode {mode!r}")
        self.model, self.optimizer, self.clip, self.amp = model, optimizer, clip, amp
        self.mode, self.batch_size, self.len_multiple, self.warmup = mode, batch_size, len_multiple, warmup
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.device = self.params[0].device
        self._captured: dict[tuple[int, ...], tuple] = {}  # by the (padded) batch's shape (rows, length)
        self._seen: Counter = Counter()
        if mode == "graph" and self.device.type != "cuda":
            raise TangshiError("CUDA graphs need --device cuda")
        if mode != "eager":
            for p in self.params:  # fixed gradient tensors, written in place by every graph
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
        if mode == "graph":
            self._side = torch.cuda.Stream(self.device)

    @property
    def n_graphs(self) -> int:
        return len(self._captured)

    def fit(self, x: torch.Tensor, y: torch.Tensor):
        """The batch padded to its graph's shape (unchanged with the assignment's PAD-counted loss)."""
        if self.model.config.pad_in_loss:
            return x, y
        rows = max(self.batch_size or 0, x.shape[0])
        length = min(round_up(x.shape[1], self.len_multiple), max(x.shape[1], SEQ_LEN))
        return pad_batch(x, y, rows, length, self.model.config.pad_id)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.mode == "eager":
            return self._eager(x, y)
        x, y = self.fit(x, y)
        if self.mode == "static":
            return self._static(x, y)
        key = tuple(x.shape)
        entry = self._captured.get(key)
        if entry is None:
            self._seen[key] += 1
            side, main = self._side, torch.cuda.current_stream(self.device)
            if self._seen[key] <= self.warmup:
                side.wait_stream(main)
                with torch.cuda.stream(side):
                    loss = self._static(x, y)
                main.wait_stream(side)
                return loss
            sx, sy = x.clone(), y.clone()
            graph = torch.cuda.CUDAGraph()
            main.synchronize()
            with torch.cuda.graph(graph):
                sl = self._static(sx, sy)
            entry = self._captured[key] = (graph, sx, sy, sl)  # capture records, it does not run: replay below
        graph, sx, sy, sl = entry
        sx.copy_(x, non_blocking=True)
        sy.copy_(y, non_blocking=True)
        graph.replay()
        return sl

    def _eager(self, x, y):
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            _, loss = self.model(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()
        return loss.detach()

    def _static(self, x, y):
        for p in self.params:
            p.grad.zero_()
        # autocast's weight cache must be off inside a graph (the cast would be captured once and reused stale)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp, cache_enabled=False):
            loss = static_loss(self.model, x, y)
        loss.backward()
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()
        return loss.detach()
