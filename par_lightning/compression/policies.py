"""Baseline rank policies (uniform ratio, spectral energy, accuracy bisection) producing a ``CompressionPlan``.

They are the comparisons for the gradient-alignment rule: same plan format, so the same ``apply_plan``,
fine-tuning and reports run on every policy's output.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from .curves import Method
from .plan import CompressionPlan, LayerPlan, PlanError, apply_plan, check_layer
from .ranks import max_rank


def _layer(model: nn.Module, name: str, method: Method) -> nn.Conv2d | nn.Linear:
    """The dense layer ``name``, checked to accept ``method`` (at rank 1)."""
    try:
        layer = model.get_submodule(name)
    except AttributeError as err:
        raise PlanError(f"target {name!r} is not a module of {type(model).__name__}") from err
    check_layer(layer, LayerPlan(method, 1), name)
    assert isinstance(layer, (nn.Conv2d, nn.Linear))
    return layer


def _shape(layer: nn.Conv2d | nn.Linear) -> tuple[int, ...]:
    return tuple(layer.weight.shape)


def uniform_ratio_plan(model: nn.Module, targets: Mapping[str, Method], rho: float) -> CompressionPlan:
    """Every target at ``max_rank(layer, method, rho)``: each layer ``rho`` times smaller (LW-code's bound).

    Layers where even rank 1 costs more than ``dense / rho`` stay dense (listed in ``meta['dense']``).
    """
    layers, dense = {}, {}
    for name, method in targets.items():
        layer = _layer(model, name, method)
        rank = max_rank(layer, method, rho)
        if rank < 1:
            dense[name] = f"rank 1 already costs more than 1/{rho} of the dense params"
            continue
        layers[name] = LayerPlan(method, rank, info={"rho": rho}, weight_shape=_shape(layer))
    return CompressionPlan(layers, {"policy": "uniform_ratio", "rho": rho, "dense": dense})


def energy_rank(singular_values: torch.Tensor, energy: float) -> int:
    """Smallest ``r`` with ``sum_{i<=r} sigma_i^2 >= energy * sum_i sigma_i^2`` (values sorted descending)."""
    e = singular_values.to(torch.float64).pow(2)  # (k,)
    cum = torch.cumsum(e, 0)  # (k,)
    hit = torch.nonzero(cum >= energy * cum[-1])
    return int(hit[0]) + 1 if len(hit) else len(e)


@torch.no_grad()
def energy_plan(model: nn.Module, targets: Mapping[str, Method], energy: float = 0.9) -> CompressionPlan:
    """Smallest rank keeping ``energy`` of the squared singular values of the weight.

    SVD layers use ``W`` as ``(Cout, Cin)``: truncated SVD keeps exactly that energy. CP layers use the
    singular values of the kernel unfolded as ``(Cout, Cin*kh*kw)``: there is no closed-form energy for a
    CP rank (CP is not nested in the rank and has no orthogonal decomposition), and since a rank-R CP
    kernel has an unfolding of matrix rank <= R, this rank is a lower bound of the CP rank that keeps
    the same energy. Every rank is capped at the layer's parameter-neutral rank ``max_rank(rho=1)``
    (beyond it the factorized layer is larger than the dense one); ``info['energy_rank']`` keeps the uncapped value.
    """
    if not 0 < energy <= 1:
        raise ValueError(f"energy_plan: energy must be in (0, 1], got {energy}")
    layers = {}
    for name, method in targets.items():
        layer = _layer(model, name, method)
        w = layer.weight.detach().to(torch.float64)
        sv = torch.linalg.svdvals(w.reshape(w.shape[0], -1))  # (min(Cout, Cin*kh*kw),)
        r_energy = energy_rank(sv, energy)
        rank = min(r_energy, max_rank(layer, method, 1.0))
        info = {"energy": energy, "energy_rank": r_energy}
        layers[name] = LayerPlan(method, max(rank, 1), info=info, weight_shape=_shape(layer))
    return CompressionPlan(layers, {"policy": "energy", "energy": energy})


def accuracy_bisection_plan(
    model: nn.Module,
    targets: Mapping[str, Method],
    evaluate: Callable[[nn.Module], float],
    eps: float = 0.002,
    recalibrate: Callable[[nn.Module], None] | None = None,
    cp_kwargs: Mapping[str, Any] | None = None,
    min_rank: int = 2,
) -> CompressionPlan:
    """Per-layer binary search on validation accuracy (LW-ALM's ``layer_decomposer``, spec §3.6).

    For each target alone, ranks in ``[min_rank, R_max(rho=1)]`` are bisected: the layer is factorized
    into a deep copy of ``model`` (all other layers dense), optionally BN-recalibrated, and evaluated; a
    rank is accepted when ``score >= baseline - eps``, and the smallest accepted rank is kept (acceptance
    assumed monotone in the rank). At most ``floor(log2(n)) + 1`` evaluations per layer for ``n`` ranks.

    Fixes over LW-code (spec §4.4): a layer whose every rank fails, ``R_max`` included, stays dense
    instead of crashing; ``recalibrate`` is a plain callable (no keyword mismatch), and when given the
    baseline is measured on a recalibrated copy too, so both sides of the comparison see the same BN
    estimate. Interactions are still ignored (each layer searched with the others dense): evaluate the
    joint plan afterwards. Every evaluated rank's score is kept in ``LayerPlan.scores``.

    Args:
        model: the dense model; never modified.
        targets: ``{name: method}`` to search, e.g. from ``select_layers``.
        evaluate: higher is better (e.g. mean label accuracy on a validation set).
        eps: tolerated score drop.
        recalibrate: called on each candidate copy before ``evaluate`` (e.g. BN statistics re-estimation).
        cp_kwargs: for ``cp_decompose`` during the search (e.g. fewer EPC sweeps, spec §3.6).
        min_rank: lower end of the search (LW-code: 2).
    """
    if min_rank < 1:
        raise ValueError(f"accuracy_bisection_plan: min_rank must be >= 1, got {min_rank}")

    def score(candidate_plan: CompressionPlan | None) -> float:
        trial = copy.deepcopy(model)
        if candidate_plan is not None:
            apply_plan(trial, candidate_plan, cp_kwargs=cp_kwargs)
        if recalibrate is not None:
            recalibrate(trial)
        return float(evaluate(trial))

    baseline = score(None) if recalibrate is not None else float(evaluate(model))
    layers, dense = {}, {}
    evaluations = 1
    for name, method in targets.items():
        layer = _layer(model, name, method)
        lo, hi = min_rank, max_rank(layer, method, 1.0)
        if hi < lo:
            dense[name] = f"parameter-neutral rank {hi} < min_rank {min_rank}"
            continue
        seen: dict[int, float] = {}
        best = None
        while lo <= hi:
            mid = (lo + hi) // 2
            seen[mid] = score(CompressionPlan({name: LayerPlan(method, mid)}))
            evaluations += 1
            if seen[mid] >= baseline - eps:
                best, hi = mid, mid - 1
            else:
                lo = mid + 1
        if best is None:
            dense[name] = (
                f"even the parameter-neutral rank scores {seen[max(seen)]:.4f} < {baseline:.4f} - {eps}"
            )
            continue
        info = {"baseline": baseline, "eps": eps}
        layers[name] = LayerPlan(method, best, seen, info, weight_shape=_shape(layer))
    meta = {"policy": "accuracy_bisection", "eps": eps, "baseline": baseline, "evaluations": evaluations}
    return CompressionPlan(layers, {**meta, "dense": dense})
