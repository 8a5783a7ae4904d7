"""Factorized layers reproduce the dense layer they replace (spec §5.1), against dense float64 references."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from par_lightning.compression.factors import CPFactors, SVDFactors
from par_lightning.compression.layers import build_cp, build_svd, factorized_weight, read_factors, svd_factors

CIN, COUT, RANK = 4, 5, 6
HW = (9, 8)  # non-square input catches H/W mix-ups

CONV_CASES = [
    pytest.param((3, 3), {}, id="k3-p0"),
    pytest.param((3, 3), {"padding": 1}, id="k3-p1"),
    pytest.param((3, 3), {"padding": 1, "stride": 2}, id="k3-s2"),
    pytest.param((3, 3), {"padding": 1, "stride": (2, 1)}, id="k3-s21"),
    pytest.param((3, 3), {"padding": "same"}, id="k3-same"),
    pytest.param((3, 3), {"padding": "valid", "stride": 2}, id="k3-valid-s2"),
    pytest.param((3, 3), {"padding": 2, "dilation": 2}, id="k3-d2"),
    pytest.param((3, 3), {"padding": "same", "dilation": 2}, id="k3-d2-same"),
    pytest.param((3, 3), {"padding": 1, "bias": False}, id="k3-nobias"),
    pytest.param((3, 3), {"padding": 1, "stride": 2, "padding_mode": "reflect"}, id="k3-reflect-s2"),
    pytest.param((3, 3), {"padding": 1, "padding_mode": "circular"}, id="k3-circular"),
    pytest.param(
        (3, 3), {"padding": (1, 0), "stride": (1, 2), "padding_mode": "replicate"}, id="k3-replicate"
    ),
    pytest.param((1, 7), {"padding": (0, 3)}, id="k1x7"),
    pytest.param((7, 1), {"padding": (3, 0), "stride": 2, "bias": False}, id="k7x1-s2"),
    pytest.param((3, 5), {"padding": (1, 2), "stride": (2, 1), "dilation": (1, 2)}, id="k3x5-s21-d12"),
    pytest.param((3, 5), {"padding": "same", "padding_mode": "reflect"}, id="k3x5-same-reflect"),
    pytest.param(
        (3, 5), {"padding": (2, 2), "dilation": (2, 1), "padding_mode": "circular"}, id="k3x5-circ-d21"
    ),
]
DTYPE_TOL = [pytest.param(torch.float32, 1e-5, id="f32"), pytest.param(torch.float64, 1e-10, id="f64")]


def _random_cp(method: str, kernel: tuple[int, int], rank: int, seed: int = 0) -> CPFactors:
    g = torch.Generator().manual_seed(seed)
    kh, kw = kernel

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    spatial = (rnd(kh * kw, rank),) if method == "cp3" else (rnd(kh, rank), rnd(kw, rank))
    return CPFactors(out=rnd(COUT, rank), inp=rnd(CIN, rank), spatial=spatial)


def _dense_reference(layer: nn.Conv2d | nn.Linear, weight: torch.Tensor) -> nn.Module:
    """A fresh float64 dense layer configured like ``layer``, with weight ``weight`` and ``layer``'s bias."""
    has_bias = layer.bias is not None
    ref: nn.Conv2d | nn.Linear
    if isinstance(layer, nn.Linear):
        ref = nn.Linear(layer.in_features, layer.out_features, bias=has_bias, dtype=torch.float64)
    else:
        ref = nn.Conv2d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,  # type: ignore[arg-type]
            stride=layer.stride,  # type: ignore[arg-type]
            padding=layer.padding,  # type: ignore[arg-type]
            dilation=layer.dilation,  # type: ignore[arg-type]
            bias=has_bias,
            padding_mode=layer.padding_mode,
            dtype=torch.float64,
        )
    with torch.no_grad():
        ref.weight.copy_(weight)
        if layer.bias is not None and ref.bias is not None:
            ref.bias.copy_(layer.bias)
    return ref


def _rel(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y.detach().to(torch.float64) - ref.detach()).norm() / ref.detach().norm())


