"""Baseline rank policies: uniform ratio, spectral energy (numpy reference), accuracy bisection."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from par_lightning.compression.curves import Method
from par_lightning.compression.policies import accuracy_bisection_plan, energy_plan, uniform_ratio_plan


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(16, 24, 3, padding=1)  # P0 = 3456, CP3 per rank 16 + 9 + 24 = 49
        self.pw = nn.Conv2d(24, 20, 1)  # P0 = 480, SVD per rank 44
        self.fc = nn.Linear(40, 30)  # P0 = 1200, SVD per rank 70

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pw(torch.relu(self.conv(x))).mean((2, 3))  # (B, 20)
        return self.fc(torch.cat([x, x], 1))  # (B, 30)


TARGETS: dict[str, Method] = {"conv": "cp3", "pw": "svd", "fc": "svd"}


@pytest.mark.parametrize("rho", [1.0, 2.0, 4.0])
def test_uniform_ratio_matches_formula(rho: float) -> None:
    model = Net()
    plan = uniform_ratio_plan(model, TARGETS, rho)
    expect = {
        "conv": math.floor(3456 / (rho * (16 + 9 + 24))),
        "pw": min(math.floor(480 / (rho * (24 + 20))), 20),
        "fc": min(math.floor(1200 / (rho * (40 + 30))), 30),
    }
    assert {n: lp.rank for n, lp in plan.layers.items()} == expect
    assert plan.layers["conv"].method == "cp3" and plan.layers["conv"].weight_shape == (24, 16, 3, 3)
    assert plan.meta["policy"] == "uniform_ratio"


def test_uniform_ratio_too_high_keeps_dense() -> None:
    plan = uniform_ratio_plan(Net(), {"pw": "svd", "fc": "svd"}, 12.0)  # pw: 480 / 528 < 1
    assert list(plan.layers) == ["fc"] and plan.layers["fc"].rank == 1
    assert "pw" in plan.meta["dense"]


def numpy_energy_rank(w: np.ndarray, energy: float) -> int:
    s = np.linalg.svd(w.reshape(w.shape[0], -1), compute_uv=False)
    frac = np.cumsum(s**2) / np.sum(s**2)
    return int(np.argmax(frac >= energy)) + 1


@pytest.mark.parametrize("energy", [0.5, 0.9, 0.99])
def test_energy_rank_matches_numpy(energy: float) -> None:
    torch.manual_seed(0)
    model = Net()
    with torch.no_grad():  # decaying spectra so the ranks differ between energies
        for m in (model.pw, model.fc):
            u, _, vh = torch.linalg.svd(m.weight.view(m.weight.shape[0], -1), full_matrices=False)
            s = 0.7 ** torch.arange(u.shape[1], dtype=u.dtype)
            m.weight.copy_((u * s @ vh).view_as(m.weight))
    plan = energy_plan(model, TARGETS, energy)
    caps = {"conv": 3456 // 49, "pw": 480 // 44, "fc": 1200 // 70}
    for name in TARGETS:
        w = getattr(model, name).weight.detach().double().numpy()
        expect = numpy_energy_rank(w, energy)
        assert plan.layers[name].info["energy_rank"] == expect
        assert plan.layers[name].rank == min(expect, caps[name])
    assert plan.layers["fc"].rank < caps["fc"]  # the uncapped rule is exercised on an SVD layer


def test_energy_validates_energy() -> None:
    with pytest.raises(ValueError, match="energy"):
        energy_plan(Net(), TARGETS, 1.5)


def swapped_rank(module: nn.Module) -> int | None:
    return module[0].out_features if isinstance(module, nn.Sequential) else None


def test_accuracy_bisection_finds_smallest_accepted_rank() -> None:
    model = Net()
    calls: list[int | None] = []

    def evaluate(m: nn.Module) -> float:
        r = swapped_rank(m.fc)
        calls.append(r)
        return 0.80 if r is None or r >= 13 else 0.79  # accepted iff rank >= 13 (eps = 0.002)

    plan = accuracy_bisection_plan(model, {"fc": "svd"}, evaluate)
    assert plan.layers["fc"].rank == 13
    n_ranks = 1200 // 70 - 2 + 1  # search on [2, 17]
    assert calls[0] is None and len(calls) - 1 <= math.floor(math.log2(n_ranks)) + 1
    assert set(plan.layers["fc"].scores) == set(calls[1:])
    assert plan.meta["evaluations"] == len(calls)
    assert isinstance(model.fc, nn.Linear)  # the model itself is never modified


def test_accuracy_bisection_every_threshold() -> None:
    model = nn.Module()
    model.fc = nn.Linear(40, 30)
    for threshold in range(2, 19):  # ranks on [2, 17]; 18 = every rank fails
        plan = accuracy_bisection_plan(
            model, {"fc": "svd"}, lambda m, t=threshold: 0.8 if (swapped_rank(m.fc) or 99) >= t else 0.7
        )
        got = plan.layers["fc"].rank if "fc" in plan.layers else None
        assert got == (threshold if threshold <= 17 else None), threshold


def test_accuracy_bisection_all_fail_keeps_dense_and_recalibrates_copies() -> None:
    model = Net()
    seen_models: list[nn.Module] = []

    def recalibrate(m: nn.Module) -> None:
        seen_models.append(m)

    def evaluate(m: nn.Module) -> float:
        return 0.9 if swapped_rank(m.fc) is None else 0.5

    plan = accuracy_bisection_plan(model, {"fc": "svd"}, evaluate, recalibrate=recalibrate)
    assert plan.layers == {} and "pw" not in plan.meta["dense"] and "fc" in plan.meta["dense"]
    n_evals = plan.meta["evaluations"]
    assert len(seen_models) == n_evals and all(m is not model for m in seen_models)
    # every rank failing walks up to the parameter-neutral rank (17), which was tried last
    assert swapped_rank(seen_models[-1].fc) == 17
