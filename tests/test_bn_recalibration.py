"""BN recalibration against a float64 cumulative-average reference; the pass must restore everything else."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from par_lightning.compression.bn_recalibration import average_batchnorm_stats, recalibrate_batchnorm

pytestmark = pytest.mark.usefixtures("one_thread")


def _conv_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.Dropout(0.5), nn.BatchNorm2d(4, momentum=0.3), nn.ReLU()
    )


def _linear_model() -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(5, 6), nn.Dropout(0.5), nn.BatchNorm1d(6), nn.Linear(6, 2))


def _reference(features: list[Tensor], dims: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Mean over batches of the per-batch mean and unbiased per-batch variance, in float64, no dropout."""
    means = torch.stack([f.mean(dim=dims) for f in features])
    variances = torch.stack([f.var(dim=dims, unbiased=True) for f in features])
    return means.mean(0), variances.mean(0)


def _conv_features(model: nn.Sequential, xs: list[Tensor]) -> list[Tensor]:
    conv = model[0]
    return [F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1) for x in xs]


def _linear_features(model: nn.Sequential, xs: list[Tensor]) -> list[Tensor]:
    lin = model[0]
    return [x.double() @ lin.weight.double().T + lin.bias.double() for x in xs]


def _spoil(model: nn.Module) -> None:
    """Stale stats, mixed modes and a backward's .grad, so the test sees what is reset and what is restored."""
    bn = next(m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    bn.running_mean.fill_(5.0)
    bn.running_var.fill_(9.0)
    bn.num_batches_tracked.fill_(77)
    model.train()
    model[-1].eval()  # an odd mode that a blanket model.train()/eval() would not restore


def _grads(model: nn.Module, x: Tensor) -> None:
    model(x).sum().backward()


@pytest.mark.parametrize(
    ("make", "features", "dims", "shape"),
    [
        (_conv_model, _conv_features, (0, 2, 3), (6, 3, 5, 5)),
        (_linear_model, _linear_features, (0,), (7, 5)),
    ],
    ids=["conv-bn2d", "linear-bn1d"],
)
def test_recalibration_matches_float64_reference_and_restores_state(
    make: Callable[[], nn.Sequential], features: Callable, dims: tuple[int, ...], shape: tuple[int, ...]
) -> None:
    model = make()
    torch.manual_seed(2)
    xs = [torch.randn(shape) * 2 + 1 for _ in range(4)]
    _grads(model, xs[0])
    _spoil(model)
    modes = {name: m.training for name, m in model.named_modules()}
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    bn = model[2]
    momentum = bn.momentum

    batches = [(x, torch.zeros(len(x))) for x in xs]  # (inputs, targets): default forward uses batch[0]
    used = recalibrate_batchnorm(model, batches)

    mean, var = _reference(features(model, xs), dims)
    assert used == len(xs)
    torch.testing.assert_close(bn.running_mean.double(), mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bn.running_var.double(), var, rtol=1e-5, atol=1e-5)
    assert int(bn.num_batches_tracked) == len(xs)
    assert bn.momentum == momentum
    assert {name: m.training for name, m in model.named_modules()} == modes
    for name, p in model.named_parameters():
        assert torch.equal(p, params[name]), name
        assert torch.equal(p.grad, grads[name]), name
        assert p.requires_grad


def test_max_batches_and_custom_forward_with_dict_batches() -> None:
    model = _conv_model()
    torch.manual_seed(3)
    xs = [torch.randn(4, 3, 5, 5) for _ in range(5)]
    drawn: list[int] = []

    def batches():  # a lazy loader: recalibration must not draw more than it uses
        for i, x in enumerate(xs):
            drawn.append(i)
            yield {"image": x}

    used = recalibrate_batchnorm(model, batches(), forward=lambda m, b: m(b["image"]), max_batches=2)

    mean, var = _reference(_conv_features(model, xs[:2]), (0, 2, 3))
    assert used == 2
    assert drawn == [0, 1]
    torch.testing.assert_close(model[2].running_mean.double(), mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model[2].running_var.double(), var, rtol=1e-5, atol=1e-5)


def test_failed_pass_restores_previous_statistics_and_modes() -> None:
    model = _conv_model()
    _spoil(model)
    before = {k: v.clone() for k, v in model[2].state_dict().items()}
    modes = [m.training for m in model.modules()]
    calls = 0

    def forward(m: nn.Module, batch: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("loader broke")
        return m(batch)

    with pytest.raises(RuntimeError, match="loader broke"):
        recalibrate_batchnorm(model, [torch.randn(2, 3, 5, 5)] * 3, forward=forward)
    for k, v in model[2].state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model[2].momentum == 0.3
    assert [m.training for m in model.modules()] == modes


def test_errors_name_the_problem() -> None:
    model = _conv_model()
    _spoil(model)
    with pytest.raises(ValueError, match="batches is empty"):
        recalibrate_batchnorm(model, [])
    assert float(model[2].running_mean[0]) == 5.0  # nothing was reset by the failed call
    with pytest.raises(ValueError, match="max_batches must be >= 1"):
        recalibrate_batchnorm(model, [torch.randn(2, 3, 5, 5)], max_batches=0)
    with pytest.raises(TypeError, match="max_batches"):
        recalibrate_batchnorm(model, [torch.randn(2, 3, 5, 5)], max_batches=1.5)  # type: ignore[arg-type]
    no_stats = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3, track_running_stats=False))
    with pytest.raises(ValueError, match="no BatchNorm"):
        recalibrate_batchnorm(no_stats, [torch.randn(4, 3)])
    with pytest.raises(ValueError, match="no BatchNorm"):
        average_batchnorm_stats(nn.Linear(2, 2), lambda t: t)


def test_average_batchnorm_stats_with_a_fake_two_rank_all_reduce() -> None:
    rank0 = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Flatten(), nn.BatchNorm1d(4 * 9))
    rank1 = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Flatten(), nn.BatchNorm1d(4 * 9))
    torch.manual_seed(4)
    recalibrate_batchnorm(rank0, [torch.randn(8, 3, 3, 3)])
    recalibrate_batchnorm(rank1, [torch.randn(8, 3, 3, 3) * 3 + 2])
    stats0 = {k: v.clone() for k, v in rank0.state_dict().items() if "running" in k or "tracked" in k}
    stats1 = {k: v.clone() for k, v in rank1.state_dict().items() if "running" in k or "tracked" in k}
    # The other rank's buffers in the order a collective sees them: module order, mean then var.
    others = [
        getattr(m, n)
        for m in rank1.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        for n in ("running_mean", "running_var")
    ]
    calls = iter(others)

    average_batchnorm_stats(rank0, lambda t: (t + next(calls)) / 2)

    assert next(calls, None) is None  # every buffer was reduced exactly once
    for k, v in rank0.state_dict().items():
        if "running" in k:
            torch.testing.assert_close(v, (stats0[k] + stats1[k]) / 2, rtol=0, atol=1e-6)
        elif "tracked" in k:
            assert torch.equal(v, stats0[k])
    with pytest.raises(ValueError, match="shaped like running_mean"):
        average_batchnorm_stats(rank0, lambda t: t[:1])
