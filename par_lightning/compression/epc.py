"""Error Preserving Correction (EPC): the least sensitive CP model with the ALS error.

Solves ``min sum_r lambda_r^2  s.t.  ||X - [[lambda; U_1..U_N]]|| <= delta`` by alternating over modes.
With every factor but U_n at unit column norm, ``sum_r lambda_r^2 = ||U_n||_F^2`` and the mode
subproblem is a ridge regression whose ridge is set by the error budget (see ``ridge_update``).
Each update minimises ``||U_n||^2`` over a set containing the current U_n, so ``||lambda||^2`` can
only decrease while the error stays at delta.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from par_lightning.compression.cp_als import (
    cp_full,
    error_sq,
    fit_value,
    gram_hadamard,
    normalize_columns,
    sweep_mttkrps,
)

_EIG_FLOOR = 1e-12  # e_r >= 1e-12 max(e): over-complete ranks make Gamma singular
_ROUND_OFF = 1e-12  # |delta^2 - err^2| below this times the size of the terms is round-off


def _solve_gamma(a: np.ndarray, e: np.ndarray, budget: float) -> float:
    """Root of ``h(g) = sum_r a_r (g / (e_r + g))^2 = budget`` (h rises from 0 to sum(a)), bisecting log g.

    Returns the lower end of the final bracket, so ``h(g) <= budget``: the error never exceeds delta.
    """

    def h(g: float) -> float:
        return float(np.sum(a * (g / (e + g)) ** 2))

    hi = float(e.max())
    while h(hi) < budget and hi < 1e300:
        hi *= 2.0
    lo = hi
    while h(lo) > budget:
        lo *= 1e-4
        if lo < 1e-300:
            return 0.0
    for _ in range(200):
        if hi <= lo * (1 + 1e-14):
            break
        mid = math.sqrt(lo * hi)
        if h(mid) > budget:
            hi = mid
        else:
            lo = mid
    return lo


def ridge_update(
    gm: Tensor, gram: Tensor, x_sq_norm: float, delta_sq: float, current: Tensor | None = None
) -> tuple[Tensor, float]:
    """Solve ``min ||U||_F^2  s.t.  ||X_(n) - U K^T||_F^2 <= delta^2`` in closed form up to one scalar.

    With ``Gm = X_(n) K`` and ``Gamma = K^T K = V diag(e) V^T``, the Lagrange conditions give
    ``U(g) = Gm (Gamma + g I)^-1 = P diag(1/(e + g)) V^T`` (``P = Gm V``), whose error
    ``err^2(g) = eps_LS^2 + sum_r (c_r/e_r) (g/(e_r+g))^2`` (``c_r = ||P[:, r]||^2``) grows from the
    least-squares error to ``||X||^2``; g is the root of ``err^2(g) = delta^2``.

    The budget ``delta^2 - eps_LS^2`` is a small difference of large numbers. Given the current factor,
    it is computed as ``excess(current) + (delta^2 - err^2(current))``: the first term has no
    cancellation, and a second term within round-off of zero is dropped (the current error is then the
    budget), so repeated updates neither drift off delta nor move an exact fit.

    Args:
        gm: MTTKRP ``X_(n) K``, ``(I_n, R)``.
        gram: ``K^T K``, ``(R, R)``.
        x_sq_norm: ``||X||_F^2``.
        delta_sq: the error budget ``delta^2``.
        current: the current ``U_n`` (feasible), for the accurate budget; optional.

    Returns:
        The new ``U_n`` ``(I_n, R)`` and the ridge g (0: least-squares step, inf: ``U = 0`` is feasible).
    """
    e, v = torch.linalg.eigh(gram)  # (R,), (R, R)
    e = e.clamp_min(_EIG_FLOOR * float(e.max().clamp_min(torch.finfo(e.dtype).tiny)))
    p = gm @ v  # (I_n, R)
    a = p.square().sum(0) / e  # (R,) c_r / e_r
    slack_is_round_off = False
    if current is None:
        budget = delta_sq - (x_sq_norm - float(a.sum()))
    else:
        w = current @ v  # (I_n, R)
        excess = float((w * e.sqrt() - p / e.sqrt()).square().sum())
        slack = delta_sq - (x_sq_norm - float(fit_value(gm, gram, current)))
        terms = (
            x_sq_norm
            + 2 * float((gm * current).abs().sum())
            + float(((current.T @ current) * gram).abs().sum())
        )
        slack_is_round_off = abs(slack) <= _ROUND_OFF * terms
        budget = excess + (0.0 if slack_is_round_off else slack)
    if budget <= 0:
        if current is not None and slack_is_round_off:
            return current, 0.0  # the current factor is the least-squares solution up to round-off
        return (p / e) @ v.T, 0.0  # delta below the least-squares error: best fit instead
    if budget >= float(a.sum()):
        return torch.zeros_like(gm), math.inf
    gamma = _solve_gamma(a.cpu().numpy(), e.cpu().numpy(), budget)
    return (p / (e + gamma)) @ v.T, gamma


def column_sq_norms(factors: Sequence[Tensor]) -> Tensor:
    """``s[n, r] = ||u_r^(n)||^2``, ``(N, R)``."""
    return torch.stack([f.square().sum(0) for f in factors])


def lambda_sq(factors: Sequence[Tensor]) -> float:
    """``||lambda||^2 = sum_r prod_n ||u_r^(n)||^2``, the sum of squared norms of the rank-1 terms."""
    return float(column_sq_norms(factors).prod(0).sum())


def sensitivity(factors: Sequence[Tensor]) -> float:
    """First-order sensitivity per unit noise variance: ``sum_n I_n sum_r prod_{k != n} ||u_r^(k)||^2``.

    It is ``E||T(theta + d theta) - T(theta)||^2 / sigma^2`` for i.i.d. noise on every factor entry,
    so it depends on how the scales are split across the factors.
    """
    s = column_sq_norms(factors)  # (N, R)
    total = 0.0
    for n, f in enumerate(factors):
        others = torch.cat([s[:n], s[n + 1 :]]).prod(0)  # (R,)
        total += f.shape[0] * float(others.sum())
    return total


def kappa(factors: Sequence[Tensor]) -> float:
    """Cancellation ratio ``||lambda||^2 / ||T(theta)||_F^2``: ~1 for separate terms, >> 1 if they cancel."""
    r = factors[0].shape[1]
    prod = torch.ones(r, r, dtype=factors[0].dtype, device=factors[0].device)  # (R, R)
    for f in factors:
        prod = prod * (f.T @ f)
    full_sq = float(prod.sum())  # ||T||^2 = sum of the Hadamard product of all Grams
    return lambda_sq(factors) / max(full_sq, torch.finfo(torch.float64).tiny)


@dataclass(frozen=True)
class EPCResult:
    """Corrected factors (scale in the last-updated one) and the per-sweep history.

    ``lambda_sq[0]`` and ``errors[0]`` describe the input; entry k > 0 is after sweep k.
    """

    factors: list[Tensor]
    lambda_sq: tuple[float, ...]
    errors: tuple[float, ...]  # ||X - X_hat||_F (absolute)
    delta: float

    @property
    def sweeps(self) -> int:
        return len(self.lambda_sq) - 1


def epc(
    x: Tensor,
    factors: Sequence[Tensor],
    *,
    delta: float | None = None,
    max_sweeps: int = 300,
    tol: float = 1e-7,
    patience: int = 5,
) -> EPCResult:
    """Error Preserving Correction of a CP model of the float64 tensor ``x`` (3- or 4-way).

    Args:
        x: the tensor, float64.
        factors: the CP factors ``(I_n, R)`` to correct (any scale split), e.g. from ``cp_als``.
        delta: error budget; default: the current error ``||X - X_hat||``.
        max_sweeps: cap on sweeps over all modes.
        tol: relative change of ``||lambda||^2`` over a sweep that counts as converged.
        patience: consecutive converged sweeps needed to stop.
    """
    if x.dtype != torch.float64 or x.ndim not in (3, 4):
        raise ValueError(f"EPC needs a float64 3- or 4-way tensor, got {x.dtype} {tuple(x.shape)}")
    if [f.shape[0] for f in factors] != list(x.shape) or len({f.shape[1] for f in factors}) != 1:
        raise ValueError(
            f"factors must be (I_n, R) for tensor shape {tuple(x.shape)}, "
            f"got {[tuple(f.shape) for f in factors]}"
        )
    if max_sweeps < 0 or patience < 1 or tol < 0:
        raise ValueError(
            f"need max_sweeps >= 0, patience >= 1, tol >= 0; got {max_sweeps}, {patience}, {tol}"
        )
    x_sq = float(x.square().sum())
    err0 = float((x - cp_full(list(factors))).norm())
    delta_sq = err0**2 if delta is None else float(delta) ** 2
    units, lam = normalize_columns([f.to(x) for f in factors])
    order = torch.argsort(lam, descending=True)
    units, lam = [u[:, order] for u in units], lam[order]
    grams = [u.T @ u for u in units]  # each (R, R)
    history, errors = [float(lam.square().sum())], [err0]
    tiny = torch.finfo(x.dtype).tiny
    hits, last = 0, len(units) - 1
    for _ in range(max_sweeps):
        for n, gm in sweep_mttkrps(x, units):
            gram = gram_hadamard(grams, n)  # (R, R)
            u, _ = ridge_update(gm, gram, x_sq, delta_sq, units[n] * lam)  # (I_n, R)
            lam = u.norm(dim=0)  # (R,)
            units[n] = u / lam.clamp_min(tiny)
            grams[n] = units[n].T @ units[n]
            last = n
        history.append(float(lam.square().sum()))
        errors.append(
            math.sqrt(error_sq(x, x_sq, float(fit_value(gm, gram, u)), [*units[:n], u, *units[n + 1 :]]))
        )
        change = abs(history[-2] - history[-1]) / max(history[-2], tiny)
        hits = hits + 1 if change < tol else 0
        if hits >= patience:
            break
    units[last] = units[last] * lam
    return EPCResult(factors=units, lambda_sq=tuple(history), errors=tuple(errors), delta=math.sqrt(delta_sq))
