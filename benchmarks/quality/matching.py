"""Find the knob value of a one-parameter rank policy whose plan lands closest to a parameter budget.

Uniform ratio (rho), spectral energy and the global budget rule (target ratio) each map one number to a
plan whose parameter count moves monotonically, in steps, with that number. Bisection on the number,
keeping the closest plan seen on either side of the budget, finds the best achievable match; whether
it is within the stated tolerance is recorded, not assumed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from par_lightning.compression.plan import CompressionPlan


@dataclass(frozen=True)
class Match:
    """The plan closest to ``target`` params, its knob value and counts, and whether it is within tolerance."""

    plan: CompressionPlan
    knob: float
    params: int
    macs: int
    target: int
    tolerance: float
    evaluations: int

    @property
    def rel_diff(self) -> float:
        return (self.params - self.target) / self.target

    @property
    def matched(self) -> bool:
        return abs(self.rel_diff) <= self.tolerance


def match_budget(
    make_plan: Callable[[float], CompressionPlan],
    costs: Callable[[CompressionPlan], tuple[int, int]],
    target: int,
    lo: float,
    hi: float,
    *,
    params_decrease: bool,
    tolerance: float,
    geometric: bool = False,
    iterations: int = 30,
) -> Match:
    """Bisect the knob in ``[lo, hi]`` towards ``target`` whole-model params.

    Args:
        make_plan: knob -> plan (e.g. ``lambda rho: uniform_ratio_plan(net, targets, rho)``).
        costs: plan -> (params, MACs) of the whole network with the plan applied.
        target: the parameter budget.
        lo, hi: knob range; the search assumes params are monotone over it.
        params_decrease: True when a larger knob gives fewer params (rho, target ratio).
        tolerance: relative distance to ``target`` accepted as a match (reported, not enforced).
        geometric: bisect ``log(knob)`` (ratios spanning orders of magnitude).
        iterations: bisection steps after the two ends.
    """
    if not lo < hi:
        raise ValueError(f"match_budget: need lo < hi, got lo={lo}, hi={hi}")
    if target < 1:
        raise ValueError(f"match_budget: target must be >= 1 param, got {target}")
    best: Match | None = None
    evaluations = 0

    def visit(knob: float) -> int:
        nonlocal best, evaluations
        plan = make_plan(knob)
        params, macs = costs(plan)
        evaluations += 1
        if best is None or abs(params - target) < abs(best.params - target):
            best = Match(plan, knob, params, macs, target, tolerance, 0)
        return params

    visit(lo)
    visit(hi)
    a, b = lo, hi
    for _ in range(iterations):
        mid = math.sqrt(a * b) if geometric else (a + b) / 2
        params = visit(mid)
        assert best is not None
        if abs(best.params - target) <= tolerance * target / 20 or params == target:
            break  # far inside the tolerance: further steps cannot matter
        above = params > target
        if above == params_decrease:  # too many params: move towards more compression
            a = mid
        else:
            b = mid
    assert best is not None
    return Match(best.plan, best.knob, best.params, best.macs, target, tolerance, evaluations)
