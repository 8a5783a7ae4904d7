"""Carry optimizer and scheduler state across a module swap (spec §4.2).

After a swap the optimizer still holds the replaced parameters, so it is rebuilt by the model's own
``configure_optimizers`` (same param-group layout). A fresh optimizer would forget Adam's moments of
every *surviving* parameter and a fresh scheduler would restart the LR schedule; these functions move
that state over by parameter identity, so only the new factors start from scratch.

Typical order: ``snap = snapshot_optimizer(old_opt)`` -> swap modules -> build ``new_opt``/``new_sched``
-> ``transfer_optimizer_state(snap, new_opt)`` -> ``transfer_scheduler_state(old_sched, new_sched)``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


@dataclass(frozen=True, eq=False)
class OptimizerSnapshot:
    """What a rebuilt optimizer needs from the old one. Holds references (no copies): take it just before the swap.

    Attributes:
        state: per-parameter optimizer state (e.g. Adam ``exp_avg``, ``exp_avg_sq``, ``step``), keyed by
            the old parameter object itself (identity hash, as ``Optimizer.state`` does).
        params: every parameter the old optimizer held, in group order, with or without state.
        lrs: each group's current lr.
        initial_lrs: each group's ``initial_lr`` (set by a scheduler), ``None`` where absent.
        names: each group's ``"name"`` key, ``None`` where absent.
    """

    state: Mapping[Tensor, dict[str, Any]]
    params: tuple[Tensor, ...]
    lrs: tuple[float, ...]
    initial_lrs: tuple[float | None, ...]
    names: tuple[str | None, ...]


@dataclass(frozen=True)
class TransferReport:
    """Parameter counts of a transfer: in both optimizers / only in the new one / only in the old one."""

    kept: int
    new: int
    dropped: int


def _as_float(lr: float | Tensor) -> float:
    return float(lr.item()) if isinstance(lr, Tensor) else float(lr)


def _set_lr(group: dict[str, Any], key: str, value: float) -> None:
    """Assign in place when the optimizer keeps the lr as a tensor (capturable/fused Adam), else as a float."""
    if isinstance(group.get(key), Tensor):
        group[key].fill_(value)
    else:
        group[key] = value


def snapshot_optimizer(optimizer: Optimizer) -> OptimizerSnapshot:
    """Record per-parameter state, per-group lr / initial_lr and group names of ``optimizer``."""
    groups = optimizer.param_groups
    params = tuple(p for g in groups for p in g["params"])
    return OptimizerSnapshot(
        state={p: optimizer.state[p] for p in params if p in optimizer.state},
        params=params,
        lrs=tuple(_as_float(g["lr"]) for g in groups),
        initial_lrs=tuple(_as_float(g["initial_lr"]) if "initial_lr" in g else None for g in groups),
        names=tuple(g.get("name") for g in groups),
    )


def match_groups(old_names: Sequence[str | None], new_names: Sequence[str | None]) -> list[int]:
    """Index of the old group for each new group: by ``"name"`` when every group on both sides has one, else by index.

    Raises:
        ValueError: group counts differ, names are duplicated, or the two name sets differ.
    """
    both = f"old groups {list(old_names)}, new groups {list(new_names)}"
    if len(old_names) != len(new_names):
        raise ValueError(
            f"the rebuilt optimizer has {len(new_names)} param groups, the old one {len(old_names)} ({both}); "
            "configure_optimizers must build the same group layout after the swap"
        )
    if any(n is None for n in (*old_names, *new_names)):
        return list(range(len(new_names)))
    if len(set(old_names)) != len(old_names) or len(set(new_names)) != len(new_names):
        raise ValueError(f"param group names must be unique to match groups by name ({both})")
    if set(old_names) != set(new_names):
        raise ValueError(
            f"param group names differ between the old and the rebuilt optimizer ({both}); "
            "configure_optimizers must build the same named groups after the swap"
        )
    return [list(old_names).index(n) for n in new_names]


def transfer_optimizer_state(snapshot: OptimizerSnapshot, new_optimizer: Optimizer) -> TransferReport:
    """Copy the snapshot's state of every surviving parameter (by identity) and each group's lr into ``new_optimizer``.

    ``new_optimizer`` is a freshly built one: parameters it did not share with the old optimizer (the
    new factors) keep their empty state. State tensors are shared, not copied (the old optimizer is
    dropped). ``initial_lr`` is set only where the old group had one.
    """
    groups = new_optimizer.param_groups
    order = match_groups(snapshot.names, [g.get("name") for g in groups])
    old = set(snapshot.params)
    new_params = [p for g in groups for p in g["params"]]
    for p in new_params:
        if p in snapshot.state:
            new_optimizer.state[p] = dict(snapshot.state[p])
    for group, i in zip(groups, order, strict=True):
        _set_lr(group, "lr", snapshot.lrs[i])
        initial = snapshot.initial_lrs[i]
        if initial is not None:
            _set_lr(group, "initial_lr", initial)
    kept = sum(p in old for p in set(new_params))
    return TransferReport(kept=kept, new=len(set(new_params)) - kept, dropped=len(old) - kept)


def transfer_scheduler_state(old_scheduler: LRScheduler, new_scheduler: LRScheduler) -> None:
    """Make ``new_scheduler`` (built on the rebuilt optimizer) continue where ``old_scheduler`` stopped.

    Loads a deep copy of the old ``state_dict`` (epoch counters, base_lrs, ReduceLROnPlateau's best /
    num_bad_epochs / cooldown, ...; LambdaLR's plain-function lambdas are not in it and stay those of
    the new scheduler) and sets every group's lr to the old ``get_last_lr()``: ``load_state_dict`` does
    not touch the optimizer, and chainable schedulers compute the next lr from the current one.
    """
    if type(old_scheduler) is not type(new_scheduler):
        raise TypeError(
            f"new_scheduler is a {type(new_scheduler).__name__}, old_scheduler a {type(old_scheduler).__name__}: "
            "configure_optimizers must build the same scheduler after the swap"
        )
    groups = new_scheduler.optimizer.param_groups
    last_lrs = [_as_float(lr) for lr in old_scheduler.get_last_lr()]
    if len(last_lrs) != len(groups):
        raise ValueError(
            f"old_scheduler has lrs for {len(last_lrs)} param groups, new_scheduler's optimizer has "
            f"{len(groups)}: the group layout must be unchanged"
        )
    new_scheduler.load_state_dict(copy.deepcopy(old_scheduler.state_dict()))
    for group, lr in zip(groups, last_lrs, strict=True):
        _set_lr(group, "lr", lr)


def scale_step(params: Sequence[Tensor], before: Sequence[Tensor], factor: float) -> None:
    """Shrink the step just taken: ``p <- before + factor * (p - before)``, in place.

    SGD (with momentum / weight decay), Adam and AdamW steps are linear in lr and their state does not
    depend on lr, so this equals stepping at ``factor * lr``: an LR warm-up for the new factors (spec §4.2
    step 5) without adding param groups, which would change the layout schedulers and checkpoints expect.
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor):
        raise TypeError(f"factor must be a finite float in [0, 1], got {factor!r}")
    if not 0.0 <= factor <= 1.0:
        raise ValueError(f"factor must be in [0, 1] (the fraction of the step to keep), got {factor}")
    if len(params) != len(before):
        raise ValueError(f"params has {len(params)} tensors but before has {len(before)}: expected one each")
    for i, (p, b) in enumerate(zip(params, before, strict=True)):
        if p.shape != b.shape:
            raise ValueError(
                f"params[{i}] has shape {tuple(p.shape)} but before[{i}] has {tuple(b.shape)}: "
                "before must be a copy of each parameter taken just before the optimizer step"
            )
    with torch.no_grad():
        for p, b in zip(params, before, strict=True):
            p.sub_(b).mul_(factor).add_(b)
