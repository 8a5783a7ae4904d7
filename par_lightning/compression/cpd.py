"""CPD-EPC of a convolution kernel: the public entry point used by the rank search and the layer builders.

The kernel is decomposed in float64 (ALS, then Error Preserving Correction), and the factors come
back in the weight's dtype and device with balanced scales, ready to initialise a CP3/CP4 layer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from par_lightning.compression.cp_als import cp_als, cp_full, normalize_columns
from par_lightning.compression.epc import epc, kappa, lambda_sq, sensitivity
from par_lightning.compression.factors import CPFactors

CPMethod = Literal["cp3", "cp4"]
_METHODS = ("cp3", "cp4")


@dataclass(frozen=True)
class CPDiagnostics:
    """How good and how well-conditioned a kernel's CP is, before (ALS) and after EPC.

    Sensitivities are for the balanced split the factors are returned with; ``lambda_sq_history[0]``
    is the ALS value and entry k > 0 follows EPC sweep k.
    """

    rel_error_als: float  # ||W - W_als|| / ||W||
    rel_error: float  # ||W - W_hat|| / ||W|| of the returned factors
    sensitivity_before: float
    sensitivity_after: float
    kappa_before: float  # ||lambda||^2 / ||W_hat||^2
    kappa_after: float
    lambda_sq_history: tuple[float, ...]
    sweeps: int  # EPC sweeps run
    seconds: float  # wall-clock time of the whole decomposition
    lambda_ratio: float  # max lambda / min lambda after EPC (inf when a component vanished)


def balanced_split(factors: Sequence[Tensor]) -> list[Tensor]:
    """Rescale columns so every factor's r-th column has norm ``lambda_r^(1/N)`` (same tensor).

    The split does not change the reconstruction but does change the Jacobian, hence training:
    equal norms avoid one factor carrying all the scale.
    """
    units, lam = normalize_columns(factors)
    root = lam.pow(1.0 / len(factors))  # (R,)
    return [u * root for u in units]


def top_components(factors: CPFactors, rank: int, method: CPMethod) -> list[Tensor]:
    """The ``rank`` rank-1 terms of largest norm, as float64 ALS factors in the tensor's mode order.

    Used to warm-start a lower grid rank from the decomposition of the next larger one (spec §3.6):
    the dominant terms already explain most of the kernel, so ALS starts near a good solution.
    """
    modes = [factors.out, factors.inp, *factors.spatial]
    if method == "cp3" and len(factors.spatial) != 1 or method == "cp4" and len(factors.spatial) != 2:
        raise ValueError(f"init factors have {len(factors.spatial)} spatial factor(s), not a {method} model")
    if rank > factors.rank:
        raise ValueError(
            f"cannot warm-start rank {rank} from a rank-{factors.rank} model (it must be larger)"
        )
    units, lam = normalize_columns([m.detach().to(torch.float64) for m in modes])
    keep = torch.argsort(lam, descending=True)[:rank]  # (rank,)
    root = lam[keep].pow(1.0 / len(units))  # (rank,)
    return [u[:, keep] * root for u in units]


def _check_args(weight: Tensor, rank: int, method: str, als_iters: int, epc_sweeps: int, seed: int) -> None:
    if not isinstance(weight, Tensor) or weight.ndim != 4 or not weight.is_floating_point():
        got = (
            f"{type(weight).__name__} {tuple(weight.shape)} {weight.dtype}"
            if isinstance(weight, Tensor)
            else type(weight).__name__
        )
        raise ValueError(f"weight must be a floating-point conv kernel (Cout, Cin, kh, kw); got {got}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    for name, value, low in (("rank", rank, 1), ("als_iters", als_iters, 1), ("epc_sweeps", epc_sweeps, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")


def _resolve_device(weight: Tensor, device: torch.device | str | None) -> torch.device:
    dev = weight.device if device is None else torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} asks for CUDA but torch.cuda.is_available() is False; "
            "pass device=None or 'cpu'"
        )
    return dev


def cp_decompose(
    weight: Tensor,
    rank: int,
    method: CPMethod = "cp3",
    *,
    als_iters: int = 500,
    epc_sweeps: int = 300,
    seed: int = 0,
    device: torch.device | str | None = None,
    init: CPFactors | None = None,
) -> tuple[CPFactors, CPDiagnostics]:
    """Rank-``rank`` CP of a conv kernel by ALS followed by Error Preserving Correction.

    CP3 decomposes the 3-way view ``(Cout, Cin, kh*kw)``; CP4 the 4-way kernel. EPC keeps the ALS
    error and minimises the norms of the rank-1 terms, which removes the cancelling, badly scaled
    components ALS tends to produce at high ranks and makes the factorised layer trainable.

    Args:
        weight: ``(Cout, Cin, kh, kw)`` kernel (any floating dtype and device).
        rank: CP rank R (may exceed Cin, Cout or kh*kw).
        method: ``'cp3'`` or ``'cp4'``.
        als_iters: ALS iteration cap.
        epc_sweeps: EPC sweep cap; 0 returns the ALS factors (balanced).
        seed: seed of the random ALS start.
        device: where the float64 maths runs (default: the weight's device).
        init: start ALS from these factors instead of a random draw (a warm start): a larger
            rank's factors are cut to their ``rank`` strongest components (see :func:`top_components`).

    Returns:
        Factors in the weight's dtype and device with balanced scales, and diagnostics.
    """
    _check_args(weight, rank, method, als_iters, epc_sweeps, seed)
    dev = _resolve_device(weight, device)
    start = time.perf_counter()
    cout, cin, kh, kw = weight.shape
    x = weight.detach().to(device=dev, dtype=torch.float64)  # (Cout, Cin, kh, kw)
    if method == "cp3":
        x = x.reshape(cout, cin, kh * kw)  # (Cout, Cin, kh*kw)
    x_norm = float(x.norm())
    if not math.isfinite(x_norm) or x_norm == 0.0:
        raise ValueError(f"weight must be finite and not all zeros to be decomposed (norm {x_norm})")

    start_factors = None if init is None else top_components(init, rank, method)
    als = cp_als(x, rank, max_iters=als_iters, seed=seed, init=start_factors)
    factors = als.factors
    history: tuple[float, ...] = (lambda_sq(factors),)
    if epc_sweeps > 0:
        corrected = epc(x, factors, max_sweeps=epc_sweeps)
        factors, history = corrected.factors, corrected.lambda_sq
    before, after = balanced_split(als.factors), balanced_split(factors)
    lam = normalize_columns(factors)[1]  # (R,)
    lam_min = float(lam.min())
    diagnostics = CPDiagnostics(
        rel_error_als=float((x - cp_full(als.factors)).norm()) / x_norm,
        rel_error=float((x - cp_full(after)).norm()) / x_norm,
        sensitivity_before=sensitivity(before),
        sensitivity_after=sensitivity(after),
        kappa_before=kappa(als.factors),
        kappa_after=kappa(factors),
        lambda_sq_history=history,
        sweeps=len(history) - 1,
        seconds=time.perf_counter() - start,
        lambda_ratio=float(lam.max()) / lam_min if lam_min > 0 else math.inf,
    )
    out = [f.to(device=weight.device, dtype=weight.dtype) for f in after]
    return CPFactors(out=out[0], inp=out[1], spatial=tuple(out[2:])), diagnostics
