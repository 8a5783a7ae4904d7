"""Optimizer/scheduler state across a module swap, checked against runs without a swap."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.optim import SGD, Adam, AdamW, Optimizer
from torch.optim import lr_scheduler as sched

from par_lightning.compression.optimizer_transfer import (
    TransferReport,
    scale_step,
    snapshot_optimizer,
    transfer_optimizer_state,
    transfer_scheduler_state,
)

pytestmark = pytest.mark.usefixtures("one_thread")

BATCH = 6


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 3))


def _adam(model: nn.Sequential, reverse: bool = False) -> Adam:
    """The model's configure_optimizers: reads the *current* modules, two named groups."""
    groups = [
        {"name": "backbone", "params": [p for m in model[:-1] for p in m.parameters()], "lr": 1e-2},
        {"name": "head", "params": list(model[-1].parameters()), "lr": 3e-2},
    ]
    return Adam(groups[::-1] if reverse else groups, weight_decay=1e-3)


def _train_steps(model: nn.Module, opt: Optimizer, steps: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(BATCH, 4, generator=gen)).pow(2).mean().backward()
        opt.step()


def _swap(model: nn.Sequential) -> None:
    """Replace the middle Linear(8, 8) by a rank-2 factor pair: two old params go, three new ones come."""
    torch.manual_seed(5)
    model[2] = nn.Sequential(nn.Linear(8, 2, bias=False), nn.Linear(2, 8))


def _lrs(opt: Optimizer) -> dict[str, float]:
    return {g["name"]: g["lr"] for g in opt.param_groups}


@pytest.mark.parametrize("reverse", [False, True], ids=["same-order", "groups-reordered"])
def test_adam_state_survives_the_swap_and_the_next_step_matches_an_unswapped_optimizer(reverse: bool) -> None:
    model = _model()
    opt = _adam(model)
    scheduler = sched.MultiStepLR(opt, milestones=[2], gamma=0.1)
    for seed in range(3):
        _train_steps(model, opt, 1, seed)
        scheduler.step()
    lrs_before = _lrs(opt)
    assert lrs_before == pytest.approx({"backbone": 1e-3, "head": 3e-3})  # the schedule moved the lr
    survivors = [model[0].weight, model[0].bias, model[3].weight, model[3].bias]
    ref_model, ref_opt = copy.deepcopy((model, opt))  # the optimizer as if no swap had happened
    expected_state = {i: {k: v.clone() for k, v in opt.state[p].items()} for i, p in enumerate(survivors)}

    snap = snapshot_optimizer(opt)
    _swap(model)
    new_opt = _adam(model, reverse=reverse)
    report = transfer_optimizer_state(snap, new_opt)

    assert report == TransferReport(kept=4, new=3, dropped=2)
    assert _lrs(new_opt) == lrs_before
    for i, p in enumerate(survivors):
        state = new_opt.state[p]
        assert set(state) == {"step", "exp_avg", "exp_avg_sq"}
        for k in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(state[k], expected_state[i][k]), (i, k)
    new_params = list(model[2].parameters())
    assert all(p not in new_opt.state for p in new_params)

    # One more step: new params move; survivors move exactly as the unswapped optimizer moves them.
    starts = [p.detach().clone() for p in new_params]
    _train_steps(model, new_opt, 1, seed=9)
    assert all(not torch.equal(p, s) for p, s in zip(new_params, starts, strict=True))
    ref_survivors = [ref_model[0].weight, ref_model[0].bias, ref_model[3].weight, ref_model[3].bias]
    for p, ref in zip(survivors, ref_survivors, strict=True):
        ref.grad = p.grad.clone()
    for p in ref_model[2].parameters():
        p.grad = None  # replaced layer: skipped by Adam
    ref_opt.step()
    for p, ref in zip(survivors, ref_survivors, strict=True):
        assert torch.equal(p, ref)


