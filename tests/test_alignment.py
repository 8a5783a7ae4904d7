"""Alignment maths against torch.func (generic VJP/JVP), numpy and conv-built kernels, all in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from par_lightning.compression.alignment import (
    alignment_score,
    cp_update_direction,
    normalised,
    svd_proxy_scores,
    svd_update_direction,
    update_direction_func,
)
from par_lightning.compression.factors import CPFactors, SVDFactors

D = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _cp(cout: int, cin: int, kh: int, kw: int, rank: int, cp4: bool, seed: int) -> CPFactors:
    g = _gen(seed)
    spatial = (
        (torch.randn(kh, rank, generator=g, dtype=D), torch.randn(kw, rank, generator=g, dtype=D))
        if cp4
        else (torch.randn(kh * kw, rank, generator=g, dtype=D),)
    )
    return CPFactors(
        torch.randn(cout, rank, generator=g, dtype=D), torch.randn(cin, rank, generator=g, dtype=D), spatial
    )


def _kernel_from_modules(
    first: torch.Tensor, spatial: list[torch.Tensor], last: torch.Tensor
) -> torch.Tensor:
    """Dense kernel of the conv chain 1x1 -> depthwise(s) -> 1x1, read off by feeding one-hot inputs.

    With a kh x kw input and no padding each output is a single pixel, ``out[n, o] = sum W[o, c, i, j] x[n, c, i, j]``,
    so the one-hot basis of (c, i, j) returns the kernel itself: an oracle independent of CPFactors.
    """
    rank, cin = first.shape[:2]
    kh = max((s.shape[2] for s in spatial), default=1)
    kw = max((s.shape[3] for s in spatial), default=1)
    basis = torch.eye(cin * kh * kw, dtype=first.dtype).reshape(-1, cin, kh, kw)  # (Cin*kh*kw, Cin, kh, kw)
    h = F.conv2d(basis, first)
    for s in spatial:
        h = F.conv2d(h, s, groups=rank)
    out = F.conv2d(h, last)  # (Cin*kh*kw, Cout, 1, 1)
    return out.reshape(cin, kh, kw, -1).permute(3, 0, 1, 2)  # (Cout, Cin, kh, kw)


@pytest.mark.parametrize("shape", [(7, 5, 3), (4, 9, 4), (6, 6, 6)])
def test_svd_closed_form_matches_torch_func(shape: tuple[int, int, int]) -> None:
    cout, cin, r = shape
    g = _gen(0)
    a, b = torch.randn(cout, r, generator=g, dtype=D), torch.randn(r, cin, generator=g, dtype=D)
    g_hat = torch.randn(cout, cin, generator=g, dtype=D)
    ref = update_direction_func(lambda x, y: x @ y, (a, b), g_hat)
    got = svd_update_direction(g_hat, SVDFactors(a, b))
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-9)
    got4 = svd_update_direction(g_hat[:, :, None, None], SVDFactors(a, b))  # a 1x1 conv gradient
    assert got4.shape == (cout, cin, 1, 1)
    torch.testing.assert_close(got4[:, :, 0, 0], ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("cp4", "kernel"), [(False, (3, 3)), (True, (3, 3)), (False, (1, 5)), (True, (3, 2))]
)
def test_cp_multilinear_matches_torch_func(cp4: bool, kernel: tuple[int, int]) -> None:
    kh, kw = kernel
    f = _cp(6, 4, kh, kw, 5, cp4, seed=1)
    g_hat = torch.randn(6, 4, kh, kw, generator=_gen(2), dtype=D)

    def build(out: torch.Tensor, inp: torch.Tensor, *sp: torch.Tensor) -> torch.Tensor:
        return CPFactors(out, inp, tuple(sp)).reconstruct(kernel)

    ref = update_direction_func(build, (f.out, f.inp, *f.spatial), g_hat)
    torch.testing.assert_close(cp_update_direction(g_hat, f), ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("cp4", [False, True])
def test_module_parametrisation_gives_same_direction(cp4: bool) -> None:
    kh, kw, rank = 3, 3, 4
    f = _cp(5, 3, kh, kw, rank, cp4, seed=3)
    g_hat = torch.randn(5, 3, kh, kw, generator=_gen(4), dtype=D)
    first = f.inp.T.reshape(rank, 3, 1, 1).contiguous()
    last = f.out.reshape(5, rank, 1, 1).contiguous()
    if cp4:
        spatial = [f.spatial[0].T.reshape(rank, 1, kh, 1), f.spatial[1].T.reshape(rank, 1, 1, kw)]
    else:
        spatial = [f.spatial[0].T.reshape(rank, 1, kh, kw)]
    spatial = [s.contiguous() for s in spatial]
    w_modules = _kernel_from_modules(first, spatial, last)
    torch.testing.assert_close(w_modules, f.reconstruct((kh, kw)), rtol=0, atol=1e-10)

    def build(w1: torch.Tensor, w3: torch.Tensor, *sp: torch.Tensor) -> torch.Tensor:
        return _kernel_from_modules(w1, list(sp), w3)

    ref = update_direction_func(build, (first, last, *spatial), g_hat)
    torch.testing.assert_close(cp_update_direction(g_hat, f), ref, rtol=0, atol=1e-9)


def test_svd_module_parametrisation_gives_same_direction() -> None:
    a = torch.randn(6, 3, generator=_gen(5), dtype=D)
    b = torch.randn(3, 4, generator=_gen(6), dtype=D)
    g_hat = torch.randn(6, 4, 1, 1, generator=_gen(7), dtype=D)
    first, last = b.reshape(3, 4, 1, 1), a.reshape(6, 3, 1, 1)
    ref = update_direction_func(lambda w1, w3: _kernel_from_modules(w1, [], w3), (first, last), g_hat)
    torch.testing.assert_close(svd_update_direction(g_hat, SVDFactors(a, b)), ref, rtol=0, atol=1e-9)


def _numpy_direct_scores(w: np.ndarray, g: np.ndarray) -> np.ndarray:
    u_mat, s, vh = np.linalg.svd(w, full_matrices=False)
    out = []
    for r in range(1, len(s) + 1):
        a = u_mat[:, :r] * np.sqrt(s[:r])
        b = np.sqrt(s[:r])[:, None] * vh[:r]
        u = g @ b.T @ b + a @ a.T @ g
        out.append(np.sum(g * u) / (np.linalg.norm(g) * np.linalg.norm(u)))
    return np.array(out)


@pytest.mark.parametrize(("cout", "cin", "seed"), [(9, 6, 0), (5, 11, 1), (8, 8, 2)])
def test_svd_proxy_prefix_matches_direct(cout: int, cin: int, seed: int) -> None:
    g = _gen(seed)
    w = torch.randn(cout, cin, generator=g, dtype=D)
    grad = torch.randn(cout, cin, generator=g, dtype=D)
    got = svd_proxy_scores(w, grad)
    ref = _numpy_direct_scores(w.numpy(), grad.numpy())
    assert got.shape == (min(cout, cin),)
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-12)
    got4 = svd_proxy_scores(w[:, :, None, None], grad[:, :, None, None])
    np.testing.assert_allclose(got4.numpy(), ref, rtol=0, atol=1e-12)


def test_svd_proxy_of_rank_deficient_weight_stays_finite() -> None:
    g = _gen(8)
    w = torch.randn(7, 2, generator=g, dtype=D) @ torch.randn(2, 5, generator=g, dtype=D)  # rank 2
    grad = torch.randn(7, 5, generator=g, dtype=D)
    got = svd_proxy_scores(w, grad)
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got[:2].numpy(), _numpy_direct_scores(w.numpy(), grad.numpy())[:2], atol=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_self_alignment_is_non_negative(seed: int) -> None:
    g = _gen(seed)
    grad = torch.randn(8, 6, generator=g, dtype=D)
    svd = SVDFactors(torch.randn(8, 3, generator=g, dtype=D), torch.randn(3, 6, generator=g, dtype=D))
    assert alignment_score(grad, svd_update_direction(grad, svd)) >= 0
    for cp4 in (False, True):
        f = _cp(8, 6, 3, 3, 7, cp4, seed=100 + seed)
        grad4 = torch.randn(8, 6, 3, 3, generator=g, dtype=D)
        assert alignment_score(grad4, cp_update_direction(grad4, f)) >= 0
    assert (svd_proxy_scores(torch.randn(8, 6, generator=g, dtype=D), grad) >= 0).all()


def test_alignment_score_is_cosine_and_zero_safe() -> None:
    g = _gen(9)
    x, y = torch.randn(4, 3, 2, 2, generator=g, dtype=D), torch.randn(4, 3, 2, 2, generator=g, dtype=D)
    xn, yn = x.numpy().ravel(), y.numpy().ravel()
    ref = float(xn @ yn / (np.linalg.norm(xn) * np.linalg.norm(yn)))
    assert alignment_score(x, y) == pytest.approx(ref, abs=1e-14)
    assert alignment_score(x, -x) == pytest.approx(-1.0, abs=1e-14)
    assert alignment_score(x, torch.zeros_like(x)) == 0.0
    assert alignment_score(torch.zeros_like(x), y) == 0.0


def test_normalised_is_exactly_one_at_reference() -> None:
    scores = {2: 0.31, 4: 0.57, 8: 0.8123456789, 11: 0.6}
    for ref in scores:
        norm = normalised(scores, ref)
        assert norm[ref] == 1.0
        assert norm.keys() == scores.keys()
    assert normalised(scores, 8)[4] == pytest.approx(0.57 / 0.8123456789)


def test_normalised_rejects_missing_or_non_positive_reference() -> None:
    with pytest.raises(KeyError, match="reference rank 3"):
        normalised({2: 0.5}, 3)
    with pytest.raises(ValueError, match="keep this layer dense"):
        normalised({2: 0.5, 4: -0.1}, 4)


def test_shape_errors_name_the_problem() -> None:
    svd = SVDFactors(torch.ones(4, 2, dtype=D), torch.ones(2, 3, dtype=D))
    with pytest.raises(ValueError, match="Cout, Cin"):
        svd_update_direction(torch.ones(4, 3, 3, 3, dtype=D), svd)
    with pytest.raises(ValueError, match="do not match"):
        cp_update_direction(torch.ones(4, 5, 3, 3, dtype=D), _cp(4, 3, 3, 3, 2, False, seed=0))
