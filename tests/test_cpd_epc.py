"""CP-ALS, Error Preserving Correction and ``cp_decompose`` against numpy, Jacobian and brute-force solves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import brentq, minimize

from par_lightning.compression.cp_als import cp_als, mttkrp
from par_lightning.compression.cpd import cp_decompose
from par_lightning.compression.epc import epc, kappa, ridge_update, sensitivity

pytestmark = pytest.mark.usefixtures("one_thread")


def _np_full(factors: list[np.ndarray]) -> np.ndarray:
    """Dense CP tensor by explicit outer products (independent of the package's Khatri-Rao code)."""
    rank = factors[0].shape[1]
    out = np.zeros([f.shape[0] for f in factors])
    for r in range(rank):
        term = factors[0][:, r]
        for f in factors[1:]:
            term = np.multiply.outer(term, f[:, r])
        out += term
    return out


def _np(factors: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    return [f.detach().cpu().double().numpy() for f in factors]


def _np_lambda_sq(factors: list[np.ndarray]) -> float:
    return float(np.prod([np.sum(f**2, axis=0) for f in factors], axis=0).sum())


def _random(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _exact(shape: tuple[int, ...], rank: int, seed: int) -> tuple[torch.Tensor, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    factors = [rng.standard_normal((i, rank)) for i in shape]
    return torch.from_numpy(_np_full(factors)), factors


def _degenerate_fixture() -> torch.Tensor:
    """4x4x4 rank-5 tensor whose first four components are nearly collinear in every mode (unit norm)."""
    rng = np.random.default_rng(7)
    factors = []
    for _ in range(3):
        base = rng.standard_normal((4, 1))
        close = 0.99 * base + np.sqrt(1 - 0.99**2) * rng.standard_normal((4, 4))
        factors.append(np.concatenate([close, rng.standard_normal((4, 1))], axis=1))
    x = _np_full(factors)
    return torch.from_numpy(x / np.linalg.norm(x))


@pytest.mark.parametrize("shape", [(5, 6, 7), (4, 5, 3, 2)])
def test_mttkrp_matches_unfolding_times_khatri_rao(shape: tuple[int, ...]) -> None:
    x = _random(shape, 0)
    factors = [_random((i, 3), k + 1) for k, i in enumerate(shape)]
    for n in range(len(shape)):
        unfolded = np.moveaxis(x.numpy(), n, 0).reshape(shape[n], -1)  # row-major over the other modes
        others = [f.numpy() for k, f in enumerate(factors) if k != n]
        kr = others[0]
        for f in others[1:]:
            kr = np.einsum("ir,jr->ijr", kr, f).reshape(-1, 3)
        np.testing.assert_allclose(mttkrp(x, factors, n).numpy(), unfolded @ kr, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rank, drops", [(60, True), (30, False)])
def test_epc_is_monotone_and_keeps_the_error(rank: int, drops: bool) -> None:
    x = _random((32, 24, 9), 0)
    als = cp_als(x, rank, max_iters=300, seed=1)
    delta = np.linalg.norm(x.numpy() - _np_full(_np(als.factors)))
    result = epc(x, als.factors, max_sweeps=150)

    assert result.delta == pytest.approx(delta, rel=1e-10)
    history = np.array(result.lambda_sq)
    assert history[0] == pytest.approx(_np_lambda_sq(_np(als.factors)), rel=1e-10)
    assert np.all(np.diff(history) <= 1e-9 * history[:-1])
    assert max(result.errors) <= delta * (1 + 1e-6)
    final = _np(result.factors)
    assert np.linalg.norm(x.numpy() - _np_full(final)) == pytest.approx(delta, rel=1e-6)
    assert _np_lambda_sq(final) == pytest.approx(history[-1], rel=1e-10)
    if drops:
        assert history[-1] < 0.5 * history[0]


def test_epc_removes_degeneracy_with_unchanged_error() -> None:
    x = _degenerate_fixture()
    als = cp_als(x, 5, max_iters=30, seed=3)
    result = epc(x, als.factors)
    before, after = _np(als.factors), _np(result.factors)
    err_before = np.linalg.norm(x.numpy() - _np_full(before))
    err_after = np.linalg.norm(x.numpy() - _np_full(after))
    assert err_after == pytest.approx(err_before, rel=1e-6)
    assert _np_lambda_sq(after) < _np_lambda_sq(before) / 20
    kappa_np = [_np_lambda_sq(f) / np.sum(_np_full(f) ** 2) for f in (before, after)]
    assert kappa(result.factors) == pytest.approx(kappa_np[1], rel=1e-8)
    assert kappa_np[1] < kappa_np[0] / 20
    assert sensitivity(result.factors) < sensitivity(als.factors) / 10


def test_epc_leaves_an_exact_fit_unchanged() -> None:
    x, _ = _exact((6, 5, 7), 4, seed=0)
    als = cp_als(x, 4, seed=11)
    fitted = _np_full(_np(als.factors))
    assert np.linalg.norm(x.numpy() - fitted) < 1e-6 * np.linalg.norm(x.numpy())
    corrected = _np_full(_np(epc(x, als.factors).factors))
    assert np.linalg.norm(corrected - fitted) < 1e-8 * np.linalg.norm(fitted)


def _slsqp(x: np.ndarray, k: np.ndarray, delta_sq: float, start: np.ndarray) -> np.ndarray:
    """``min ||U||^2 s.t. ||X - U K^T||^2 <= delta^2`` by a generic constrained solver (SLSQP)."""
    shape = start.shape

    def residual(u: np.ndarray) -> np.ndarray:
        return x - u.reshape(shape) @ k.T

    constraint = {
        "type": "ineq",
        "fun": lambda u: delta_sq - np.sum(residual(u) ** 2),
        "jac": lambda u: (2 * residual(u) @ k).ravel(),
    }
    res = minimize(
        lambda u: np.sum(u**2),
        start.ravel(),
        jac=lambda u: 2 * u,
        constraints=[constraint],
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 1000},
    )
    return res.x.reshape(shape)  # success flag not required: SLSQP may stop at the optimum on a line search


def _lagrange_scan(x: np.ndarray, k: np.ndarray, delta_sq: float) -> np.ndarray:
    """The same problem by its KKT system ``U (I + mu K^T K) = mu X K``, mu by Brent on the constraint."""
    eye = np.eye(k.shape[1])

    def u_of(log_mu: float) -> np.ndarray:
        mu = np.exp(log_mu)
        return np.linalg.solve(eye + mu * k.T @ k, mu * k.T @ x.T).T

    log_mu = brentq(lambda t: np.sum((x - u_of(t) @ k.T) ** 2) - delta_sq, -30.0, 30.0, xtol=1e-14)
    return u_of(log_mu)


@pytest.mark.parametrize("rank", [4, 7])  # 7 > 5 rows of K: singular Gram (over-complete)
def test_ridge_update_matches_brute_force(rank: int) -> None:
    rng = np.random.default_rng(rank)
    x, k = rng.standard_normal((3, 5)), rng.standard_normal((5, rank))
    least_squares = np.linalg.lstsq(k, x.T, rcond=None)[0].T  # (3, R) min-norm LS solution
    eps_ls_sq, x_sq = np.sum((x - least_squares @ k.T) ** 2), np.sum(x**2)
    delta_sq = eps_ls_sq + 0.3 * (x_sq - eps_ls_sq)

    gm, gram = torch.from_numpy(x @ k), torch.from_numpy(k.T @ k)
    u, gamma = ridge_update(gm, gram, x_sq, delta_sq)
    assert 0 < gamma < np.inf
    np.testing.assert_allclose(u.numpy(), _lagrange_scan(x, k, delta_sq), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(u.numpy(), _slsqp(x, k, delta_sq, least_squares), rtol=1e-4, atol=1e-5)
    assert np.sum((x - u.numpy() @ k.T) ** 2) == pytest.approx(delta_sq, rel=1e-9)
    u_current, _ = ridge_update(gm, gram, x_sq, delta_sq, current=torch.from_numpy(least_squares))
    np.testing.assert_allclose(u_current.numpy(), u.numpy(), rtol=1e-8, atol=1e-10)
    zero, gamma_inf = ridge_update(gm, gram, x_sq, 1.01 * x_sq)
    assert gamma_inf == np.inf and not zero.any()


def _np_balanced_norms(factors: tuple[torch.Tensor, ...]) -> np.ndarray:
    return np.stack([np.linalg.norm(f, axis=0) for f in _np(factors)])  # (N, R)


@pytest.mark.parametrize("method, spatial_shapes", [("cp3", [(9, 10)]), ("cp4", [(3, 10), (3, 10)])])
def test_cp_decompose_factors_and_diagnostics(method: str, spatial_shapes: list[tuple[int, int]]) -> None:
    weight = _random((8, 6, 3, 3), 5).float()
    factors, diag = cp_decompose(weight, 10, method, epc_sweeps=40)  # type: ignore[arg-type]

    assert factors.out.shape == (8, 10) and factors.inp.shape == (6, 10)
    assert [tuple(s.shape) for s in factors.spatial] == spatial_shapes
    parts = (factors.out, factors.inp, *factors.spatial)
    assert all(p.dtype == torch.float32 and p.device == weight.device for p in parts)
    full = _np_full(_np(parts)).reshape(8, 6, 3, 3)
    w = weight.double().numpy()
    assert np.linalg.norm(w - full) / np.linalg.norm(w) == pytest.approx(diag.rel_error, abs=1e-5)
    assert torch.allclose(factors.reconstruct((3, 3)).double(), torch.from_numpy(full), atol=1e-5)
    norms = _np_balanced_norms(parts)
    np.testing.assert_allclose(norms, np.broadcast_to(norms[0], norms.shape), rtol=1e-5)
    assert diag.rel_error == pytest.approx(diag.rel_error_als, rel=1e-6)
    assert diag.sweeps == len(diag.lambda_sq_history) - 1 and 0 < diag.sweeps <= 40
    assert np.all(np.diff(diag.lambda_sq_history) <= 1e-9 * np.array(diag.lambda_sq_history[:-1]))
    assert diag.kappa_after <= diag.kappa_before * (1 + 1e-9)
    assert diag.sensitivity_after <= diag.sensitivity_before * (1 + 1e-9)
    assert diag.lambda_ratio >= 1 and diag.seconds > 0


@pytest.mark.parametrize("method", ["cp3", "cp4"])
@pytest.mark.parametrize("epc_sweeps", [0, 300])
def test_cp_decompose_recovers_an_exact_low_rank_kernel(method: str, epc_sweeps: int) -> None:
    shape = (8, 6, 9) if method == "cp3" else (8, 6, 3, 3)
    x, _ = _exact(shape, 4, seed=2)
    weight = x.reshape(8, 6, 3, 3)
    factors, diag = cp_decompose(weight, 4, method, epc_sweeps=epc_sweeps, seed=5)  # type: ignore[arg-type]
    assert factors.out.dtype == torch.float64
    full = _np_full(_np((factors.out, factors.inp, *factors.spatial))).reshape(8, 6, 3, 3)
    rel = np.linalg.norm(weight.numpy() - full) / np.linalg.norm(weight.numpy())
    assert rel < 1e-6 and diag.rel_error < 1e-6
    if epc_sweeps == 0:
        assert diag.sweeps == 0 and diag.lambda_sq_history == (
            pytest.approx(_np_lambda_sq(_np((factors.out, factors.inp, *factors.spatial)))),
        )


def test_sensitivity_is_the_squared_jacobian_norm() -> None:
    factors = [_random((i, 3), 20 + i) for i in (4, 5, 2)]

    def full(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ir,jr,kr->ijk", a, b, c)

    jac = torch.func.jacrev(full, argnums=(0, 1, 2))(*factors)
    jac_sq = sum(float(j.square().sum()) for j in jac)
    assert sensitivity(factors) == pytest.approx(jac_sq, rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "cp5"}, "method"),
        ({"rank": 0}, "rank"),
        ({"rank": 2.5}, "rank"),
        ({"epc_sweeps": -1}, "epc_sweeps"),
        ({"als_iters": 0}, "als_iters"),
        ({"weight": torch.zeros(4, 3, 3, 3)}, "zeros"),
        ({"weight": torch.ones(4, 3, 9)}, "Cout, Cin, kh, kw"),
        ({"weight": torch.ones(4, 3, 3, 3, dtype=torch.int64)}, "floating"),
    ],
)
def test_cp_decompose_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"weight": _random((4, 3, 3, 3), 0), "rank": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        cp_decompose(**args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cp_decompose_without_cuda_names_the_fix() -> None:
    with pytest.raises(ValueError, match="CUDA"):
        cp_decompose(_random((4, 3, 3, 3), 0), 3, device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cp_decompose_on_cuda_matches_cpu() -> None:
    torch.set_num_threads(2)
    weight = _random((16, 12, 3, 3), 9).float()
    cpu_factors, cpu_diag = cp_decompose(weight, 20, epc_sweeps=100)
    gpu_factors, gpu_diag = cp_decompose(weight, 20, epc_sweeps=100, device="cuda")
    assert gpu_factors.out.device == weight.device and gpu_factors.out.dtype == torch.float32
    assert gpu_diag.rel_error == pytest.approx(cpu_diag.rel_error, abs=1e-4)
    assert gpu_diag.rel_error_als == pytest.approx(cpu_diag.rel_error_als, abs=1e-4)
    on_cuda, diag = cp_decompose(weight.cuda(), 20, epc_sweeps=100)
    assert on_cuda.out.is_cuda and on_cuda.out.dtype == torch.float32
    full = _np_full(_np((on_cuda.out, on_cuda.inp, *on_cuda.spatial))).reshape(16, 12, 3, 3)
    w = weight.double().numpy()
    assert np.linalg.norm(w - full) / np.linalg.norm(w) == pytest.approx(diag.rel_error, abs=1e-5)
    assert diag.kappa_after <= diag.kappa_before * (1 + 1e-9)