def test_group_mismatch_lists_both_layouts() -> None:
    model = _model()
    snap = snapshot_optimizer(_adam(model))
    renamed = Adam(
        [
            {"name": "features", "params": list(model[0].parameters())},
            {"name": "head", "params": list(model[3].parameters())},
        ],
        lr=1e-3,
    )
    with pytest.raises(ValueError, match=r"names differ.*\['backbone', 'head'\].*\['features', 'head'\]"):
        transfer_optimizer_state(snap, renamed)
    single = Adam(model.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match=r"1 param groups, the old one 2.*\['backbone', 'head'\].*\[None\]"):
        transfer_optimizer_state(snap, single)


def test_unnamed_groups_are_matched_by_index() -> None:
    model = _model()

    def make() -> SGD:
        groups = [{"params": list(model[0].parameters()), "lr": 0.1}, {"params": list(model[3].parameters())}]
        return SGD(groups, lr=0.2, momentum=0.9)

    opt = make()
    _train_steps(model, opt, 2, seed=0)
    opt.param_groups[0]["lr"], opt.param_groups[1]["lr"] = 0.05, 0.07
    buffers = [opt.state[p]["momentum_buffer"].clone() for p in model[3].parameters()]
    new = make()
    report = transfer_optimizer_state(snapshot_optimizer(opt), new)
    assert [g["lr"] for g in new.param_groups] == [0.05, 0.07]
    assert "initial_lr" not in new.param_groups[0]  # no scheduler had set one
    assert report == TransferReport(kept=4, new=0, dropped=0)
    for p, buf in zip(model[3].parameters(), buffers, strict=True):
        assert torch.equal(new.state[p]["momentum_buffer"], buf)


def _make_multistep(opt: Optimizer) -> sched.LRScheduler:
    return sched.MultiStepLR(opt, milestones=[2, 5, 7], gamma=0.5)


def _make_cosine(opt: Optimizer) -> sched.LRScheduler:
    return sched.CosineAnnealingLR(opt, T_max=6, eta_min=1e-4)


def _make_step(opt: Optimizer) -> sched.LRScheduler:
    return sched.StepLR(opt, step_size=3, gamma=0.3)


def _make_lambda(opt: Optimizer) -> sched.LRScheduler:
    return sched.LambdaLR(opt, lambda epoch: 1.0 / (1.0 + epoch))


def _make_plateau(opt: Optimizer) -> sched.LRScheduler:
    return sched.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1)


# Two bad epochs before the swap, so the carried best / num_bad_epochs decide the reduction right after it
# (a fresh scheduler would take 0.95 as its best); then reductions, cooldowns and a new best.
METRICS = [1.0, 0.8, 0.9, 0.9, 0.95, 0.95, 0.95, 0.95, 0.7, 0.75, 0.75, 0.75, 0.75, 0.75]
SWAP_AT = 4


def _advance(scheduler: sched.LRScheduler, t: int) -> None:
    scheduler.optimizer.step()  # no grads: a no-op, keeps the "step before optimizer.step" warning away
    if isinstance(scheduler, sched.ReduceLROnPlateau):
        scheduler.step(METRICS[t])
    else:
        scheduler.step()


def _lr_sequence(
    make: Callable[[Optimizer], sched.LRScheduler], swap: bool, carry: bool = True
) -> list[list]:
    model = _model()
    opt = _adam(model)
    scheduler = make(opt)
    for t in range(SWAP_AT):
        _advance(scheduler, t)
    if swap:
        snap = snapshot_optimizer(opt)
        _swap(model)
        new_opt = _adam(model)
        new_scheduler = make(new_opt)  # construction resets the lr to the configured one
        transfer_optimizer_state(snap, new_opt)
        if carry:
            transfer_scheduler_state(scheduler, new_scheduler)
        opt, scheduler = new_opt, new_scheduler
    lrs = []
    for t in range(SWAP_AT, len(METRICS)):
        _advance(scheduler, t)
        lrs.append([g["lr"] for g in opt.param_groups] + scheduler.get_last_lr())
    return lrs


