"""Cost formulas (spec §1.3), measured costs of built modules, rank bounds (§1.4) and default methods."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from par_lightning.compression.costs import (
    conv_output_hw,
    count_module_costs,
    dense_macs,
    dense_params,
    factorized_macs,
    factorized_params,
    input_sizes,
)
from par_lightning.compression.curves import Method
from par_lightning.compression.factors import CPFactors, SVDFactors
from par_lightning.compression.layers import build_cp, build_svd
from par_lightning.compression.ranks import default_method, max_rank, max_rank_macs

H, W = 9, 8


def _cp(method: str, cout: int, cin: int, kernel: tuple[int, int], rank: int) -> CPFactors:
    kh, kw = kernel
    spatial = (
        (torch.randn(kh * kw, rank),) if method == "cp3" else (torch.randn(kh, rank), torch.randn(kw, rank))
    )
    return CPFactors(out=torch.randn(cout, rank), inp=torch.randn(cin, rank), spatial=spatial)


def _measured(module: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    costs = count_module_costs(module, x)
    return sum(p for p, _ in costs.values()), sum(m for _, m in costs.values())


# (method, kernel, stride, padding, H', W') with Cin=4, Cout=5, R=6 on a 9x8 input; H', W' worked out by hand.
CP_CASES = [
    pytest.param("cp3", (3, 3), 1, 1, 9, 8, id="cp3-s1"),
    pytest.param("cp3", (3, 3), 2, 1, 5, 4, id="cp3-s2"),
    pytest.param("cp4", (3, 3), (2, 1), 1, 5, 8, id="cp4-s21"),
    pytest.param("cp4", (3, 5), 2, 0, 4, 2, id="cp4-3x5-s2"),
    pytest.param("cp3", (1, 7), 1, (0, 3), 9, 8, id="cp3-1x7"),
]


@pytest.mark.parametrize("method,kernel,stride,padding,ho,wo", CP_CASES)
def test_cp_costs_measured_equal_formula(method: Method, kernel, stride, padding, ho: int, wo: int) -> None:
    cin, cout, r = 4, 5, 6
    kh, kw = kernel
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding)
    module = build_cp(conv, _cp(method, cout, cin, kernel, r))
    x = torch.randn(2, cin, H, W)
    assert module(x).shape[-2:] == (ho, wo)
    if method == "cp3":
        params, macs = r * (cin + kh * kw + cout), r * (cin * H * W + kh * kw * ho * wo + cout * ho * wo)
    else:
        params = r * (cin + kh + kw + cout)
        macs = r * (cin * H * W + kh * ho * W + kw * ho * wo + cout * ho * wo)
    assert _measured(module, x) == (params, macs)
    assert factorized_params(conv, method, r) == params
    assert factorized_macs(conv, method, r, (H, W)) == macs
    assert (
        _measured(conv, x)
        == (dense_params(conv), dense_macs(conv, (H, W)))
        == (
            cout * cin * kh * kw,
            cout * cin * kh * kw * ho * wo,
        )
    )


@pytest.mark.parametrize("stride,padding,ho,wo", [(1, 0, 9, 8), (2, 0, 5, 4), ((2, 1), 1, 6, 10)])
def test_svd_conv_costs_measured_equal_formula(stride, padding, ho: int, wo: int) -> None:
    cin, cout, r = 6, 7, 3
    conv = nn.Conv2d(cin, cout, 1, stride=stride, padding=padding)
    module = build_svd(conv, SVDFactors(a=torch.randn(cout, r), b=torch.randn(r, cin)))
    x = torch.randn(3, cin, H, W)
    assert module(x).shape[-2:] == conv(x).shape[-2:] == (ho, wo)
    expected = (r * (cin + cout), r * (cin + cout) * ho * wo)
    assert _measured(module, x) == expected
    assert (factorized_params(conv, "svd", r), factorized_macs(conv, "svd", r, (H, W))) == expected


def test_svd_linear_costs_measured_equal_formula() -> None:
    lin = nn.Linear(7, 5)
    module = build_svd(lin, SVDFactors(a=torch.randn(5, 3), b=torch.randn(3, 7)))
    assert _measured(module, torch.randn(4, 7)) == (3 * 12, 3 * 12)
    assert _measured(module, torch.randn(4, 10, 7)) == (3 * 12, 10 * 3 * 12)  # 10 rows per sample
    assert (factorized_params(lin, "svd", 3), factorized_macs(lin, "svd", 3)) == (36, 36)
    assert (dense_params(lin), dense_macs(lin)) == (35, 35)


def test_count_module_costs_names_grouped_and_shared_layers() -> None:
    shared = nn.Conv2d(6, 6, 3, padding=1, groups=2)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), shared, shared)
    model.add_module("head", nn.Sequential(nn.Flatten(), nn.Linear(6 * 5 * 4, 2)))
    costs = count_module_costs(model, torch.randn(2, 3, H, W))
    assert costs == {
        "0": (6 * 3 * 9, 6 * 3 * 9 * 5 * 4),
        "2": (6 * 3 * 9, 2 * 6 * 3 * 9 * 5 * 4),  # two calls, one entry
        "head.1": (120 * 2, 120 * 2),
    }
    assert input_sizes(model, torch.randn(2, 3, H, W)) == {"0": (H, W), "2": (5, 4)}


def test_counting_leaves_model_state_untouched() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5))
    model.train()
    model[2].eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_module_costs(model, torch.randn(2, 3, H, W))
    input_sizes(model, torch.randn(2, 3, H, W))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and model[1].training and not model[2].training
    assert model[0]._forward_hooks == {}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 3},
        {"kernel_size": 3, "stride": 2, "padding": 1},
        {"kernel_size": (3, 5), "stride": (2, 3), "padding": (0, 2), "dilation": (2, 1)},
        {"kernel_size": 3, "padding": "same", "dilation": 2},
        {"kernel_size": (1, 7), "padding": "valid", "stride": (1, 2)},
        {"kernel_size": 1, "stride": 2, "padding": 1, "padding_mode": "reflect"},
    ],
)
def test_conv_output_hw_matches_torch(kwargs: dict) -> None:
    conv = nn.Conv2d(2, 2, **kwargs)
    assert conv_output_hw(conv, (H, W)) == tuple(conv(torch.randn(1, 2, H, W)).shape[-2:])


# Spec §1.4 worked examples and ALM shapes: (layer, method, rho, expected R_max).
RANK_EXAMPLES = [
    pytest.param(nn.Conv2d(64, 192, 3, padding=1), "cp3", 1, 417, id="conv2-rho1"),
    pytest.param(nn.Conv2d(64, 192, 3, padding=1), "cp3", 4, 104, id="conv2-rho4"),
    pytest.param(nn.Conv2d(1024, 256, 1), "svd", 1, 204, id="lateral-rho1"),
    pytest.param(nn.Conv2d(1024, 256, 1), "svd", 4, 51, id="lateral-rho4"),
    pytest.param(nn.Conv2d(3, 64, 7, stride=2, padding=3), "cp3", 1, 81, id="conv1-7x7"),
    pytest.param(nn.Conv2d(1056, 352, 1), "svd", 1, 264, id="5a-1x1"),
    pytest.param(nn.Linear(768, 48), "svd", 1, 45, id="se-768-48"),
    pytest.param(nn.Conv2d(256, 256, 3, padding=1), "cp3", 1, 1132, id="3x3-256"),
    pytest.param(nn.Conv2d(64, 192, 3, padding=1), "cp4", 1, 110592 // 262, id="conv2-cp4"),
    pytest.param(nn.Linear(1000, 2), "svd", 1, 1, id="svd-thin"),
    pytest.param(
        nn.Linear(4, 6), "svd", 0.25, 4, id="svd-cap-min-dim"
    ),  # 24 / (0.25 * 10) = 9.6 -> min(4, 6)
    pytest.param(nn.Linear(4, 4), "svd", 1.5, 1, id="fractional-rho"),
]


@pytest.mark.parametrize("layer,method,rho,expected", RANK_EXAMPLES)
def test_max_rank_worked_examples(
    layer: nn.Conv2d | nn.Linear, method: Method, rho: float, expected: int
) -> None:
    assert max_rank(layer, method, rho) == expected


def test_max_rank_is_largest_affordable_rank() -> None:
    cases: list[tuple[nn.Conv2d | nn.Linear, Method]] = [
        (nn.Conv2d(32, 48, 3), "cp3"),
        (nn.Conv2d(32, 48, 3), "cp4"),
        (nn.Linear(40, 30), "svd"),
    ]
    for layer, method in cases:
        p0 = layer.weight.numel()
        for rho in (1, 1.5, 2, 3, 4, 8):
            r = max_rank(layer, method, rho)
            assert (
                factorized_params(layer, method, r) * rho
                <= p0
                < factorized_params(layer, method, r + 1) * rho
            )


def test_max_rank_macs() -> None:
    conv2 = nn.Conv2d(64, 192, 3, padding=1)
    assert dense_macs(conv2, (64, 32)) == 110592 * 2048  # 226.5 M, spec §1.4
    assert max_rank_macs(conv2, "cp3", 1, (64, 32)) == 417  # stride 1: same as the parameter bound
    # Strided 3x3: the first 1x1 runs on the full 32x32 input, H'W' = 16x16: floor(Cout Cin k^2 / (s^2 Cin + k^2 + Cout)).
    strided = nn.Conv2d(64, 128, 3, stride=2, padding=1)
    assert max_rank_macs(strided, "cp3", 1, (32, 32)) == math.floor(128 * 64 * 9 / (4 * 64 + 9 + 128)) == 187
    m0 = 128 * 64 * 9 * 256
    assert max_rank_macs(strided, "cp4", 2, (32, 32)) == m0 // (
        2 * (64 * 1024 + 3 * 16 * 32 + 3 * 256 + 128 * 256)
    )
    assert max_rank_macs(nn.Conv2d(1024, 256, 1, stride=2), "svd", 4, (16, 16)) == 51
    assert max_rank_macs(nn.Linear(768, 48), "svd", 1, (1, 1)) == 45


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: max_rank(nn.Conv2d(4, 4, 3), "svd"), "'cp3' or 'cp4'"),
        (lambda: max_rank(nn.Conv2d(4, 4, 1), "cp3"), "by 'svd'"),
        (lambda: max_rank(nn.Linear(4, 4), "cp4"), "Linear"),
        (lambda: max_rank(nn.Linear(4, 4), "tucker"), r"valid: \['svd', 'cp3', 'cp4'\]"),  # type: ignore[arg-type]
        (lambda: max_rank(nn.Conv2d(4, 4, 3, groups=2), "cp3"), "groups=2"),
        (lambda: max_rank(nn.Linear(4, 4), "svd", 0), "rho must be > 0"),
        (lambda: factorized_params(nn.Linear(4, 4), "svd", 0), "rank must be >= 1"),
        (lambda: dense_macs(nn.Conv2d(4, 4, 3)), "needs input_hw"),
    ],
)
def test_cost_errors_name_the_fix(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


class _Sub(nn.Conv2d):
    pass


@pytest.mark.parametrize(
    "layer,expected",
    [
        (nn.Linear(8, 4), "svd"),
        (nn.Conv2d(8, 4, 1, stride=2), "svd"),
        (nn.Conv2d(8, 4, 3), "cp3"),
        (nn.Conv2d(8, 4, (1, 7)), "cp3"),
        (nn.Conv2d(8, 4, 3, groups=4), None),
        (nn.Conv2d(8, 8, 3, groups=8), None),
        (nn.ConvTranspose2d(8, 4, 3), None),
        (nn.Conv1d(8, 4, 3), None),
        (nn.MultiheadAttention(8, 2).out_proj, None),
        (_Sub(8, 4, 3), None),
        (nn.BatchNorm2d(4), None),
    ],
)
def test_default_method(layer: nn.Module, expected) -> None:
    assert default_method(layer) == expected
