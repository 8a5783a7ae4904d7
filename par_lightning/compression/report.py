"""What a compression event did, per layer and in total, as plain data for tables, plots and loggers.

Pure functions over :class:`LayerCurve` and the chosen ranks, so the numbers a user sees in the console,
in W&B and in a test come from one place; rendering lives in ``report_render`` and W&B glue in
``callbacks/``. Costs are the curves' weight params and MACs per sample (bias excluded, spec §1.3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .curves import LayerCurve
from .selection import reference_score


@dataclass(frozen=True)
class LayerRow:
    """One targeted layer after the event: its chosen rank (``None`` = kept dense) and costs before/after.

    ``score``, ``score_normalised``, ``rel_error`` and ``kappa`` describe the chosen rank and are ``None``
    for a dense row (``rel_error``/``kappa`` also when the search did not record them).
    """

    layer: str
    method: str
    ref_rank: int
    rank: int | None
    score: float | None  # raw alignment score s(rank)
    score_normalised: float | None  # s(rank) / s(ref_rank)
    rel_error: float | None
    kappa: float | None
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    reason: str

    @property
    def compressed(self) -> bool:
        return self.rank is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _normalised(score: float, ref: float) -> float:
    """``s / s(ref)``; NaN when ``s(ref) == 0`` (such a layer is kept dense by every selection rule)."""
    return score / ref if ref != 0 else math.nan


def _opt_float(x: float | None) -> float | None:
    return None if x is None else float(x)


def _check_names(curves: Mapping[str, LayerCurve], other: Mapping[str, Any], arg: str) -> None:
    mismatched = [k for k, c in curves.items() if k != c.name]
    if mismatched:
        raise ValueError(
            f"curves must be keyed by LayerCurve.name; keys {mismatched} differ from their names"
        )
    unknown = [n for n in other if n not in curves]
    if unknown:
        raise ValueError(
            f"{arg} names layers {unknown} that have no curve; layers with curves: {list(curves)}"
        )


def layer_rows(
    curves: Mapping[str, LayerCurve], ranks: Mapping[str, int | None], reasons: Mapping[str, str]
) -> list[LayerRow]:
    """One row per curve, in the curves' order; a layer missing from ``ranks`` (or ``None``) stays dense.

    Args:
        curves: every targeted layer's score curve, keyed by its name.
        ranks: the chosen rank per layer (e.g. ``BudgetSelection.ranks``); each must be a scored rank.
        reasons: why each layer got its rank (e.g. ``BudgetSelection.reasons``); missing ones are ``""``.
    """
    _check_names(curves, ranks, "ranks")
    _check_names(curves, reasons, "reasons")
    rows = []
    for name, curve in curves.items():
        rank = ranks.get(name)
        reason = str(reasons.get(name, ""))
        if rank is None:
            p, m = curve.dense_params, curve.dense_macs
            rows.append(
                LayerRow(name, curve.method, curve.ref_rank, None, None, None, None, None, p, p, m, m, reason)
            )
            continue
        try:
            cand = curve.candidate(rank)
        except KeyError as err:
            raise ValueError(f"ranks[{name!r}] = {rank} is not a scored rank: {err.args[0]}") from err
        rows.append(
            LayerRow(
                layer=name,
                method=curve.method,
                ref_rank=curve.ref_rank,
                rank=rank,
                score=float(cand.score),
                score_normalised=_normalised(cand.score, reference_score(curve)),
                rel_error=_opt_float(cand.rel_error),
                kappa=_opt_float(cand.kappa),
                params_before=curve.dense_params,
                params_after=cand.params,
                macs_before=curve.dense_macs,
                macs_after=cand.macs,
                reason=reason,
            )
        )
    return rows


def ratio(before: int, after: int) -> float:
    """``before / after`` (2.0 = half the cost); 1.0 for 0/0 and ``inf`` when only ``after`` is 0."""
    if after == 0:
        return 1.0 if before == 0 else math.inf
    return before / after


@dataclass(frozen=True)
class Totals:
    """Sums over the targeted layers (``rows``) and, when given, the whole model's counts.

    Ratios are ``before / after``: 2.0 means the cost halved. ``model_*`` fields are ``None`` unless the
    caller passed measured whole-model counts (e.g. from ``count_module_costs`` before and after the swap).
    """

    n_layers: int
    n_compressed: int
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    params_ratio: float
    macs_ratio: float
    model_params_before: int | None = None
    model_params_after: int | None = None
    model_macs_before: int | None = None
    model_macs_after: int | None = None
    model_params_ratio: float | None = None
    model_macs_ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_count(value: int | None, arg: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"totals: {arg} must be an int >= 0 or None, got {value!r}")
    return value


def _model_pair(before: int | None, after: int | None, layers_before: int, kind: str) -> float | None:
    b = _check_count(before, f"model_{kind}_before")
    a = _check_count(after, f"model_{kind}_after")
    if b is not None and b < layers_before:
        raise ValueError(
            f"totals: model_{kind}_before={b} is below the targeted layers' sum {layers_before}; "
            f"pass whole-model counts measured on the same input as the curves"
        )
    return None if a is None or b is None else ratio(b, a)


def totals(
    rows: Sequence[LayerRow],
    model_params_before: int | None = None,
    model_params_after: int | None = None,
    model_macs_before: int | None = None,
    model_macs_after: int | None = None,
) -> Totals:
    """Sum the rows' costs, count compressed layers and form the before/after ratios."""
    pb = sum(r.params_before for r in rows)
    pa = sum(r.params_after for r in rows)
    mb = sum(r.macs_before for r in rows)
    ma = sum(r.macs_after for r in rows)
    return Totals(
        n_layers=len(rows),
        n_compressed=sum(r.compressed for r in rows),
        params_before=pb,
        params_after=pa,
        macs_before=mb,
        macs_after=ma,
        params_ratio=ratio(pb, pa),
        macs_ratio=ratio(mb, ma),
        model_params_before=model_params_before,
        model_params_after=model_params_after,
        model_macs_before=model_macs_before,
        model_macs_after=model_macs_after,
        model_params_ratio=_model_pair(model_params_before, model_params_after, pb, "params"),
        model_macs_ratio=_model_pair(model_macs_before, model_macs_after, mb, "macs"),
    )


def curve_points(curve: LayerCurve) -> list[tuple[int, float]]:
    """``(rank, s(rank) / s(ref_rank))`` for every scored rank, ascending: what a score-vs-rank plot draws."""
    ref = reference_score(curve)
    return [(c.rank, _normalised(c.score, ref)) for c in sorted(curve.candidates, key=lambda c: c.rank)]
