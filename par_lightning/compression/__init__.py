"""Low-rank compression maths as pure PyTorch: factorized layers, CPD-EPC, gradient-alignment ranks.

Nothing in this package imports Lightning (a test enforces it); ``callbacks/`` orchestrates it.
"""

from par_lightning.compression.alignment import (
    alignment_score,
    cp_update_direction,
    normalised,
    svd_proxy_scores,
    svd_update_direction,
    update_direction_func,
)
from par_lightning.compression.bn_recalibration import average_batchnorm_stats, recalibrate_batchnorm
from par_lightning.compression.calibration import layer_gradients, score_rank, swapped_gradient
from par_lightning.compression.costs import (
    count_module_costs,
    dense_macs,
    dense_params,
    factorized_macs,
    factorized_params,
    input_sizes,
)
from par_lightning.compression.cpd import CPDiagnostics, cp_decompose, top_components
from par_lightning.compression.curves import Candidate, LayerCurve, Method
from par_lightning.compression.factors import CPFactors, SVDFactors
from par_lightning.compression.layers import build_cp, build_svd, factorized_weight, read_factors, svd_factors
from par_lightning.compression.optimizer_transfer import (
    scale_step,
    snapshot_optimizer,
    transfer_optimizer_state,
    transfer_scheduler_state,
)
from par_lightning.compression.plan import CompressionPlan, LayerPlan, PlanError, apply_plan, factorize_layer
from par_lightning.compression.policies import accuracy_bisection_plan, energy_plan, uniform_ratio_plan
from par_lightning.compression.prefix_cache import pipeline_stages
from par_lightning.compression.ranks import default_method, max_rank, max_rank_macs
from par_lightning.compression.report import LayerRow, Totals, layer_rows, totals
from par_lightning.compression.search import SearchOptions, SearchReport, score_layers
from par_lightning.compression.selection import (
    plan_from_selection,
    rank_grid,
    select_budget,
    select_threshold,
)
from par_lightning.compression.targets import TargetSelection, select_layers

__all__ = [
    "LayerRow",
    "Totals",
    "average_batchnorm_stats",
    "pipeline_stages",
    "layer_rows",
    "recalibrate_batchnorm",
    "scale_step",
    "snapshot_optimizer",
    "top_components",
    "totals",
    "transfer_optimizer_state",
    "transfer_scheduler_state",
    "CPDiagnostics",
    "SearchOptions",
    "SearchReport",
    "cp_decompose",
    "score_layers",
    "CPFactors",
    "Candidate",
    "CompressionPlan",
    "LayerCurve",
    "LayerPlan",
    "Method",
    "PlanError",
    "SVDFactors",
    "TargetSelection",
    "accuracy_bisection_plan",
    "alignment_score",
    "apply_plan",
    "build_cp",
    "build_svd",
    "count_module_costs",
    "cp_update_direction",
    "default_method",
    "dense_macs",
    "dense_params",
    "energy_plan",
    "factorize_layer",
    "factorized_macs",
    "factorized_params",
    "factorized_weight",
    "input_sizes",
    "layer_gradients",
    "max_rank",
    "max_rank_macs",
    "normalised",
    "plan_from_selection",
    "rank_grid",
    "read_factors",
    "score_rank",
    "select_budget",
    "select_layers",
    "select_threshold",
    "svd_factors",
    "svd_proxy_scores",
    "svd_update_direction",
    "swapped_gradient",
    "uniform_ratio_plan",
    "update_direction_func",
]
