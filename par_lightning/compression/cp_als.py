"""CP alternating least squares for 3- and 4-way tensors, plus the multilinear primitives EPC reuses.

A CP model is kept as unit-norm factor columns plus a positive scale vector ``lam`` while iterating:
with every factor but U_n normalised, the Gram matrix of the other modes has a unit diagonal, so a
fixed relative ridge is well scaled whatever the history of the scales.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

_RIDGE = 1e-10  # relative to trace(Gamma) / R: keeps over-complete ranks (R > I_n) solvable
_DIRECT = 1e-4  # below this relative error, ||X||^2 - fit has lost too many digits: use the residual instead
_EXACT = 1e-12  # relative error at machine precision: nothing left to fit


def khatri_rao(mats: Sequence[Tensor]) -> Tensor:
    """Column-wise Kronecker product, rows in row-major order of the inputs' rows (first varies slowest)."""
    out = mats[0]  # (I_0, R)
    for m in mats[1:]:
        out = (out[:, None, :] * m[None, :, :]).reshape(-1, m.shape[1])  # (I_0 * I_1, R)
    return out


def cp_full(factors: Sequence[Tensor]) -> Tensor:
    """Dense tensor ``sum_r u_r^(1) o ... o u_r^(N)``."""
    rest = khatri_rao(list(factors[1:]))  # (prod I_1.., R)
    return (factors[0] @ rest.T).reshape([f.shape[0] for f in factors])


def mttkrp(x: Tensor, factors: Sequence[Tensor], n: int) -> Tensor:
    """``X_(n) @ KhatriRao(other factors)`` without forming the Khatri-Rao product of all other modes.

    The largest other mode is contracted first by one matmul, which keeps the intermediate at
    ``prod(I) / I_first * R`` entries (a 512x512x9 tensor at R = 500 never builds a 512*512*R array).
    """
    others = [k for k in range(x.ndim) if k != n]
    first = max(others, key=lambda k: x.shape[k])
    rest = [k for k in others if k != first]
    t = torch.movedim(x, [n, *rest, first], list(range(x.ndim)))  # (I_n, *I_rest, I_first)
    t = t.reshape(-1, x.shape[first]) @ factors[first]  # (I_n * prod I_rest, R)
    if not rest:
        return t
    t = t.reshape(x.shape[n], -1, t.shape[1])  # (I_n, prod I_rest, R)
    return (t * khatri_rao([factors[k] for k in rest])).sum(1)  # (I_n, R)


def sweep_mttkrps(x: Tensor, units: list[Tensor]) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(n, Gm_n)`` for every mode once, for a caller that replaces ``units[n]`` before the next step.

    The largest mode p goes first; once U_p is updated, ``S = X x_p U_p`` is formed once and every
    other mode's MTTKRP is a cheap contraction of S, so a sweep costs two tensor-sized matmuls
    instead of N.
    """
    p = max(range(x.ndim), key=lambda k: x.shape[k])
    others = [k for k in range(x.ndim) if k != p]
    yield p, mttkrp(x, units, p)
    s = torch.movedim(x, p, -1) @ units[p]  # (*I_others, R) after the caller's update of mode p
    for i, n in enumerate(others):
        rest = [k for k in others if k != n]
        t = torch.movedim(s, i, 0).reshape(x.shape[n], -1, s.shape[-1])  # (I_n, prod I_rest, R)
        yield n, (t * khatri_rao([units[k] for k in rest])).sum(1)  # (I_n, R)


def gram_hadamard(grams: Sequence[Tensor], n: int) -> Tensor:
    """``Gamma = *_{k != n} U_k^T U_k`` (Hadamard), the Gram matrix of the mode-n Khatri-Rao product."""
    out = torch.ones_like(grams[0])  # (R, R)
    for k, g in enumerate(grams):
        if k != n:
            out = out * g
    return out


def fit_value(gm: Tensor, gram: Tensor, u: Tensor) -> Tensor:
    """``||X||^2 - ||X_(n) - U K^T||^2 = 2 <Gm, U> - <U^T U, Gamma>``: the error without a reconstruction."""
    return 2 * (gm * u).sum() - ((u.T @ u) * gram).sum()


def error_sq(x: Tensor, x_sq: float, fit: float, factors: Sequence[Tensor]) -> float:
    """``||X - X_hat||^2`` from ``fit``, or from the residual when ``||X||^2 - fit`` cancels most digits."""
    err_sq = x_sq - fit
    if err_sq < _DIRECT**2 * x_sq:
        err_sq = float((x - cp_full(factors)).square().sum())
    return max(err_sq, 0.0)


def normalize_columns(factors: Sequence[Tensor]) -> tuple[list[Tensor], Tensor]:
    """Unit-norm columns and the scale ``lam_r = prod_n ||u_r^(n)||`` (zero columns stay zero)."""
    lam = torch.ones(factors[0].shape[1], dtype=factors[0].dtype, device=factors[0].device)  # (R,)
    units = []
    for f in factors:
        norms = f.norm(dim=0)  # (R,)
        lam = lam * norms
        units.append(f / norms.clamp_min(torch.finfo(f.dtype).tiny))
    return units, lam


@dataclass(frozen=True)
class ALSResult:
    """Factors (the scale sits in the last-updated one) and ``||X - X_hat|| / ||X||`` per iteration."""

    factors: list[Tensor]
    rel_errors: tuple[float, ...]

    @property
    def iters(self) -> int:
        return len(self.rel_errors)


def _check_tensor(x: Tensor, rank: int) -> None:
    if x.ndim not in (3, 4):
        raise ValueError(f"CP-ALS handles 3- or 4-way tensors, got shape {tuple(x.shape)}")
    if x.dtype != torch.float64:
        raise ValueError(
            f"CP-ALS runs in float64 (round-off matters for EPC); got {x.dtype}: pass x.double()"
        )
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be a positive int, got {rank!r}")


def random_factors(shape: Sequence[int], rank: int, seed: int, device: torch.device) -> list[Tensor]:
    """Seeded Gaussian factors, drawn on CPU so a seed gives the same start on every device."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(i, rank, generator=gen, dtype=torch.float64).to(device) for i in shape]


