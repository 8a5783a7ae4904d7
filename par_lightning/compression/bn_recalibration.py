"""Re-estimate BatchNorm running statistics after layers were swapped (spec §4.1).

A swapped layer changes the activations every downstream BN sees, so its running mean/var describe a
model that no longer exists. Training itself uses batch statistics and does not care, but the validation
right after the swap (and the "after swap, before fine-tuning" accuracy) does. Unlike LW-code, every BN
is reset (upstream ones just get re-estimated, so execution order does not matter), the average is
cumulative (``momentum=None``: every batch weighs the same, no old statistics survive) and dropout stays
off (only the BN modules are in train mode), so the estimate matches the eval-mode network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import chain, islice
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from par_lightning.compression.calibration import to_device

ForwardFn = Callable[[nn.Module, Any], Any]
"""``(model, batch) -> anything``; only the side effect on the BN buffers matters."""


def tracking_batchnorms(model: nn.Module) -> list[_BatchNorm]:
    """Every BN (1d/2d/3d, SyncBN, ...) of ``model`` that keeps running statistics, in module order."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def default_forward(model: nn.Module, batch: Any) -> Any:
    """``model(batch[0])`` for ``(inputs, targets, ...)`` batches, else ``model(batch)``."""
    return model(batch[0]) if isinstance(batch, (tuple, list)) else model(batch)


def _device(model: nn.Module) -> torch.device:
    for t in chain(model.parameters(), model.buffers()):
        return t.device
    return torch.device("cpu")


def _require_batchnorms(model: nn.Module) -> list[_BatchNorm]:
    bns = tracking_batchnorms(model)
    if not bns:
        raise ValueError(
            f"model ({type(model).__name__}) has no BatchNorm module with track_running_stats=True: "
            "there are no running statistics to recalibrate or average"
        )
    return bns


@contextmanager
def _recalibration_mode(model: nn.Module, bns: list[_BatchNorm]) -> Iterator[None]:
    """Only BNs in train mode with fresh cumulative stats; modes and momenta restored after, buffers too on error."""
    modes = {m: m.training for m in model.modules()}
    momenta = {bn: bn.momentum for bn in bns}
    saved = {bn: {k: v.clone() for k, v in bn.named_buffers(recurse=False) if v is not None} for bn in bns}
    ok = False
    try:
        model.eval()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average: stat_n = mean of the n per-batch stats
            bn.train()
        yield
        ok = True
    finally:
        for bn, momentum in momenta.items():
            bn.momentum = momentum
        for m, training in modes.items():
            m.training = training
        if not ok:  # a failed pass must not leave half-estimated statistics behind
            with torch.no_grad():
                for bn, buffers in saved.items():
                    for k, v in buffers.items():
                        getattr(bn, k).copy_(v)


def recalibrate_batchnorm(
    model: nn.Module,
    batches: Iterable[Any],
    forward: ForwardFn | None = None,
    max_batches: int | None = None,
) -> int:
    """Reset every tracking BN and re-estimate its running stats as the plain average over ``batches``.

    With ``momentum=None`` torch BN keeps ``running_mean`` = mean of the per-batch means and
    ``running_var`` = mean of the per-batch *unbiased* variances. Only the BN modules run in train mode
    (dropout and the rest stay in eval), under ``torch.no_grad``; each BN's momentum and every module's
    ``training`` flag are restored exactly, parameters and ``.grad`` are untouched. If the pass raises,
    the previous running statistics are restored as well.

    Args:
        model: the network whose BN buffers are re-estimated in place.
        batches: e.g. a train loader without random augmentation (spec: 100-200 batches). Tensors are
            moved to the model's device. Consumed lazily: at most ``max_batches`` items are drawn.
        forward: ``(model, batch) -> Any``; defaults to :func:`default_forward`.
        max_batches: stop after this many batches (``None``: use them all).

    Returns:
        The number of batches used.
    """
    if max_batches is not None and (isinstance(max_batches, bool) or not isinstance(max_batches, int)):
        raise TypeError(f"max_batches must be a positive int or None, got {max_batches!r}")
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"max_batches must be >= 1 or None, got {max_batches}")
    bns = _require_batchnorms(model)
    forward = default_forward if forward is None else forward
    iterator = iter(batches)
    sentinel = object()
    first = next(iterator, sentinel)
    if first is sentinel:  # checked before anything is reset: an empty loader leaves the model as it was
        raise ValueError("batches is empty: recalibration needs at least one batch")
    device = _device(model)
    used = 0
    with _recalibration_mode(model, bns), torch.no_grad():
        for batch in islice(chain([first], iterator), max_batches):
            forward(model, to_device(batch, device))
            used += 1
    return used


def average_batchnorm_stats(model: nn.Module, reduce_mean: Callable[[Tensor], Tensor]) -> None:
    """Replace every tracking BN's ``running_mean`` / ``running_var`` by ``reduce_mean(buffer)``, in place.

    For DDP without SyncBN each rank recalibrates on its own shard; averaging the buffers afterwards gives
    every rank the same statistics (spec §4.1). ``reduce_mean`` is called in module order, ``running_mean``
    then ``running_var`` for each BN, i.e. in the same order on every rank, as a collective requires.
    ``num_batches_tracked`` is left alone. A DDP reducer::

        def reduce_mean(t):
            torch.distributed.all_reduce(t)
            return t / torch.distributed.get_world_size()
    """
    for bn in _require_batchnorms(model):
        for name in ("running_mean", "running_var"):
            buffer: Tensor = getattr(bn, name)
            reduced = reduce_mean(buffer)
            if not isinstance(reduced, Tensor) or reduced.shape != buffer.shape:
                got = tuple(reduced.shape) if isinstance(reduced, Tensor) else type(reduced).__name__
                raise ValueError(
                    f"reduce_mean must return a tensor shaped like {name} {tuple(buffer.shape)}, got {got}"
                )
            with torch.no_grad():
                buffer.copy_(reduced)