@pytest.mark.parametrize(
    "make",
    [_make_multistep, _make_cosine, _make_step, _make_lambda, _make_plateau],
    ids=["multistep", "cosine", "step", "lambda", "plateau"],
)
def test_swapped_scheduler_continues_the_unswapped_lr_sequence(
    make: Callable[[Optimizer], sched.LRScheduler],
) -> None:
    reference = _lr_sequence(make, swap=False)
    assert len({tuple(row) for row in reference}) > 1  # the lr does change over the compared steps
    assert _lr_sequence(make, swap=True) == [pytest.approx(row, rel=1e-12) for row in reference]
    assert _lr_sequence(make, swap=True, carry=False) != reference  # a fresh scheduler would restart


def test_plateau_state_is_carried() -> None:
    model = _model()
    opt = _adam(model)
    old = _make_plateau(opt)
    for t in range(SWAP_AT + 1):  # up to the first reduction: best, cooldown and the lr all moved
        _advance(old, t)
    new_opt = _adam(model)
    new = _make_plateau(new_opt)
    transfer_scheduler_state(old, new)
    for key in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch"):
        assert getattr(new, key) == getattr(old, key), key
    assert (old.best, old.cooldown_counter) == (0.8, 1)  # the carried values are not just defaults
    assert [g["lr"] for g in new_opt.param_groups] == old.get_last_lr() != [1e-2, 3e-2]


def test_scheduler_errors() -> None:
    model = _model()
    opt = _adam(model)
    with pytest.raises(TypeError, match="StepLR.*MultiStepLR"):
        transfer_scheduler_state(_make_multistep(opt), _make_step(_adam(model)))
    one_group = Adam(model.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="2 param groups.*has 1"):
        transfer_scheduler_state(_make_cosine(opt), _make_cosine(one_group))


def _twin_step(make_opt: Callable[[list[nn.Parameter], float], Optimizer], warm: int, w: float) -> None:
    """A step at lr * w equals a step at lr shrunk by scale_step(w), with and without earlier state."""
    torch.manual_seed(7)
    init = [torch.randn(5, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]
    a = [nn.Parameter(t.clone()) for t in init]
    b = [nn.Parameter(t.clone()) for t in init]
    opt_a, opt_b = make_opt(a, 0.1), make_opt(b, 0.1)
    gen = torch.Generator().manual_seed(0)
    grads = [
        [torch.randn(t.shape, dtype=torch.float64, generator=gen) for t in init] for _ in range(warm + 1)
    ]
    for step, g in enumerate(grads):
        for p, q, gi in zip(a, b, g, strict=True):
            p.grad, q.grad = gi.clone(), gi.clone()
        if step == warm:  # the compared step
            opt_a.param_groups[0]["lr"] = 0.1 * w
            before = [q.detach().clone() for q in b]
            opt_b.step()
            scale_step(b, before, w)
        else:
            opt_b.step()
        opt_a.step()
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(q, p, rtol=1e-12, atol=1e-14)
        for k, v in opt_a.state[p].items():
            assert torch.equal(opt_b.state[q][k], v), k  # optimizer state does not depend on lr


@pytest.mark.parametrize("warm", [0, 3], ids=["fresh-state", "with-state"])
@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps, lr: Adam(ps, lr=lr, weight_decay=1e-2),
        lambda ps, lr: AdamW(ps, lr=lr, weight_decay=0.1),
        lambda ps, lr: SGD(ps, lr=lr, momentum=0.9, nesterov=True, weight_decay=1e-2),
    ],
    ids=["adam", "adamw", "sgd-momentum"],
)
def test_scale_step_equals_a_step_at_scaled_lr(make_opt: Callable, warm: int) -> None:
    _twin_step(make_opt, warm, w=0.3)


def test_scale_step_bounds_and_shapes() -> None:
    p = [torch.ones(3)]
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"factor must be in \[0, 1\]"):
            scale_step(p, [torch.zeros(3)], bad)
    with pytest.raises(TypeError, match="finite"):
        scale_step(p, [torch.zeros(3)], float("nan"))
    with pytest.raises(ValueError, match="shape"):
        scale_step(p, [torch.zeros(4)], 0.5)
    with pytest.raises(ValueError, match="one each"):
        scale_step(p, [], 0.5)
    scale_step(p, [torch.zeros(3)], 0.0)
    assert torch.equal(p[0], torch.zeros(3))  # factor 0 undoes the step
