"""Rank selection rules on hand-built score curves: grid values, the threshold rule, the greedy budget."""

from __future__ import annotations

import itertools

import pytest

from par_lightning.compression.curves import Candidate, LayerCurve
from par_lightning.compression.selection import (
    plan_from_selection,
    rank_grid,
    select_budget,
    select_threshold,
)


def curve(
    name: str, ref: int, norm_scores: dict[int, float], dense: int, per_rank: int, ref_score: float = 0.8
):
    """A curve whose raw scores are ``ref_score * s~`` and whose cost is ``per_rank * rank`` (params and MACs x10)."""
    cands = tuple(
        Candidate(rank=r, score=ref_score * s, params=per_rank * r, macs=10 * per_rank * r)
        for r, s in norm_scores.items()
    )
    return LayerCurve(name, "svd", ref, dense, 10 * dense, cands)


def test_rank_grid_values() -> None:
    # 417 / 2^(j/2), rounded half up: 294.86, 208.5, 147.43, 104.25, 73.72, 52.13, 36.86, 26.06
    assert rank_grid(417) == [417, 295, 209, 147, 104, 74, 52, 37, 26]
    assert rank_grid(2) == [2, 1]
    assert rank_grid(1) == [1]
    assert rank_grid(100, steps=3) == [100, 71, 50]
    with pytest.raises(ValueError, match="ref_rank"):
        rank_grid(0)


def test_threshold_needs_every_larger_rank_to_pass() -> None:
    # 23 and 16 pass but 32 fails: the isolated low ranks must not be chosen.
    c = curve("a", 64, {64: 1.0, 45: 0.95, 32: 0.85, 23: 0.97, 16: 0.99}, dense=6400, per_rank=100)
    sel = select_threshold(c, tau=0.9)
    assert sel.rank == 45
    assert select_threshold(c, tau=0.8).rank == 16


def test_threshold_monotone_curve_picks_smallest_passing() -> None:
    c = curve("a", 64, {64: 1.0, 45: 0.97, 32: 0.92, 23: 0.89, 16: 0.5}, dense=6400, per_rank=100)
    assert select_threshold(c, tau=0.9).rank == 32
    assert select_threshold(c, tau=0.95).rank == 45
    # ranks above the reference rank are ignored (they cost more than the dense layer)
    c2 = curve("a", 64, {90: 0.1, 64: 1.0, 45: 0.97}, dense=6400, per_rank=100)
    assert select_threshold(c2, tau=0.9).rank == 45


def test_threshold_small_saving_keeps_dense() -> None:
    # rank 60 costs 6000 of 6400 params: saves 6.25% < 10%
    c = curve("a", 64, {64: 1.0, 60: 0.95, 45: 0.5}, dense=6400, per_rank=100)
    sel = select_threshold(c, tau=0.9)
    assert sel.rank is None and "saves" in sel.reason
    assert select_threshold(c, tau=0.9, min_saving=0.05).rank == 60


def test_threshold_low_reference_score_keeps_dense() -> None:
    c = curve("a", 64, {64: 1.0, 32: 0.99}, dense=6400, per_rank=100, ref_score=0.25)
    sel = select_threshold(c)
    assert sel.rank is None and "reference score" in sel.reason
    assert select_threshold(c, min_ref_score=0.2).rank == 32


def test_threshold_unscored_reference_rank_is_an_error() -> None:
    c = curve("a", 64, {45: 1.0}, dense=6400, per_rank=100)
    with pytest.raises(ValueError, match="reference rank 64"):
        select_threshold(c)


def brute_force(curves, target: float, min_saving: float = 0.10):
    """Best total normalised score over all rank combinations (dense = score 1) with params <= target."""
    options = []
    for c in curves:
        ref = c.candidate(c.ref_rank).score
        opts = [(None, 1.0, c.dense_params)]
        opts += [
            (x.rank, x.score / ref, x.params)
            for x in c.candidates
            if x.params <= (1 - min_saving) * c.dense_params
        ]
        options.append(opts)
    best = None
    for combo in itertools.product(*options):
        cost = sum(o[2] for o in combo)
        score = sum(o[1] for o in combo)
        if cost <= target and (best is None or score > best[0] + 1e-12):
            best = (score, {c.name: o[0] for c, o in zip(curves, combo, strict=True)})
    return best


def total_score(curves, ranks) -> float:
    return sum(
        1.0 if ranks[c.name] is None else c.candidate(ranks[c.name]).score / c.ref_score for c in curves
    )


def concave_curves():
    # dense 100 params each; ranks cost 80/60/40/20 (equal 20-param steps) with growing score drops.
    return [
        curve("a", 10, {10: 1.0, 8: 0.98, 6: 0.94, 4: 0.86, 2: 0.70}, dense=100, per_rank=10),
        curve("b", 10, {10: 1.0, 8: 0.95, 6: 0.88, 4: 0.78, 2: 0.60}, dense=100, per_rank=10),
        curve("c", 10, {10: 1.0, 8: 0.99, 6: 0.97, 4: 0.93, 2: 0.85}, dense=100, per_rank=10),
    ]


