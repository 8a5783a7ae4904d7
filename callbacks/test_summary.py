"""An end-of-run Rich table of the test metrics, so the result is the last thing a user sees."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from rich.console import Console
from rich.table import Table
from typing_extensions import override

HEADLINE = ("mA", "acc", "prec", "rec", "f1", "loss")


def summary_table(metrics: dict[str, float], prefix: str = "test/", per_attribute: bool = True) -> Table:
    """Build the table from logged values (``test/mA``, ``test/mA_attr/<name>``, ...)."""
    table = Table(title="Test results", show_lines=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in HEADLINE:
        if f"{prefix}{key}" in metrics:
            table.add_row(key, f"{metrics[prefix + key]:.4f}")
    if per_attribute:
        attr_prefix = f"{prefix}mA_attr/"
        for key in sorted(k for k in metrics if k.startswith(attr_prefix)):
            table.add_row(f"mA {key[len(attr_prefix) :]}", f"{metrics[key]:.4f}")
    return table


class TestSummary(Callback):
    """Prints :func:`summary_table` after ``test`` on global rank 0.

    Args:
        per_attribute: also list the per-attribute mA.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, per_attribute: bool = True) -> None:
        self.per_attribute = per_attribute

    @override
    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._print(trainer)

    @rank_zero_only
    def _print(self, trainer: Trainer) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
        if metrics:
            Console().print(summary_table(metrics, per_attribute=self.per_attribute))