def cp_als(
    x: Tensor,
    rank: int,
    *,
    max_iters: int = 500,
    tol: float = 1e-6,
    seed: int = 0,
    init: Sequence[Tensor] | None = None,
) -> ALSResult:
    """Rank-``rank`` CP of a float64 3- or 4-way tensor by ALS on the tensor's device.

    Each mode update is the ridge-regularised least-squares solution ``U_n = Gm (Gamma + ridge I)^-1``
    (ridge = 1e-10 trace(Gamma)/R, needed when R exceeds a mode size). Stops when the relative error
    changes by less than ``tol`` times itself between iterations, when it reaches machine precision
    (1e-12), or after ``max_iters``.

    Args:
        x: the tensor, float64.
        rank: CP rank R (may exceed the mode sizes).
        max_iters: iteration cap.
        tol: threshold on ``|err_k - err_{k-1}| / err_{k-1}`` of the relative error.
        seed: seed of the random initial factors (ignored when ``init`` is given).
        init: optional initial factors ``(I_n, R)``.
    """
    _check_tensor(x, rank)
    if max_iters < 1:
        raise ValueError(f"max_iters must be >= 1, got {max_iters}")
    if init is None:
        start = random_factors(x.shape, rank, seed, x.device)
    else:
        start = [f.to(device=x.device, dtype=torch.float64) for f in init]
    if [f.shape for f in start] != [torch.Size((i, rank)) for i in x.shape]:
        raise ValueError(f"init factors must have shapes (I_n, {rank}) for tensor shape {tuple(x.shape)}")
    units, lam = normalize_columns(start)
    grams = [u.T @ u for u in units]  # each (R, R)
    x_sq = float(x.square().sum())
    if not math.isfinite(x_sq) or x_sq == 0.0:
        raise ValueError(f"the tensor must be finite and nonzero, got ||X||^2 = {x_sq}")
    x_norm = math.sqrt(x_sq)
    errors: list[float] = []
    for _ in range(max_iters):
        for n, gm in sweep_mttkrps(x, units):
            gram = gram_hadamard(grams, n)  # (R, R)
            scaled = _ridge_solve(gm, gram)  # (I_n, R)
            lam = scaled.norm(dim=0)  # (R,)
            units[n] = scaled / lam.clamp_min(torch.finfo(x.dtype).tiny)
            grams[n] = units[n].T @ units[n]
        scaled_factors = [*units[:n], scaled, *units[n + 1 :]]
        errors.append(
            math.sqrt(error_sq(x, x_sq, float(fit_value(gm, gram, scaled)), scaled_factors)) / x_norm
        )
        if _converged(errors, tol):
            break
    units[n] = units[n] * lam
    return ALSResult(factors=units, rel_errors=tuple(errors))


def _ridge_solve(gm: Tensor, gram: Tensor) -> Tensor:
    """``Gm (Gamma + ridge I)^-1`` by Cholesky (LU if round-off makes the matrix indefinite)."""
    rank = gram.shape[0]
    a = gram + (_RIDGE * float(gram.trace()) / rank) * torch.eye(rank, dtype=gram.dtype, device=gram.device)
    chol, info = torch.linalg.cholesky_ex(a)
    if int(info) == 0:
        return torch.cholesky_solve(gm.T, chol).T
    return torch.linalg.solve(a, gm.T).T


def _converged(errors: list[float], tol: float) -> bool:
    """Relative change of the relative error below ``tol``, or an exact fit."""
    if errors[-1] < _EXACT:
        return True
    return len(errors) > 1 and abs(errors[-2] - errors[-1]) < tol * errors[-2]