@pytest.mark.parametrize("ratio", [1.1, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0])
def test_budget_greedy_equals_brute_force_on_concave_curves(ratio: float) -> None:
    curves = concave_curves()
    res = select_budget(curves, ratio)
    target = 300 / ratio
    assert res.reached and res.final_cost <= target
    assert res.dense_cost == 300 and res.target_cost == pytest.approx(target)
    spent = sum(100 if r is None else 10 * r for r in res.ranks.values())
    assert res.final_cost == spent
    best_score, _ = brute_force(curves, target)
    assert total_score(curves, res.ranks) == pytest.approx(best_score)


@pytest.mark.parametrize("ratio", [1.2, 1.6, 2.2, 3.0])
def test_budget_meets_target_on_noisy_curves(ratio: float) -> None:
    curves = [
        curve("a", 10, {10: 1.0, 8: 0.70, 6: 0.95, 4: 0.60}, dense=100, per_rank=10),
        curve("b", 12, {12: 1.0, 9: 0.99, 6: 0.40, 3: 0.38}, dense=120, per_rank=10),
        curve("c", 8, {8: 1.0, 6: 0.90, 4: 0.89, 2: 0.88}, dense=80, per_rank=10),
    ]
    res = select_budget(curves, ratio)
    target = 300 / ratio
    assert res.reached and res.final_cost <= target
    best_score, _ = brute_force(curves, target)
    assert total_score(curves, res.ranks) <= best_score + 1e-12


def test_budget_unreachable_is_reported() -> None:
    curves = concave_curves()
    res = select_budget(curves, 20.0)  # target 15 params < the 3 x 20 of the smallest ranks
    assert not res.reached
    assert res.ranks == {"a": 2, "b": 2, "c": 2}
    assert res.final_cost == 60 and res.target_cost == pytest.approx(15.0)


def test_budget_importance_and_dense_rules() -> None:
    curves = concave_curves()
    # with no weight on "b", its (steepest) drops cost nothing: it is lowered all the way first
    res = select_budget(curves, 1.5, importance={"a": 1.0, "b": 0.0, "c": 1.0})
    assert res.ranks == {"a": None, "b": 2, "c": 8}
    with pytest.raises(ValueError, match="no weight"):
        select_budget(curves, 1.5, importance={"a": 1.0})
    # a low reference score keeps a layer dense, so the others carry the budget
    low = [curves[0], curve("b", 10, {10: 1.0, 2: 0.9}, dense=100, per_rank=10, ref_score=0.2), curves[2]]
    res = select_budget(low, 1.5)
    assert res.ranks["b"] is None and "reference score" in res.reasons["b"]
    assert res.reached and res.final_cost <= 200


def test_budget_on_macs() -> None:
    # same curve, but layer "a" has 4x the MACs per rank: saving MACs there is cheaper per unit of score
    a = LayerCurve(
        "a",
        "svd",
        10,
        100,
        4000,
        tuple(Candidate(r, 0.8 * s, 10 * r, 400 * r) for r, s in {10: 1.0, 8: 0.95, 6: 0.9}.items()),
    )
    b = LayerCurve(
        "b",
        "svd",
        10,
        100,
        1000,
        tuple(Candidate(r, 0.8 * s, 10 * r, 100 * r) for r, s in {10: 1.0, 8: 0.95, 6: 0.9}.items()),
    )
    res = select_budget([a, b], 5000 / 4500, cost="macs")  # one step needed
    assert res.dense_cost == 5000
    assert res.ranks == {"a": 8, "b": None}
    assert res.final_cost == 3200 + 1000
    # on params the two layers are identical: the tie goes to the first layer
    assert select_budget([b, a], 200 / 180).ranks == {"b": 8, "a": None}


def test_plan_from_selection_keeps_scores_and_skips_dense() -> None:
    curves = concave_curves()
    plan = plan_from_selection(curves, {"a": 6, "b": None}, {"rule": "threshold"})
    assert list(plan.layers) == ["a"]
    lp = plan.layers["a"]
    assert (lp.method, lp.rank) == ("svd", 6)
    assert lp.scores == {
        10: 0.8,
        8: pytest.approx(0.8 * 0.98),
        6: pytest.approx(0.8 * 0.94),
        4: pytest.approx(0.8 * 0.86),
        2: pytest.approx(0.8 * 0.7),
    }
    assert lp.info["params"] == 60 and lp.info["ref_rank"] == 10
    assert plan.meta == {"rule": "threshold"}
    with pytest.raises(ValueError, match="no curve"):
        plan_from_selection(curves, {"zz": 3})
