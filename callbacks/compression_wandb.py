"""Log a compression report (``par_lightning.compression.report``) to a W&B run.

Glue only: the numbers come from ``layer_rows``/``totals``/``curve_points``; wandb is imported inside the
function so this module loads without it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from par_lightning.compression.curves import LayerCurve
from par_lightning.compression.report import LayerRow, Totals, curve_points

STEP_KEY = "trainer/global_step"  # what Lightning's WandbLogger logs the step under


def log_compression_to_wandb(
    run: Any,
    rows: Sequence[LayerRow],
    totals: Totals,
    curves: Mapping[str, LayerCurve],
    step: int | None,
    prefix: str = "compression",
) -> None:
    """Log the per-layer table, the score-vs-rank curves and the totals of one compression event.

    Writes ``<prefix>/layers`` (a ``wandb.Table``, one row per layer, :class:`LayerRow`'s columns) and
    ``<prefix>/score_curves`` (one ``wandb.plot.line_series``: x = scored ranks, y = ``s(r)/s(r_ref)``,
    one line per layer) in one ``run.log`` call, and every non-``None`` :class:`Totals` field as the run
    summary key ``<prefix>/<field>`` (e.g. ``compression/params_ratio``).

    Args:
        run: a ``wandb`` Run, e.g. ``WandbLogger.experiment``.
        rows: from ``layer_rows``.
        totals: from ``totals(rows, ...)``.
        curves: the layers' score curves (plotted in this order).
        step: the trainer's global step, logged as ``trainer/global_step`` like Lightning's ``WandbLogger``
            does (W&B's own step is left to advance by itself, so a smaller step never drops the data).
        prefix: key prefix, e.g. ``compression`` or ``compression/event1``.
    """
    import wandb

    if not rows:
        raise ValueError("log_compression_to_wandb: rows is empty; there is no compression to log")
    if not curves:
        raise ValueError("log_compression_to_wandb: curves is empty; pass the layers' LayerCurves")
    if not prefix or prefix.endswith("/"):
        raise ValueError(
            f"log_compression_to_wandb: prefix must be non-empty without a trailing '/', got {prefix!r}"
        )

    names = [f.name for f in dataclasses.fields(LayerRow)]
    columns: list[str | int] = list(names)  # wandb's annotation
    table = wandb.Table(columns=columns, data=[[getattr(r, c) for c in names] for r in rows])
    points = [curve_points(c) for c in curves.values()]
    series = wandb.plot.line_series(
        xs=[[r for r, _ in pts] for pts in points],
        ys=[[s for _, s in pts] for pts in points],
        keys=list(curves),
        title="normalised alignment score s(r)/s(r_ref) vs rank",
        xname="rank",
    )
    data: dict[str, Any] = {f"{prefix}/layers": table, f"{prefix}/score_curves": series}
    if step is not None:
        data[STEP_KEY] = step
    run.log(data)
    run.summary.update({f"{prefix}/{k}": v for k, v in totals.to_dict().items() if v is not None})
