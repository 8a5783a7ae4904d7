"""Console table and score-curve figure of a compression report (``report.py``).

rich and matplotlib are imported inside the functions so importing the package stays cheap. The figure
is drawn with matplotlib's object API on an Agg canvas: no pyplot, no GUI backend, no global state.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from par_lightning.atomic_io import atomic_writer

from .curves import LayerCurve
from .report import LayerRow, Totals, curve_points

if TYPE_CHECKING:
    from rich.table import Table

MAX_COLUMNS = 6


def si(n: float) -> str:
    """Compact count: ``950``, ``12.3k``, ``4.56M``, ``1.23G`` (3 significant digits above 1000)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.3g}"


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def _cost(before: int, after: int) -> str:
    return f"{si(before)} -> {si(after)}"


def _ratio(r: float | None) -> str:
    return "" if r is None else f"x{r:.2f}"


def rich_table(rows: Sequence[LayerRow], totals: Totals, title: str) -> Table:
    """One line per layer (rank as ``r/r_ref`` or ``dense/r_ref``), then a totals row with the ratios.

    A ``model`` row follows when ``totals`` carries whole-model counts.
    """
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for header, justify in (
        ("layer", "left"),
        ("method", "left"),
        ("rank", "right"),
        ("s~", "right"),
        ("rel.err", "right"),
        ("kappa", "right"),
        ("params before->after", "right"),
        ("MACs before->after", "right"),
    ):
        table.add_column(header, justify=justify, no_wrap=header == "layer")  # type: ignore[arg-type]
    for r in rows:
        table.add_row(
            r.layer,
            r.method,
            f"{'dense' if r.rank is None else r.rank}/{r.ref_rank}",
            _num(r.score_normalised),
            _num(r.rel_error),
            _num(r.kappa, ".2f"),
            _cost(r.params_before, r.params_after),
            _cost(r.macs_before, r.macs_after),
        )
    table.add_section()
    t = totals
    table.add_row(
        f"total ({t.n_compressed}/{t.n_layers} compressed)",
        "",
        "",
        "",
        "",
        "",
        f"{_cost(t.params_before, t.params_after)} {_ratio(t.params_ratio)}",
        f"{_cost(t.macs_before, t.macs_after)} {_ratio(t.macs_ratio)}",
        style="bold",
    )
    if t.model_params_before is not None or t.model_macs_before is not None:
        params = macs = "-"
        if t.model_params_before is not None and t.model_params_after is not None:
            params = f"{_cost(t.model_params_before, t.model_params_after)} {_ratio(t.model_params_ratio)}"
        if t.model_macs_before is not None and t.model_macs_after is not None:
            macs = f"{_cost(t.model_macs_before, t.model_macs_after)} {_ratio(t.model_macs_ratio)}"
        table.add_row("model", "", "", "", "", "", params, macs, style="bold")
    return table


def render_text(table: Table, width: int = 200) -> str:
    """The table as plain text (no colour codes), for log files and tests."""
    import io

    from rich.console import Console

    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(table)
    return console.export_text()


def _check_plot_args(
    curves: Mapping[str, LayerCurve], tau: float | None, chosen: Mapping[str, int | None]
) -> None:
    if not curves:
        raise ValueError("plot_score_curves: curves is empty; pass at least one LayerCurve")
    unknown = [n for n in chosen if n not in curves]
    if unknown:
        raise ValueError(f"plot_score_curves: chosen names layers {unknown} that have no curve")
    if tau is not None and not math.isfinite(tau):
        raise ValueError(f"plot_score_curves: tau must be a finite float or None, got {tau!r}")
    for name, rank in chosen.items():
        if rank is not None and rank not in {c.rank for c in curves[name].candidates}:
            raise ValueError(f"plot_score_curves: chosen[{name!r}] = {rank} is not a scored rank")


def plot_score_curves(
    curves: Mapping[str, LayerCurve],
    path: str | os.PathLike[str],
    tau: float | None,
    chosen: Mapping[str, int | None],
) -> Path:
    """Small multiples of ``s(r)/s(r_ref)`` vs rank (log2 axis), one panel per layer, written as one PNG.

    Each panel shows the scored ranks, ``r_ref`` (dotted), ``tau`` (dashed) and the chosen rank (red dot),
    or "dense" when the layer was kept dense. Written atomically (temp file in the same folder, then
    ``os.replace``) so a reader never sees a half-written image.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import ScalarFormatter

    _check_plot_args(curves, tau, chosen)
    n = len(curves)
    ncols = min(MAX_COLUMNS, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(2.6 * ncols, 2.0 * nrows + 0.4), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    for ax, (name, curve) in zip(axes.flat, curves.items(), strict=False):
        pts = curve_points(curve)
        ranks, scores = [p[0] for p in pts], [p[1] for p in pts]
        ax.plot(ranks, scores, "o-", ms=2.5, lw=1.0, color="tab:blue")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())  # 2, 4, 8 rather than 2^1, 2^2, 2^3
        ax.axvline(curve.ref_rank, color="grey", ls=":", lw=0.8)
        if tau is not None:
            ax.axhline(tau, color="tab:orange", ls="--", lw=1.0)
        rank = chosen.get(name)
        if rank is not None:
            ax.plot([rank], [dict(pts)[rank]], "o", ms=6, color="tab:red")
        elif name in chosen:
            ax.text(0.5, 0.1, "dense", transform=ax.transAxes, ha="center", color="tab:red", fontsize=8)
        label = name if len(name) <= 32 else "..." + name[-29:]
        shown = "dense" if name in chosen and rank is None else "-" if rank is None else rank
        ax.set_title(f"{label}\n{curve.method} r={shown}/{curve.ref_rank}", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(True, lw=0.3, alpha=0.5)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.suptitle("normalised alignment score s(r)/s(r_ref) vs rank", fontsize=9)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, "wb") as f:
        fig.savefig(f, format="png")
    return path
