"""Calibration gradients against plain backward loops on model copies; the pass must leave no state behind."""

from __future__ import annotations

import copy
from typing import Any, cast

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from par_lightning.compression.alignment import normalised, svd_update_direction
from par_lightning.compression.calibration import layer_gradients, score_rank, swapped_gradient, to_device
from par_lightning.compression.factors import CPFactors, SVDFactors

NAMES = ["features.0", "features.4", "head"]
STEPS = 100


pytestmark = pytest.mark.usefixtures("one_thread")


class _Net(nn.Module):
    def __init__(self, features: nn.Sequential, head: nn.Linear) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _net(seed: int = 0) -> _Net:
    torch.manual_seed(seed)
    features = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Dropout2d(0.3),
        nn.Conv2d(8, 8, 1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.3),
    )
    return _Net(features, nn.Linear(8, 4))


def _loss(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch
    return F.binary_cross_entropy_with_logits(model(x), y)


def _batches(k: int = 3, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(6, 3, 8, 8, generator=g), (torch.rand(6, 4, generator=g) > 0.5).float())
        for _ in range(k)
    ]


def _reference(
    model: nn.Module, batches: list[Any], names: list[str], seed: int = 0
) -> dict[str, torch.Tensor]:
    """Plain loop of loss.backward() on a fresh copy in train mode, same seed, gradients averaged."""
    ref = copy.deepcopy(model).train()
    for p in ref.parameters():
        p.grad = None
    torch.manual_seed(seed)
    for b in batches:
        _loss(ref, b).backward()
    mods = dict(ref.named_modules())
    return {n: mods[n].weight.grad / len(batches) for n in names}