@pytest.mark.parametrize("dtype,tol", DTYPE_TOL)
@pytest.mark.parametrize("method", ["cp3", "cp4"])
@pytest.mark.parametrize("kernel,kwargs", CONV_CASES)
def test_cp_module_matches_dense_conv(
    kernel: tuple[int, int], kwargs: dict, method: str, dtype, tol: float
) -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(CIN, COUT, kernel, dtype=dtype, **kwargs)
    factors = _random_cp(method, kernel, RANK)
    ref = _dense_reference(conv, factors.reconstruct(kernel))
    module = build_cp(conv, factors)
    x = torch.randn(2, CIN, *HW, dtype=torch.float64)
    y_ref = ref(x)
    y = module(x.to(dtype))
    assert y.dtype == dtype
    assert y.shape == y_ref.shape == conv(x.to(dtype)).shape
    assert _rel(y, y_ref) < tol


@pytest.mark.parametrize("method", ["cp3", "cp4"])
def test_cp_module_structure(method: str) -> None:
    conv = nn.Conv2d(
        CIN, COUT, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2), padding_mode="reflect"
    )
    module = build_cp(conv, _random_cp(method, (3, 5), RANK))
    layers = [m for m in module if isinstance(m, nn.Conv2d)]
    assert len(layers) == len(module) and all(type(m) is nn.Conv2d for m in layers)
    assert len(layers) == (3 if method == "cp3" else 4)
    assert all(m.bias is None for m in layers[:-1]) and layers[-1].bias is not None
    assert layers[0].stride == (1, 1) and layers[-1].stride == (1, 1)
    assert all(m.groups == RANK and m.padding_mode == "reflect" for m in layers[1:-1])
    if method == "cp4":
        assert (layers[1].kernel_size, layers[1].stride, layers[1].padding, layers[1].dilation) == (
            (3, 1), (2, 1), (1, 0), (1, 1)
        )  # fmt: skip
        assert (layers[2].kernel_size, layers[2].stride, layers[2].padding, layers[2].dilation) == (
            (1, 5), (1, 1), (0, 2), (1, 2)
        )  # fmt: skip
    weights = sum(m.weight.numel() for m in layers)
    per_rank = CIN + 3 * 5 + COUT if method == "cp3" else CIN + 3 + 5 + COUT
    assert weights == RANK * per_rank


def test_factorized_weight_matches_numpy_reconstruction() -> None:
    conv = nn.Conv2d(CIN, COUT, (3, 5), dtype=torch.float64)
    for method in ("cp3", "cp4"):
        f = _random_cp(method, (3, 5), RANK, seed=3)
        o, i = f.out.numpy(), f.inp.numpy()
        if method == "cp3":
            sp = f.spatial[0].numpy().reshape(3, 5, RANK)
        else:
            sp = np.einsum("ir,jr->ijr", f.spatial[0].numpy(), f.spatial[1].numpy())
        expected = np.einsum("or,cr,ijr->ocij", o, i, sp)
        got = factorized_weight(build_cp(conv, f), (3, 5)).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
        with pytest.raises(ValueError, match="does not match"):
            factorized_weight(build_cp(conv, f), (3, 3))


SVD_CONV_CASES = [
    pytest.param({}, id="s1"),
    pytest.param({"stride": 2}, id="s2"),
    pytest.param({"stride": (2, 1)}, id="s21"),
    pytest.param({"padding": 1, "stride": 2}, id="p1-s2"),
    pytest.param({"padding": 1, "padding_mode": "reflect"}, id="p1-reflect"),
    pytest.param({"padding": "same", "bias": False}, id="same-nobias"),
    pytest.param({"padding": "valid", "stride": (1, 2)}, id="valid-s12"),
]


