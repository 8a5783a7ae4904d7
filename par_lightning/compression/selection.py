"""Rank selection rules over measured score curves (spec §3.5, §3.6): pure functions, no model.

Scores are normalised per layer, ``s~(r) = s(r) / s(r_ref)`` with ``r_ref = R_max(rho=1)``, because layers
saturate at different levels; thresholds then read "keep this fraction of the alignment the factorized
layer has at no compression", comparable across layers and between SVD and CP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .curves import LayerCurve
from .plan import CompressionPlan, LayerPlan

Cost = Literal["params", "macs"]
Curves = Sequence[LayerCurve] | Mapping[str, LayerCurve]


def rank_grid(ref_rank: int, steps: int = 9) -> list[int]:
    """``r_ref * 2^(-j/2)`` for ``j = 0..steps-1``, rounded half up, at least 1, unique, descending.

    A sqrt(2) grid: 9 steps reach ``r_ref / 16`` with ~10 decompositions per layer.
    """
    if ref_rank < 1 or steps < 1:
        raise ValueError(
            f"rank_grid needs ref_rank >= 1 and steps >= 1, got ref_rank={ref_rank}, steps={steps}"
        )
    ranks = {max(1, math.floor(ref_rank * 2.0 ** (-j / 2) + 0.5)) for j in range(steps)}
    return sorted(ranks, reverse=True)


@dataclass(frozen=True)
class Selection:
    """A layer's chosen rank (None: keep it dense) and why."""

    rank: int | None
    reason: str


def reference_score(curve: LayerCurve) -> float:
    """``s(r_ref)``, the score every rank is normalised by, with an error that lists the scored ranks."""
    try:
        return curve.ref_score
    except KeyError as err:
        raise ValueError(
            f"layer {curve.name!r}: the reference rank {curve.ref_rank} was not scored, so scores cannot be "
            f"normalised; score it first (scored ranks: {[c.rank for c in curve.candidates]})"
        ) from err


def _scored(curve: LayerCurve) -> list[tuple[int, float, int, int]]:
    """``(rank, s~, params, macs)`` for scored ranks up to ``r_ref``, descending (larger ranks cost more than dense)."""
    ref = reference_score(curve)
    cands = sorted((c for c in curve.candidates if c.rank <= curve.ref_rank), key=lambda c: -c.rank)
    return [(c.rank, c.score / ref, c.params, c.macs) for c in cands]


def select_threshold(
    curve: LayerCurve, tau: float = 0.9, min_saving: float = 0.10, min_ref_score: float = 0.3
) -> Selection:
    """Smallest scored rank ``r`` with ``s~(r') >= tau`` for ``r`` and every larger scored rank ``r'``.

    The "every larger" clause stops a noisy (CP) score from accepting an isolated low rank below a
    failing one. The layer stays dense if ``s(r_ref) < min_ref_score`` (the factorisation distorts
    updates at every rank) or if the chosen rank saves less than ``min_saving`` of the dense params.
    """
    ref = reference_score(curve)
    if not ref >= min_ref_score or not ref > 0:
        return Selection(None, f"reference score {ref:.3f} < min_ref_score {min_ref_score}")
    chosen = None
    for rank, s_norm, _, _ in _scored(curve):
        if not s_norm >= tau:
            break
        chosen = (rank, s_norm)
    if chosen is None:
        return Selection(None, f"no scored rank reaches s~ >= {tau}")
    rank, s_norm = chosen
    saving = 1.0 - curve.candidate(rank).params / curve.dense_params
    if saving < min_saving:
        return Selection(None, f"rank {rank} saves {saving:.1%} of the params < {min_saving:.0%}")
    return Selection(
        rank, f"s~ >= {tau} at rank {rank} (s~={s_norm:.3f}) and every larger rank; saves {saving:.1%}"
    )


@dataclass(frozen=True)
class BudgetSelection:
    """Outcome of :func:`select_budget`; costs summed over all the curves' layers, dense ones included."""

    ranks: dict[str, int | None]
    reasons: dict[str, str]
    dense_cost: int
    target_cost: float
    final_cost: int
    reached: bool


def _as_list(curves: Curves) -> list[LayerCurve]:
    items = list(curves.values()) if isinstance(curves, Mapping) else list(curves)
    names = [c.name for c in items]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"curves list layers more than once: {dup}")
    return items