def _state(model: nn.Module) -> dict[str, Any]:
    return {
        "buffers": {n: b.clone() for n, b in model.named_buffers()},
        "grads": {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
        "grad_ids": {n: id(p.grad) for n, p in model.named_parameters()},
        "flags": {n: p.requires_grad for n, p in model.named_parameters()},
        "modes": {n: m.training for n, m in model.named_modules()},
        "rng": torch.get_rng_state(),
    }


def _assert_same_state(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before["buffers"].keys() == after["buffers"].keys()
    for n, b in before["buffers"].items():
        a = after["buffers"][n]
        assert a.dtype == b.dtype and a.numpy().tobytes() == b.numpy().tobytes(), n
    for n, g in before["grads"].items():
        if g is None:
            assert after["grads"][n] is None, n
        else:
            assert torch.equal(after["grads"][n], g), n
    assert after["grad_ids"] == before["grad_ids"]
    assert after["flags"] == before["flags"]
    assert after["modes"] == before["modes"]
    assert torch.equal(after["rng"], before["rng"])


def test_layer_gradients_match_plain_backward_loop() -> None:
    model, batches = _net(), _batches()
    got = layer_gradients(model, _loss, batches, NAMES)
    ref = _reference(model, batches, NAMES)
    assert got.keys() == set(NAMES)
    for n in NAMES:
        torch.testing.assert_close(got[n], ref[n], rtol=1e-5, atol=1e-6)


def test_calibration_leaves_no_state_behind() -> None:
    model, batches = _net(), _batches()
    model.eval()
    model.features[3].train()  # mixed modes must come back as they were
    model.get_parameter("features.1.weight").requires_grad_(False)
    model.head.weight.grad = torch.randn_like(model.head.weight)
    bias = model.get_parameter("features.4.bias")
    bias.grad = torch.randn_like(bias)
    with torch.no_grad():  # callers may hold no_grad; the pass enables grad itself
        model.get_buffer("features.5.running_mean").uniform_()
        before = _state(model)
        got = layer_gradients(model, _loss, batches, NAMES)
        _assert_same_state(before, _state(model))
        w_hat = model.get_parameter("features.4.weight").detach() * 0.5
        swapped_gradient(model, _loss, batches, "features.4", w_hat)
        _assert_same_state(before, _state(model))
    ref = _reference(model, batches, NAMES)  # train mode, all BN in batch-stat mode: same as the pass
    for n in NAMES:
        torch.testing.assert_close(got[n], ref[n], rtol=1e-5, atol=1e-6)


def test_repeated_calls_are_identical_and_swap_with_same_weight_gives_g() -> None:
    model, batches = _net(), _batches()
    g1 = layer_gradients(model, _loss, batches, NAMES)
    g2 = layer_gradients(model, _loss, batches, NAMES)
    for n in NAMES:
        assert torch.equal(g1[n], g2[n])
    for n in NAMES:
        w = dict(model.named_modules())[n].weight.detach().clone()
        torch.testing.assert_close(swapped_gradient(model, _loss, batches, n, w), g1[n], rtol=1e-6, atol=1e-7)


def test_swapped_gradient_matches_copy_with_replaced_weight() -> None:
    model, batches = _net(), _batches()
    w_hat = torch.randn_like(model.get_parameter("features.4.weight"))
    original = model.get_parameter("features.4.weight").detach().clone()
    got = swapped_gradient(model, _loss, batches, "features.4", w_hat)
    assert torch.equal(model.get_parameter("features.4.weight"), original)
    swapped = copy.deepcopy(model)
    with torch.no_grad():
        swapped.get_parameter("features.4.weight").copy_(w_hat)
    ref = _reference(swapped, batches, ["features.4"])["features.4"]
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, layer_gradients(model, _loss, batches, ["features.4"])["features.4"])


def test_dense_swap_gives_the_factor_step_of_the_built_module() -> None:
    """The G_hat of the dense swap, pushed through J J^T, is the weight step SGD makes on real factor modules."""
    model, batches = _net(), _batches()
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(8, 3, generator=g), torch.randn(3, 8, generator=g)
    g_hat = swapped_gradient(model, _loss, batches, "features.4", (a @ b)[:, :, None, None])
    built = copy.deepcopy(model).train()
    conv = cast(nn.Conv2d, built.features[4])
    first, last = nn.Conv2d(8, 3, 1, bias=False), nn.Conv2d(3, 8, 1)
    with torch.no_grad():
        first.weight.copy_(b[:, :, None, None])
        last.weight.copy_(a[:, :, None, None])
        cast(torch.Tensor, last.bias).copy_(cast(torch.Tensor, conv.bias))
    built.features[4] = nn.Sequential(first, last)
    torch.manual_seed(0)
    for batch in batches:
        (_loss(built, batch) / len(batches)).backward()
    ga, gb = last.weight.grad[:, :, 0, 0], first.weight.grad[:, :, 0, 0]  # type: ignore[index]
    step = ga @ b + a @ gb  # J (J^T G_hat): the first-order change of W_hat per unit SGD step
    torch.testing.assert_close(
        svd_update_direction(g_hat, SVDFactors(a, b))[:, :, 0, 0], step, rtol=1e-5, atol=1e-6
    )


def test_dict_batches_and_device_helper() -> None:
    model = _net()
    batches = [{"image": x, "target": y, "meta": ["a"]} for x, y in _batches(2)]

    def dict_loss(m: nn.Module, b: dict[str, Any]) -> torch.Tensor:
        return _loss(m, (b["image"], b["target"]))

    got = layer_gradients(model, dict_loss, batches, ["head"])["head"]
    ref = _reference(model, [(b["image"], b["target"]) for b in batches], ["head"])["head"]
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    moved = to_device((torch.ones(1), [torch.zeros(2)], {"k": torch.ones(3)}, "x"), torch.device("cpu"))
    assert isinstance(moved, tuple) and isinstance(moved[1], list) and moved[3] == "x"
    assert torch.equal(moved[2]["k"], torch.ones(3))


def test_errors_name_the_fix() -> None:
    model, batches = _net(), _batches(1)
    with pytest.raises(KeyError, match="features.4"):
        layer_gradients(model, _loss, batches, ["nope"])
    with pytest.raises(ValueError, match="no weight"):
        layer_gradients(model, _loss, batches, ["features.2"])
    with pytest.raises(ValueError, match="shape"):
        swapped_gradient(model, _loss, batches, "head", torch.zeros(3, 3))
    with pytest.raises(ValueError, match="at least one batch"):
        layer_gradients(model, _loss, [], ["head"])


def test_score_rank_dispatches_to_svd_and_cp() -> None:
    g = torch.Generator().manual_seed(0)
    grad, g_hat = torch.randn(5, 4, 1, 1, generator=g), torch.randn(5, 4, 1, 1, generator=g)
    a, b = torch.randn(5, 2, generator=g), torch.randn(2, 4, generator=g)
    gn, hn, an, bn = (t.double().numpy() for t in (grad[:, :, 0, 0], g_hat[:, :, 0, 0], a, b))
    u = hn @ bn.T @ bn + an @ an.T @ hn
    ref = float(np.sum(gn * u) / (np.linalg.norm(gn) * np.linalg.norm(u)))
    assert score_rank(grad, g_hat, SVDFactors(a, b)) == pytest.approx(ref, abs=1e-5)
    cp = CPFactors(
        torch.randn(5, 3, generator=g), torch.randn(4, 3, generator=g), (torch.randn(9, 3, generator=g),)
    )
    grad3 = torch.randn(5, 4, 3, 3, generator=g)
    assert -1.0 <= score_rank(grad3, grad3, cp) <= 1.0
    assert score_rank(grad3, grad3, cp) >= 0  # J J^T is positive semi-definite


# --- a damaging rank scores lower than a harmless one on a trained model -------------------------------


def _patterns_task(n: int, gen: torch.Generator, patterns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of noise with a 4x4 pattern per present attribute at a random place (multi-label)."""
    attrs = patterns.shape[0]
    y = (torch.rand(n, attrs, generator=gen) > 0.5).float()  # (N, A)
    where = torch.randint(0, 13 * 13, (n, attrs), generator=gen)  # top-left corner of each pattern
    spikes = F.one_hot(where, 13 * 13).float() * y[..., None]  # (N, A, 169)
    x = F.conv_transpose2d(spikes.reshape(n, attrs, 13, 13), patterns)  # (N, 3, 16, 16)
    return x + 0.5 * torch.randn(n, 3, 16, 16, generator=gen), y


def _tiny_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 32, 1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 6),
    )


def _svd_w_hat(w: torch.Tensor, rank: int) -> tuple[SVDFactors, torch.Tensor]:
    """Balanced truncated SVD in numpy float64 (reference factors, independent of the package)."""
    mat = w.detach().double().reshape(w.shape[0], -1).numpy()
    u, s, vh = np.linalg.svd(mat, full_matrices=False)
    a = torch.from_numpy(u[:, :rank] * np.sqrt(s[:rank]))
    b = torch.from_numpy(np.sqrt(s[:rank])[:, None] * vh[:rank])
    return SVDFactors(a, b), (a @ b).reshape(w.shape).float()


def _loss_with_weight(model: nn.Sequential, index: int, w: torch.Tensor, batches: list[Any]) -> float:
    """Mean loss of a copy whose layer ``index`` uses ``w`` (train-mode BN, as during training)."""
    swapped = copy.deepcopy(model).train()
    with torch.no_grad():
        cast(nn.Conv2d, swapped[index]).weight.copy_(w)
        return float(np.mean([_loss(swapped, b).item() for b in batches]))


def test_damaging_rank_scores_lower_than_reference_rank() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    patterns = 1.5 * torch.randn(6, 3, 4, 4, generator=gen)
    model = _tiny_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(STEPS):
        loss = _loss(model, _patterns_task(32, gen, patterns))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3  # the task was learnt (chance level is ~0.69)

    batches = [_patterns_task(32, gen, patterns) for _ in range(4)]
    name, ref_rank = "6", (32 * 32) // (32 + 32)  # r_max(rho=1) of a 1x1 32->32 conv
    g = layer_gradients(model, _loss, batches, [name])[name]
    scores, losses = {}, {}
    for rank in (1, ref_rank):
        factors, w_hat = _svd_w_hat(model.get_parameter("6.weight"), rank)
        g_hat = swapped_gradient(model, _loss, batches, name, w_hat).double()
        scores[rank] = score_rank(g.double(), g_hat, factors)
        losses[rank] = _loss_with_weight(model, 6, w_hat, batches)
    dense = _loss_with_weight(model, 6, model.get_parameter("6.weight").detach(), batches)
    # rank 1 really damages the model, the reference rank does not
    assert losses[1] > 2 * dense and losses[ref_rank] < 1.5 * dense
    norm = normalised(scores, ref_rank)
    assert scores[ref_rank] > 0.3
    assert norm[1] < 0.9 * norm[ref_rank]