@pytest.mark.parametrize("dtype,tol", DTYPE_TOL)
@pytest.mark.parametrize("kwargs", SVD_CONV_CASES)
def test_svd_conv_matches_dense(kwargs: dict, dtype, tol: float) -> None:
    g = torch.Generator().manual_seed(2)
    r = 3
    weight = torch.randn(7, r, generator=g, dtype=torch.float64) @ torch.randn(
        r, 6, generator=g, dtype=torch.float64
    )
    conv = nn.Conv2d(6, 7, 1, dtype=dtype, **kwargs)
    module = build_svd(conv, svd_factors(weight, r))
    ref = _dense_reference(conv, weight[:, :, None, None])
    x = torch.randn(2, 6, *HW, dtype=torch.float64)
    y_ref, y = ref(x), module(x.to(dtype))
    assert y.shape == y_ref.shape == conv(x.to(dtype)).shape
    assert _rel(y, y_ref) < tol
    first, last = module
    assert first.stride == conv.stride and first.bias is None  # stride on the cheap first layer
    assert last.stride == (1, 1) and last.padding == (0, 0) and (last.bias is None) == (conv.bias is None)
    assert first.weight.numel() + last.weight.numel() == r * (6 + 7)
    np.testing.assert_allclose(
        factorized_weight(module)[:, :, 0, 0].double().numpy(), weight.numpy(), rtol=tol * 10
    )


@pytest.mark.parametrize("dtype,tol", DTYPE_TOL)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_shape", [(3,), (2, 4)])
def test_svd_linear_matches_dense(batch_shape: tuple[int, ...], bias: bool, dtype, tol: float) -> None:
    g = torch.Generator().manual_seed(4)
    # Unbalanced factors: the builder must work for any split, not only the one svd_factors returns.
    factors = SVDFactors(
        a=10 * torch.randn(5, 3, generator=g, dtype=torch.float64),
        b=torch.randn(3, 7, generator=g, dtype=torch.float64),
    )
    linear = nn.Linear(7, 5, bias=bias, dtype=dtype)
    module = build_svd(linear, factors)
    ref = _dense_reference(linear, torch.from_numpy(factors.a.numpy() @ factors.b.numpy()))
    x = torch.randn(*batch_shape, 7, dtype=torch.float64)
    y_ref, y = ref(x), module(x.to(dtype))
    assert y.shape == (*batch_shape, 5) and y.dtype == dtype
    assert _rel(y, y_ref) < tol
    assert all(type(m) is nn.Linear for m in module) and module[0].bias is None
    assert sum(m.weight.numel() for m in module) == 3 * (7 + 5)
    assert factorized_weight(module).shape == (5, 7)


def test_svd_factors_exact_low_rank_and_balanced() -> None:
    g = torch.Generator().manual_seed(5)
    w = torch.randn(9, 4, generator=g, dtype=torch.float64) @ torch.randn(
        4, 6, generator=g, dtype=torch.float64
    )
    f = svd_factors(w, 4)
    np.testing.assert_allclose((f.a @ f.b).numpy(), w.numpy(), atol=1e-10 * float(w.abs().max()))
    s = np.linalg.svd(w.numpy(), compute_uv=False)
    np.testing.assert_allclose(f.a.norm(dim=0).numpy(), np.sqrt(s[:4]), rtol=1e-10)
    np.testing.assert_allclose(f.b.norm(dim=1).numpy(), np.sqrt(s[:4]), rtol=1e-10)


def test_svd_factors_truncation_error_is_eckart_young() -> None:
    rng = np.random.default_rng(6)
    w = rng.standard_normal((8, 6))
    s = np.linalg.svd(w, compute_uv=False)
    for r in range(1, 7):
        f = svd_factors(torch.from_numpy(w), r)
        err = np.linalg.norm(w - (f.a @ f.b).numpy())
        assert err == pytest.approx(np.sqrt(np.sum(s[r:] ** 2)), rel=1e-9, abs=1e-9)


