"""Rank search: scored curves against an independent float64 reference, state isolation, cached stages,
search -> plan -> JSON -> fresh model, and the no-Lightning rule of the compression package."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from par_lightning.compression import (
    CompressionPlan,
    SearchOptions,
    apply_plan,
    factorized_macs,
    factorized_params,
    plan_from_selection,
    rank_grid,
    score_layers,
    select_layers,
    select_threshold,
)
from tests.import_check import imported_packages


class Net(nn.Module):
    """A two-stage CNN: ``backbone`` (3x3 convs + BN) then ``head`` (1x1 conv, pooling, linear)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 24, 3, padding=1, stride=2), nn.BatchNorm2d(24), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Conv2d(24, 32, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def _loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return F.binary_cross_entropy_with_logits(model(x), y)


@pytest.fixture(scope="module")
def setup() -> tuple[Net, list, dict]:
    torch.manual_seed(0)
    model = Net().double()
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(6, 3, 8, 8, generator=gen, dtype=torch.float64), torch.rand(6, 5, generator=gen, dtype=torch.float64).round()) for _ in range(3)]  # fmt: skip
    targets = select_layers(model, min_params=1, skip_stem=True).targets
    return model, batches, dict(targets)


def _options(**kw: object) -> SearchOptions:
    return SearchOptions(**{"als_iters": 60, "epc_sweeps": 10, **kw})  # type: ignore[arg-type]


def test_targets_and_grid(setup: tuple) -> None:
    _, _, targets = setup
    assert targets == {"backbone.3": "cp3", "head.0": "svd", "head.4": "svd"}  # the 3-channel stem is skipped


def test_svd_scores_equal_an_independent_float64_reference(setup: tuple) -> None:
    model, batches, _ = setup
    curves, _ = score_layers(
        model, _loss, batches, {"head.0": "svd"}, torch.zeros(1, 3, 8, 8), _options(stop_below=None)
    )
    curve = curves["head.0"]
    layer = model.head[0]
    w = layer.weight.detach().reshape(32, 24).numpy()

    def grad_with(weight: np.ndarray) -> np.ndarray:
        twin = copy.deepcopy(model).train()
        twin.head[0].weight.data = torch.from_numpy(weight.reshape(32, 24, 1, 1).copy())
        total = np.zeros((32, 24))
        for batch in batches:
            twin.zero_grad()
            _loss(twin, batch).backward()
            total += twin.head[0].weight.grad.reshape(32, 24).numpy()
        return total / len(batches)

    g = grad_with(w)
    u_svd, s, vt = np.linalg.svd(w, full_matrices=False)
    assert [c.rank for c in curve.candidates] == rank_grid(curve.ref_rank, 9)
    for cand in curve.candidates:
        r = cand.rank
        a, b = u_svd[:, :r] * np.sqrt(s[:r]), np.sqrt(s[:r])[:, None] * vt[:r]
        g_hat = grad_with(a @ b)
        u = g_hat @ b.T @ b + a @ a.T @ g_hat  # J J^T G_hat for W = A B
        expected = float((g * u).sum() / (np.linalg.norm(g) * np.linalg.norm(u)))
        assert cand.score == pytest.approx(expected, abs=1e-9)
        assert cand.rel_error == pytest.approx(np.sqrt((s[r:] ** 2).sum()) / np.linalg.norm(w), abs=1e-9)
        assert cand.params == factorized_params(layer, "svd", r) == r * (24 + 32)
        assert cand.macs == factorized_macs(layer, "svd", r, (4, 4))
    assert curve.ref_rank == 24 * 32 // (24 + 32)  # parameter-neutral rank


def test_search_leaves_the_model_untouched(setup: tuple) -> None:
    model, batches, targets = setup
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    score_layers(model, _loss, batches, targets, torch.zeros(1, 3, 8, 8), _options())
    assert not model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_early_stop_scans_down_to_the_first_failing_rank(setup: tuple) -> None:
    model, batches, _ = setup
    full, _ = score_layers(
        model, _loss, batches, {"head.4": "svd"}, torch.zeros(1, 3, 8, 8), _options(stop_below=None)
    )
    cut, _ = score_layers(
        model, _loss, batches, {"head.4": "svd"}, torch.zeros(1, 3, 8, 8), _options(stop_below=0.99)
    )
    scores = [c.score / full["head.4"].ref_score for c in full["head.4"].candidates]
    first_fail = next((i for i, s in enumerate(scores) if s < 0.99), len(scores) - 1)
    assert len(cut["head.4"].candidates) == first_fail + 1
    assert [c.score for c in cut["head.4"].candidates] == [c.score for c in full["head.4"].candidates][
        : first_fail + 1
    ]


def test_replayed_stages_give_the_same_scores(setup: tuple) -> None:
    model, batches, targets = setup
    plain, _ = score_layers(
        model, _loss, batches, targets, torch.zeros(1, 3, 8, 8), _options(stop_below=None)
    )
    cached, _ = score_layers(
        model,
        _loss,
        batches,
        targets,
        torch.zeros(1, 3, 8, 8),
        _options(stop_below=None, stages=("backbone",)),
    )
    for name in targets:
        assert [c.score for c in cached[name].candidates] == pytest.approx(
            [c.score for c in plain[name].candidates], abs=1e-10
        )


def test_search_plan_json_applies_to_a_fresh_model(setup: tuple) -> None:
    model, batches, targets = setup
    curves, _ = score_layers(model, _loss, batches, targets, torch.zeros(1, 3, 8, 8), _options())
    ranks = {n: select_threshold(c, tau=0.5, min_saving=0.0).rank for n, c in curves.items()}
    plan = plan_from_selection(curves, ranks)
    assert plan.layers, "nothing selected"
    compressed = apply_plan(copy.deepcopy(model), CompressionPlan.from_json(plan.to_json()))
    fresh = apply_plan(Net().double(), CompressionPlan.from_json(plan.to_json()), decompose=False)
    fresh.load_state_dict(compressed.state_dict())
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    compressed.eval(), fresh.eval()
    assert torch.equal(compressed(x), fresh(x))
    assert sum(p.numel() for p in compressed.parameters()) < sum(p.numel() for p in model.parameters())


def test_compression_package_imports_no_lightning() -> None:
    modules = ["par_lightning.compression", "par_lightning.models"]
    assert imported_packages(modules, ("lightning", "pytorch_lightning", "lightning_fabric")) == []
