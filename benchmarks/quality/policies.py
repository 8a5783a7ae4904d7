"""The rank policies of the comparison, each producing a plan, its exact cost, and its search time.

Accuracy bisection runs first at its reference tolerance; its whole-network parameter count is the
budget every other policy is matched to (except the gradient threshold rule, which reports its own).
Search time is the wall time to produce the plan: for the gradient policies the calibration batches,
``score_layers`` over the full grid and the selection; for bisection its whole search; for uniform and
energy the knob search that hits the budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from par_lightning.compression.costs import dense_params, factorized_params
from par_lightning.compression.curves import LayerCurve, Method
from par_lightning.compression.plan import CompressionPlan
from par_lightning.compression.policies import accuracy_bisection_plan, energy_plan, uniform_ratio_plan
from par_lightning.compression.prefix_cache import pipeline_stages
from par_lightning.compression.search import SearchOptions, score_layers
from par_lightning.compression.selection import plan_from_selection, select_budget, select_threshold

from .config import QualityConfig
from .matching import Match, match_budget

LossFn = Callable[[nn.Module, Any], torch.Tensor]
Costs = Callable[[CompressionPlan], tuple[int, int]]


@dataclass
class PolicyPlan:
    """One policy's plan at one budget, with what it took to find it."""

    policy: str
    plan: CompressionPlan
    params: int
    macs: int
    search_seconds: float
    target_params: int | None  # None: the policy sets its own budget (bisection, threshold)
    matched: bool | None
    knob: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        rel = None if self.target_params is None else (self.params - self.target_params) / self.target_params
        return {
            "policy": self.policy,
            "params": self.params,
            "macs": self.macs,
            "target_params": self.target_params,
            "rel_diff_to_target": rel,
            "matched": self.matched,
            "search_seconds": self.search_seconds,
            "layers_factorized": len(self.plan.layers),
            "ranks": {n: lp.rank for n, lp in self.plan.layers.items()},
            "knob": self.knob,
        }


def _layer(net: nn.Module, name: str) -> nn.Conv2d | nn.Linear:
    layer = net.get_submodule(name)
    assert isinstance(layer, (nn.Conv2d, nn.Linear)), name
    return layer


def _from_match(policy: str, match: Match, seconds: float, knob_name: str) -> PolicyPlan:
    return PolicyPlan(
        policy,
        match.plan,
        match.params,
        match.macs,
        seconds,
        match.target,
        match.matched,
        {knob_name: match.knob},
    )


def bisection_policy(
    net: nn.Module,
    targets: Mapping[str, Method],
    evaluate: Callable[[nn.Module], float],
    recalibrate: Callable[[nn.Module], None],
    cfg: QualityConfig,
    costs: Costs,
) -> PolicyPlan:
    """LW-ALM's per-layer validation-accuracy bisection at ``eps`` (the reference; defines the budget)."""
    start = time.perf_counter()
    plan = accuracy_bisection_plan(
        net,
        targets,
        evaluate,
        eps=cfg.bisection.eps,
        recalibrate=recalibrate,
        cp_kwargs={"als_iters": cfg.bisection.als_iters, "epc_sweeps": cfg.bisection.epc_sweeps},
        min_rank=cfg.bisection.min_rank,
    )
    seconds = time.perf_counter() - start
    params, macs = costs(plan)
    knob = {"eps": cfg.bisection.eps, "evaluations": float(plan.meta["evaluations"])}
    return PolicyPlan("accuracy_bisection", plan, params, macs, seconds, None, None, knob)


@dataclass
class GradientSearch:
    """The full-grid score curves of every target layer and the time it took to get them."""

    curves: dict[str, LayerCurve]
    seconds: float  # calibration batches + score_layers
    candidates: int


