"""Gradient-alignment scores: how well a factorized layer's SGD step follows the dense layer's gradient.

One SGD step of size ``eta`` on the factors ``theta`` of ``W_hat = f(theta)`` moves the weight by
``-eta J J^T G_hat`` (``J = df/dtheta``), so ``s = cos(G, J J^T G_hat)`` measures how much of the dense
model's descent direction ``G`` survives the factorization. ``J J^T`` depends on the exact
parametrisation (scale split, no lambda vector), so the directions below use the factors as trained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import Tensor

from par_lightning.compression.factors import CPFactors, SVDFactors


def _as_matrix(t: Tensor) -> Tensor:
    """View a ``(Cout, Cin)`` or ``(Cout, Cin, 1, 1)`` weight or gradient as ``(Cout, Cin)``."""
    if t.dim() == 2:
        return t
    if t.dim() == 4 and t.shape[2:] == (1, 1):
        return t.reshape(t.shape[0], t.shape[1])
    raise ValueError(
        f"expected a (Cout, Cin) or (Cout, Cin, 1, 1) tensor for SVD factors, got {tuple(t.shape)}"
    )


def svd_update_direction(g_hat: Tensor, factors: SVDFactors) -> Tensor:
    """``u = J J^T G_hat = G_hat B^T B + A A^T G_hat`` for ``W_hat = A B``, without forming ``J``.

    ``grad_A = G_hat B^T`` and ``grad_B = A^T G_hat``; the JVP of ``(A, B) -> A B`` along them is
    ``grad_A B + A grad_B``. Returns a tensor shaped like ``g_hat``.
    """
    g = _as_matrix(g_hat)  # (Cout, Cin)
    a, b = factors.a, factors.b  # (Cout, r), (r, Cin)
    u = (g @ b.T) @ b + a @ (a.T @ g)  # (Cout, Cin)
    return u.reshape(g_hat.shape)


def _cp_operands(g_hat: Tensor, factors: CPFactors) -> tuple[Tensor, list[Tensor], list[str]]:
    """The gradient reshaped to one mode per factor, the factors in mode order, and einsum mode letters."""
    cout, cin, kh, kw = g_hat.shape
    if factors.out.shape[0] != cout or factors.inp.shape[0] != cin:
        raise ValueError(
            f"CP factors (out {tuple(factors.out.shape)}, inp {tuple(factors.inp.shape)}) do not match "
            f"the gradient {tuple(g_hat.shape)}"
        )
    mats = [factors.out, factors.inp, *factors.spatial]
    if len(factors.spatial) == 1:  # CP3: the kernel window is one mode of size kh*kw
        return g_hat.reshape(cout, cin, kh * kw), mats, ["o", "c", "s"]
    if len(factors.spatial) == 2:  # CP4: kh and kw are separate modes
        return g_hat, mats, ["o", "c", "h", "w"]
    raise ValueError(f"CPFactors needs 1 (CP3) or 2 (CP4) spatial factors, got {len(factors.spatial)}")


def cp_update_direction(g_hat: Tensor, factors: CPFactors) -> Tensor:
    """``u = J J^T G_hat`` for the multilinear map ``(out, inp, *spatial) -> W_hat`` (spec §3.3).

    ``J^T G_hat`` is one MTTKRP per factor (``g_n``); ``J`` applied to it is, by multilinearity, the sum
    of the ``N`` reconstructions with factor ``n`` replaced by ``g_n``.

    Args:
        g_hat: ``(Cout, Cin, kh, kw)`` gradient of the loss with respect to ``W_hat``.
        factors: CP3 or CP4 factors of ``W_hat``.
    """
    if g_hat.dim() != 4:
        raise ValueError(f"CP directions need a (Cout, Cin, kh, kw) gradient, got {tuple(g_hat.shape)}")
    kernel = (g_hat.shape[2], g_hat.shape[3])
    gt, mats, modes = _cp_operands(g_hat, factors)
    full = "".join(modes)
    tangents = []
    for n, mode in enumerate(modes):
        others = [m for k, m in enumerate(mats) if k != n]
        subs = ",".join(f"{modes[k]}r" for k in range(len(modes)) if k != n)
        tangents.append(torch.einsum(f"{full},{subs}->{mode}r", gt, *others))  # (I_n, R)
    u = torch.zeros_like(g_hat)
    for n, g_n in enumerate(tangents):
        swapped = [g_n if k == n else m for k, m in enumerate(mats)]
        tangent = replace(factors, out=swapped[0], inp=swapped[1], spatial=tuple(swapped[2:]))
        u = u + tangent.reconstruct(kernel)  # (Cout, Cin, kh, kw)
    return u


def update_direction_func(f: Callable[..., Tensor], theta: tuple[Tensor, ...], g_hat: Tensor) -> Tensor:
    """``u = J J^T G_hat`` for any differentiable ``W_hat = f(*theta)``: a VJP, then a JVP (torch.func).

    The generic route for parametrisations without a closed form, and the oracle for the closed forms.
    """
    pull = torch.func.vjp(f, *theta)[1]
    g_theta = pull(g_hat)  # tuple shaped like theta
    return torch.func.jvp(f, tuple(theta), tuple(g_theta))[1]


def alignment_score(g: Tensor, u: Tensor) -> float:
    """``cos(g, u)`` of the flattened tensors (float64 accumulation); 0.0 when either is zero."""
    a = g.reshape(-1).double()
    b = u.reshape(-1).double()
    na, nb = torch.linalg.vector_norm(a), torch.linalg.vector_norm(b)
    if na == 0 or nb == 0:
        return 0.0
    return float(torch.dot(a, b) / (na * nb))


def svd_proxy_scores(weight: Tensor, g: Tensor) -> Tensor:
    """Proxy scores ``s(r) = cos(G, J_r J_r^T G)`` for every ``r = 1..min(Cout, Cin)`` from one SVD.

    With ``W = U S V^T``, ``M = U^T G V``, ``p_i = ||G v_i||^2``, ``q_i = ||G^T u_i||^2`` (spec §3.2):
    ``<G, u_r> = sum_{i<=r} s_i (p_i + q_i)`` and
    ``||u_r||^2 = sum_{i<=r} s_i^2 (p_i + q_i) + 2 sum_{i,j<=r} s_i s_j M_ij^2``, i.e. prefix sums.
    Blind to the approximation error (``G_hat`` is replaced by ``G``): a pre-filter only.

    Returns:
        Tensor of shape ``(min(Cout, Cin),)``; entry ``r - 1`` is ``s(r)``.
    """
    w = _as_matrix(weight)  # (Cout, Cin)
    gm = _as_matrix(g).to(w.dtype)  # (Cout, Cin)
    u_mat, s, vh = torch.linalg.svd(w, full_matrices=False)  # (Cout, k), (k,), (k, Cin)
    gv = gm @ vh.T  # (Cout, k): columns G v_i
    gtu = gm.T @ u_mat  # (Cin, k): columns G^T u_i
    p = gv.pow(2).sum(0)  # (k,)
    q = gtu.pow(2).sum(0)  # (k,)
    m = u_mat.T @ gv  # (k, k) = U^T G V
    inner = torch.cumsum(s * (p + q), 0)  # (k,)
    cross = (s[:, None] * s[None, :] * m.pow(2)).cumsum(0).cumsum(1).diagonal()  # (k,)
    norm2 = torch.cumsum(s.pow(2) * (p + q), 0) + 2 * cross  # (k,)
    g_norm = torch.linalg.vector_norm(gm)
    denom = g_norm * norm2.clamp_min(0).sqrt()  # (k,)
    safe = torch.where(denom > 0, denom, torch.ones_like(denom))
    return torch.where(denom > 0, inner / safe, torch.zeros_like(inner))


def normalised(scores: dict[int, float], ref_rank: int) -> dict[int, float]:
    """``s~(r) = s(r) / s(ref_rank)``, so thresholds read "fraction of the alignment at no compression" (§3.5)."""
    if ref_rank not in scores:
        raise KeyError(f"reference rank {ref_rank} was not scored; scored ranks: {sorted(scores)}")
    ref = scores[ref_rank]
    if not ref > 0:
        raise ValueError(
            f"score at the reference rank {ref_rank} is {ref} (must be > 0 to normalise): the factorisation "
            "distorts updates at every rank, keep this layer dense"
        )
    return {r: s / ref for r, s in scores.items()}