def test_svd_factors_keeps_dtype_and_accepts_1x1_kernels() -> None:
    w = torch.randn(5, 3, 1, 1, dtype=torch.float32)
    f = svd_factors(w, 3)
    assert f.a.dtype == f.b.dtype == torch.float32
    assert f.a.shape == (5, 3) and f.b.shape == (3, 3)
    np.testing.assert_allclose((f.a @ f.b).numpy(), w[:, :, 0, 0].numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "weight,rank,match",
    [
        (torch.randn(8, 6), 0, r"\[1, min"),
        (torch.randn(8, 6), 7, r"min\(Cout, Cin\) = 6"),
        (torch.randn(4, 3, 3, 3), 2, "CP factorization"),
        (torch.randn(4, 3, 2), 2, r"\(Cout, Cin\)"),
    ],
)
def test_svd_factors_rejects_bad_input(weight: torch.Tensor, rank: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        svd_factors(weight, rank)


class _StdConv(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # weight standardisation: not a plain conv
        w = (self.weight - self.weight.mean()) / self.weight.std()
        return self._conv_forward(x, w, self.bias)


def test_builders_reject_unsupported_layers() -> None:
    cp = _random_cp("cp3", (3, 3), RANK)
    svd = SVDFactors(a=torch.randn(COUT, 2), b=torch.randn(2, CIN))
    with pytest.raises(ValueError, match="groups=2"):
        build_cp(nn.Conv2d(CIN, 6, 3, groups=2), cp)
    with pytest.raises(ValueError, match="use svd_factors and build_svd"):
        build_cp(nn.Conv2d(CIN, COUT, 1), cp)
    with pytest.raises(ValueError, match="use build_cp"):
        build_svd(nn.Conv2d(CIN, COUT, 3), svd)
    with pytest.raises(ValueError, match="transposed"):
        build_svd(nn.ConvTranspose2d(CIN, COUT, 1), svd)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="use build_svd"):
        build_cp(nn.Linear(CIN, COUT), cp)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="overrides the forward"):
        build_cp(_StdConv(CIN, COUT, 3), cp)
    with pytest.raises(ValueError, match="do not fit"):
        build_cp(nn.Conv2d(CIN, COUT, (3, 5)), cp)
    with pytest.raises(ValueError, match="do not fit"):
        build_svd(nn.Linear(CIN + 1, COUT), svd)
    with pytest.raises(ValueError, match="not a factorized layer"):
        read_factors(nn.Sequential(nn.Conv2d(CIN, 3, 3), nn.Conv2d(3, COUT, 1)))


def test_built_module_follows_layer_device_dtype_and_mode() -> None:
    conv = nn.Conv2d(CIN, COUT, 3, dtype=torch.float64).eval()
    module = build_cp(conv, _random_cp("cp4", (3, 3), RANK))
    assert not module.training and all(not m.training for m in module)
    assert all(p.dtype == torch.float64 and p.requires_grad for p in module.parameters())
    assert module[-1].bias is not conv.bias
    torch.testing.assert_close(module[-1].bias, conv.bias)


@pytest.fixture
def tensorly_backend() -> Iterator[None]:
    tl = pytest.importorskip("tensorly")
    previous = tl.get_backend()
    yield
    tl.set_backend(previous)  # importing tltorch switches the global tensorly backend


def test_cp4_matches_tltorch_factorized_forward(tensorly_backend: None) -> None:
    tltorch = pytest.importorskip("tltorch")
    torch.manual_seed(7)
    conv = nn.Conv2d(CIN, COUT, 3, padding=1)
    tl_conv = tltorch.FactorizedConv.from_conv(
        conv, rank=RANK, factorization="cp", implementation="factorized", decompose_weights=False
    )
    cp = tl_conv.weight  # CPTensor over (Cout, Cin, kh, kw) with a separate weights vector
    with torch.no_grad():
        for p in (cp.weights, *cp.factors):
            p.normal_()
        tl_conv.bias.copy_(conv.bias)  # not copied without decompose_weights
    out, inp, fh, fw = (f.detach() for f in cp.factors)
    factors = CPFactors(out=out * cp.weights.detach(), inp=inp, spatial=(fh, fw))
    x = torch.randn(2, CIN, *HW)
    with torch.no_grad():
        expected = tl_conv(x)
        got = build_cp(conv, factors)(x)
    assert _rel(got, expected.double()) < 1e-5