def select_budget(
    curves: Curves,
    target_ratio: float,
    cost: Cost = "params",
    importance: Mapping[str, float] | None = None,
    min_saving: float = 0.10,
    min_ref_score: float = 0.3,
) -> BudgetSelection:
    """Greedy global budget: lower ranks where it loses the least normalised score per unit of cost saved.

    Target: ``sum of the layers' dense cost / target_ratio`` (params or MACs), over every layer of
    ``curves``. Each layer walks down a ladder that starts dense (score 1 = ``s~(r_ref)``, dense cost,
    i.e. ``r_ref`` kept dense as it saves nothing) followed by its scored ranks ``<= r_ref`` that save at
    least ``min_saving`` of the dense cost (ranks saving less would stay dense anyway). Each step lowers
    the layer whose next step has the smallest
    ``importance_l * (s~(r_cur) - s~(r_next)) / (C(r_cur) - C(r_next))`` (ties: first layer) until the
    total is at or below the target. Layers with ``s(r_ref) < min_ref_score`` stay dense. If every ladder
    is exhausted first, ``reached`` is False and the smallest-cost ranks are returned.
    """
    if not target_ratio > 0:
        raise ValueError(
            f"select_budget: target_ratio must be > 0 (e.g. 2 = half the cost), got {target_ratio}"
        )
    if cost not in ("params", "macs"):
        raise ValueError(f"select_budget: cost must be 'params' or 'macs', got {cost!r}")
    items = _as_list(curves)
    weights = {c.name: 1.0 for c in items} if importance is None else dict(importance)
    missing = [c.name for c in items if c.name not in weights]
    if missing:
        raise ValueError(f"select_budget: importance has no weight for layers {missing}")
    if any(not (math.isfinite(w) and w >= 0) for w in weights.values()):
        raise ValueError(f"select_budget: importance weights must be finite and >= 0, got {weights}")

    ladders: list[list[tuple[int | None, float, int]]] = []
    reasons: dict[str, str] = {}
    for curve in items:
        dense = curve.dense_params if cost == "params" else curve.dense_macs
        ladder: list[tuple[int | None, float, int]] = [(None, 1.0, dense)]
        ref = reference_score(curve)
        if not ref >= min_ref_score or not ref > 0:
            reasons[curve.name] = f"dense: reference score {ref:.3f} < min_ref_score {min_ref_score}"
        else:
            for rank, s_norm, params, macs in _scored(curve):
                c = params if cost == "params" else macs
                if c <= (1.0 - min_saving) * dense and c < ladder[-1][2]:
                    ladder.append((rank, s_norm, c))
        ladders.append(ladder)

    dense_cost = sum(lad[0][2] for lad in ladders)
    target = dense_cost / target_ratio
    pos = [0] * len(ladders)
    total = dense_cost
    while total > target:
        best: tuple[float, int] | None = None
        for i, lad in enumerate(ladders):
            p = pos[i]
            if p + 1 < len(lad):
                (_, s_cur, c_cur), (_, s_next, c_next) = lad[p], lad[p + 1]
                delta = weights[items[i].name] * (s_cur - s_next) / (c_cur - c_next)
                if best is None or delta < best[0]:
                    best = (delta, i)
        if best is None:
            break
        i = best[1]
        total -= ladders[i][pos[i]][2] - ladders[i][pos[i] + 1][2]
        pos[i] += 1

    ranks: dict[str, int | None] = {}
    for curve, lad, p in zip(items, ladders, pos, strict=True):
        kept, s_norm, c = lad[p]
        ranks[curve.name] = kept
        if kept is not None:
            reasons[curve.name] = f"rank {kept}: s~={s_norm:.3f}, {cost}={c} of {lad[0][2]}"
        else:
            reasons.setdefault(curve.name, "dense: budget met without lowering this layer")
    return BudgetSelection(ranks, reasons, dense_cost, target, total, total <= target)


def plan_from_selection(
    curves: Curves, ranks: Mapping[str, int | None], meta: Mapping[str, Any] | None = None
) -> CompressionPlan:
    """The plan of the chosen ranks (``None`` = dense, left out), with every scored rank kept in ``scores``."""
    by_name = {c.name: c for c in _as_list(curves)}
    unknown = [n for n in ranks if n not in by_name]
    if unknown:
        raise ValueError(f"plan_from_selection: no curve for layers {unknown}; curves: {list(by_name)}")
    layers = {}
    for name, rank in ranks.items():
        if rank is None:
            continue
        curve = by_name[name]
        info: dict[str, Any] = {
            "ref_rank": curve.ref_rank,
            "dense_params": curve.dense_params,
            "dense_macs": curve.dense_macs,
        }
        chosen = next((c for c in curve.candidates if c.rank == rank), None)
        if chosen is not None:
            info.update(
                params=chosen.params, macs=chosen.macs, rel_error=chosen.rel_error, kappa=chosen.kappa
            )
        scores = {c.rank: c.score for c in curve.candidates}
        layers[name] = LayerPlan(curve.method, rank, scores, info)
    return CompressionPlan(layers, dict(meta or {}))
