"""The gradient-alignment rank search: score candidate ranks of every target layer, then select.

For each target layer: the dense gradient ``G`` (one K-batch pass for all layers), then for each rank
of the sqrt(2) grid below the parameter-neutral rank, the factors (SVD, or CP-ALS + capped EPC), the
swapped-in gradient ``G_hat`` on the same batches and RNG state, and the score
``cos(G, J J^T G_hat)``. The result is one :class:`LayerCurve` per layer, which the selection rules
of :mod:`.selection` turn into a :class:`CompressionPlan`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from par_lightning.compression.calibration import LossFn, layer_gradients, score_rank, swapped_gradient
from par_lightning.compression.costs import (
    dense_macs,
    dense_params,
    factorized_macs,
    factorized_params,
    input_sizes,
)
from par_lightning.compression.cpd import cp_decompose
from par_lightning.compression.curves import Candidate, LayerCurve, Method
from par_lightning.compression.factors import CPFactors, SVDFactors
from par_lightning.compression.layers import svd_factors
from par_lightning.compression.prefix_cache import capture_outputs, replay_outputs, stages_before
from par_lightning.compression.ranks import max_rank
from par_lightning.compression.selection import rank_grid


@dataclass(frozen=True)
class SearchOptions:
    """How candidates are produced and scored.

    Attributes:
        grid_steps: ranks per layer on the grid ``r_ref * 2^(-j/2)``.
        stop_below: stop scanning a layer's grid (top down) at the first rank whose normalised score is
            below this (the threshold rule never picks below it); ``None`` scores the whole grid (needed
            by the global-budget rule).
        als_iters, epc_sweeps: CP effort per candidate during the search (EPC capped, spec §3.6).
        warm_start: start each lower CP rank's ALS from the strongest components of the rank above.
        warm_als_iters: ALS iterations of a warm-started rank (``None``: ``als_iters``).
        seed: RNG seed of the calibration passes and of CP-ALS.
        cp_device: where CP decompositions run (``None`` = the layer's device).
        stages: upstream stages whose outputs are replayed (see :mod:`.prefix_cache`).
    """

    grid_steps: int = 9
    stop_below: float | None = 0.9
    als_iters: int = 200
    epc_sweeps: int = 100
    warm_start: bool = True
    warm_als_iters: int | None = None
    seed: int = 0
    cp_device: str | None = None
    stages: tuple[str, ...] = ()


@dataclass
class SearchReport:
    """Timings and counts of one search, for logs and benchmarks."""

    seconds_gradients: float = 0.0
    seconds_decompose: float = 0.0
    seconds_scoring: float = 0.0
    candidates: int = 0
    per_layer_seconds: dict[str, float] = field(default_factory=dict)


def _factors(
    layer: nn.Module,
    method: Method,
    rank: int,
    opts: SearchOptions,
    full_svd: SVDFactors | None,
    previous: SVDFactors | CPFactors | None,
) -> tuple[SVDFactors | CPFactors, float | None]:
    weight = cast(torch.Tensor, layer.weight).detach()
    if method == "svd":  # truncations of one SVD: the balanced split is per singular triplet
        assert full_svd is not None
        return SVDFactors(full_svd.a[:, :rank], full_svd.b[:rank]), None
    warm = previous if opts.warm_start and isinstance(previous, CPFactors) else None
    iters = opts.warm_als_iters if warm is not None and opts.warm_als_iters is not None else opts.als_iters
    factors, diag = cp_decompose(
        weight,
        rank,
        method,
        init=warm,
        als_iters=iters,
        epc_sweeps=opts.epc_sweeps,
        seed=opts.seed,
        device=opts.cp_device,
    )
    return factors, diag.kappa_after


def _dense_weight(factors: SVDFactors | CPFactors, weight: torch.Tensor) -> torch.Tensor:
    if isinstance(factors, SVDFactors):
        return factors.reconstruct().reshape(weight.shape)
    return factors.reconstruct((weight.shape[2], weight.shape[3]))


def score_layers(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Sequence[Any],
    targets: Mapping[str, Method],
    example_input: torch.Tensor,
    options: SearchOptions | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[dict[str, LayerCurve], SearchReport]:
    """Score the rank grid of every target layer (the model is left exactly as it was).

    Args:
        model: the trained dense model.
        loss_fn: ``(model, batch) -> scalar loss`` (the training loss, no logging).
        batches: the K calibration batches, fixed for all passes.
        targets: layer name -> method, e.g. from :func:`select_layers`.
        example_input: one input batch for the MAC counts (only its shape matters).
        options: grid, CP effort, early stop, cached stages.
        progress: called as ``progress(layer, index, total)`` before each layer.
    """
    opts = options or SearchOptions()
    report = SearchReport()
    modules = dict(model.named_modules())
    ref_param = next(model.parameters())
    sizes = input_sizes(model, example_input.to(device=ref_param.device, dtype=ref_param.dtype))
    start = time.perf_counter()
    grads = layer_gradients(model, loss_fn, batches, list(targets), seed=opts.seed)
    report.seconds_gradients = time.perf_counter() - start
    cache = capture_outputs(model, loss_fn, batches, list(opts.stages), seed=opts.seed) if opts.stages else {}
    curves: dict[str, LayerCurve] = {}
    for index, (name, method) in enumerate(targets.items()):
        if progress is not None:
            progress(name, index, len(targets))
        layer_start = time.perf_counter()
        layer = modules[name]
        weight = cast(torch.Tensor, layer.weight).detach()
        ref = max_rank(layer, method, 1.0)
        replay = {s: cache[s] for s in stages_before(name, opts.stages)}
        candidates: list[Candidate] = []
        ref_score: float | None = None
        full_svd = svd_factors(weight, min(weight.shape[:2])) if method == "svd" else None
        factors: SVDFactors | CPFactors | None = None
        for rank in rank_grid(ref, opts.grid_steps):
            t0 = time.perf_counter()
            factors, kappa = _factors(layer, method, rank, opts, full_svd, factors)
            w_hat = _dense_weight(factors, weight).to(weight.dtype)
            t1 = time.perf_counter()
            with replay_outputs(model, replay):
                g_hat = swapped_gradient(model, loss_fn, batches, name, w_hat, seed=opts.seed)
            score = score_rank(grads[name], g_hat, factors)
            report.seconds_decompose += t1 - t0
            report.seconds_scoring += time.perf_counter() - t1
            report.candidates += 1
            rel = float((weight.double() - w_hat.double()).norm() / weight.double().norm().clamp_min(1e-30))
            candidates.append(
                Candidate(
                    rank=rank,
                    score=score,
                    params=factorized_params(layer, method, rank),
                    macs=factorized_macs(layer, method, rank, sizes.get(name)),
                    rel_error=rel,
                    kappa=kappa,
                )
            )
            ref_score = score if ref_score is None else ref_score
            if opts.stop_below is not None and (ref_score <= 0 or score / ref_score < opts.stop_below):
                break  # the threshold rule cannot pick this rank or any smaller one
        curves[name] = LayerCurve(
            name=name,
            method=method,
            ref_rank=ref,
            dense_params=dense_params(layer),
            dense_macs=dense_macs(layer, sizes.get(name)),
            candidates=tuple(candidates),
        )
        report.per_layer_seconds[name] = time.perf_counter() - layer_start
    return curves, report