def gradient_search(
    net: nn.Module,
    loss_fn: LossFn,
    load_batches: Callable[[], Sequence[Any]],
    targets: Mapping[str, Method],
    example: torch.Tensor,
    cfg: QualityConfig,
    seed: int,
) -> GradientSearch:
    """Calibration and ``score_layers`` over the whole grid (the budget rule needs every rank scored)."""
    start = time.perf_counter()
    batches = load_batches()
    g = cfg.gradient
    options = SearchOptions(
        grid_steps=g.grid_steps,
        stop_below=None,
        als_iters=g.als_iters,
        epc_sweeps=g.epc_sweeps,
        warm_als_iters=g.warm_als_iters,
        seed=seed,
        stages=pipeline_stages(net),
    )
    curves, report = score_layers(net, loss_fn, batches, targets, example, options)
    return GradientSearch(curves, time.perf_counter() - start, report.candidates)


def threshold_policy(search: GradientSearch, cfg: QualityConfig, costs: Costs) -> PolicyPlan:
    """Per-layer threshold rule at ``tau``: its own budget, reported as it falls."""
    start = time.perf_counter()
    g = cfg.gradient
    ranks = {
        n: select_threshold(c, g.tau, g.min_saving, g.min_ref_score).rank for n, c in search.curves.items()
    }
    plan = plan_from_selection(search.curves, ranks, meta={"policy": "gradient_threshold", "tau": g.tau})
    seconds = search.seconds + time.perf_counter() - start
    params, macs = costs(plan)
    return PolicyPlan("gradient_threshold", plan, params, macs, seconds, None, None, {"tau": g.tau})


def budget_policy(search: GradientSearch, cfg: QualityConfig, costs: Costs, target: int) -> PolicyPlan:
    """Greedy global budget rule, its target ratio bisected so the whole network lands on ``target`` params."""
    g = cfg.gradient

    def make(ratio: float) -> CompressionPlan:
        chosen = select_budget(
            search.curves, ratio, "params", min_saving=g.min_saving, min_ref_score=g.min_ref_score
        )
        meta = {"policy": "gradient_budget", "target_ratio": ratio, "reached": chosen.reached}
        return plan_from_selection(search.curves, chosen.ranks, meta=meta)

    start = time.perf_counter()
    match = match_budget(
        make,
        costs,
        target,
        1.0001,
        200.0,
        params_decrease=True,
        tolerance=cfg.budget_tolerance,
        geometric=True,
    )
    return _from_match("gradient_budget", match, search.seconds + time.perf_counter() - start, "target_ratio")


def uniform_policy(
    net: nn.Module, targets: Mapping[str, Method], cfg: QualityConfig, costs: Costs, target: int
) -> PolicyPlan:
    """Every target layer ``rho`` times smaller, ``rho`` bisected to the budget.

    ``rho`` stops where the first layer's rank 1 would exceed ``dense / rho``: beyond it that layer
    falls back to dense and the parameter count rises again (no longer monotone).
    """
    start = time.perf_counter()
    rho_max = min(
        dense_params(layer) / factorized_params(layer, method, 1)
        for layer, method in ((_layer(net, name), method) for name, method in targets.items())
    )
    match = match_budget(
        lambda rho: uniform_ratio_plan(net, targets, rho), costs, target, 1.0, max(rho_max, 1.0 + 1e-6),
        params_decrease=True, tolerance=cfg.budget_tolerance, geometric=True,
    )  # fmt: skip
    return _from_match("uniform_ratio", match, time.perf_counter() - start, "rho")


def energy_policy(
    net: nn.Module, targets: Mapping[str, Method], cfg: QualityConfig, costs: Costs, target: int
) -> PolicyPlan:
    """Smallest rank keeping a fraction of the spectral energy, that fraction bisected to the budget."""
    start = time.perf_counter()
    match = match_budget(
        lambda energy: energy_plan(net, targets, energy), costs, target, 1e-4, 1.0,
        params_decrease=False, tolerance=cfg.budget_tolerance,
    )  # fmt: skip
    return _from_match("energy", match, time.perf_counter() - start, "energy")
