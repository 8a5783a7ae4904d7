"""Rank upper bounds for a compression ratio (spec §1.4) and the default factorization of a layer (§4.3).

Factorized costs are linear in the rank, so the largest rank whose cost is at most ``dense / rho`` is
``floor(dense / (rho * cost_per_rank))``. The division is done in exact rational arithmetic so a bound that
lands on an integer (e.g. 1056 x 352 / 1408 = 264) is not lost to float round-off.
"""

from __future__ import annotations

from fractions import Fraction
from math import floor

from torch import nn

from par_lightning.compression.costs import dense_macs, dense_params, factorized_macs, factorized_params
from par_lightning.compression.curves import Method


def _bound(dense: int, per_rank: int, rho: float) -> int:
    if not rho > 0:
        raise ValueError(
            f"compression ratio rho must be > 0 (1 = parameter-neutral, 4 = 4x smaller), got {rho}"
        )
    return floor(Fraction(dense) / (Fraction(rho) * per_rank))


def _svd_cap(layer: nn.Conv2d | nn.Linear, method: Method, bound: int) -> int:
    """SVD ranks above min(Cin, Cout) add nothing (the truncation is already exact)."""
    if method != "svd":
        return bound
    w = layer.weight
    return min(bound, w.shape[0], w.shape[1])


def max_rank(layer: nn.Conv2d | nn.Linear, method: Method, rho: float = 1.0) -> int:
    """Largest rank whose weight count is at most ``dense_params / rho`` (0 if even rank 1 is too costly).

    ``rho = 1`` gives the parameter-neutral rank, the upper end of the rank search; CP ranks may exceed the
    mode sizes, SVD ranks are capped at ``min(Cin, Cout)``.
    """
    bound = _bound(dense_params(layer), factorized_params(layer, method, 1), rho)
    return _svd_cap(layer, method, bound)


def max_rank_macs(layer: nn.Conv2d | nn.Linear, method: Method, rho: float, input_hw: tuple[int, int]) -> int:
    """Largest rank whose MACs are at most ``dense_macs / rho`` on an ``input_hw`` input.

    Differs from :func:`max_rank` for strided CP convs, whose first 1x1 runs at full input resolution.
    """
    bound = _bound(dense_macs(layer, input_hw), factorized_macs(layer, method, 1, input_hw), rho)
    return _svd_cap(layer, method, bound)


def default_method(layer: nn.Module) -> Method | None:
    """``'svd'`` for Linear and 1x1 convs, ``'cp3'`` for kxk convs (non-square too), None for anything else.

    Only the exact classes qualify: grouped, depthwise and transposed convs have nothing to factor, and
    subclasses may use their weight differently (timm's ``StdConv2d`` standardises it, ``Conv2dSame``
    pads dynamically, ``nn.MultiheadAttention``'s ``out_proj`` is never called as a module).
    CP3 rather than CP4 because it fits better at equal rank and never gets a size-1 spatial factor.
    """
    if type(layer) is nn.Linear:
        return "svd"
    if type(layer) is nn.Conv2d and layer.groups == 1:
        return "svd" if tuple(layer.kernel_size) == (1, 1) else "cp3"
    return None
