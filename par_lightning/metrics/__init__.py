"""PAR evaluation metrics: pure functions and the accumulating :class:`PARMetrics`."""

from __future__ import annotations

from par_lightning.metrics import functional
from par_lightning.metrics.functional import (
    EPS,
    par_instance_sums,
    par_metrics_compute,
    par_stat_scores,
)
from par_lightning.metrics.par_metrics import PARMetrics

# Importing the submodule ``par_metrics`` binds the package attribute of that name to the module;
# the public name is the one-shot function, so bind it explicitly after the submodule import.
par_metrics = functional.par_metrics

__all__ = [
    "EPS",
    "PARMetrics",
    "functional",
    "par_instance_sums",
    "par_metrics",
    "par_metrics_compute",
    "par_stat_scores",
]
