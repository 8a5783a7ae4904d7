"""Tests of the positive-ratio weighted BCE against numpy float64 references (datasets.md §8)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from par_lightning.losses import WeightedBCELoss, weighted_bce_with_logits


def ref_deepmar(z: np.ndarray, y: np.ndarray, p: np.ndarray | None, mask: np.ndarray | None = None) -> float:
    """Rethinking: sum_j w_ij * BCE_ij, mean over the batch; w = exp(1-p) (y=1) / exp(p) (y=0) / 0 (masked)."""
    batch, num_attr = z.shape
    total = 0.0
    for i in range(batch):
        for j in range(num_attr):
            if mask is not None and not mask[i, j]:
                continue
            s = 1.0 / (1.0 + math.exp(-z[i, j]))
            bce = -(y[i, j] * math.log(s) + (1 - y[i, j]) * math.log(1 - s))
            w = 1.0 if p is None else (math.exp(1 - p[j]) if y[i, j] > 0.5 else math.exp(p[j]))
            total += w * bce
    return total / batch


def ref_alm(z: np.ndarray, y: np.ndarray, p: np.ndarray | None, mask: np.ndarray | None = None) -> float:
    """ALM: -mean(exp(1-p) * y * log(s + 1e-12) + (1 - y) * log(1 - s + 1e-12)) over unmasked elements."""
    s = 1.0 / (1.0 + np.exp(-z))
    w_pos = np.ones(z.shape[1]) if p is None else np.exp(1 - p)
    term = w_pos[None, :] * y * np.log(s + 1e-12) + (1 - y) * np.log(1 - s + 1e-12)
    if mask is None:
        return float(-term.mean())
    return float(-(term[mask]).sum() / mask.sum())


REFS = {"deepmar": ref_deepmar, "alm": ref_alm}


def test_worked_example() -> None:
    logits = torch.zeros(2, 2)
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([0.2, 0.5])
    loss = weighted_bce_with_logits(logits, targets, p)
    assert float(loss) == pytest.approx(2.337426, abs=1e-6)
    assert float(WeightedBCELoss([0.2, 0.5])(logits, targets)) == pytest.approx(2.337426, abs=1e-6)
    # single-element values of the worked example
    pos = weighted_bce_with_logits(torch.zeros(1, 1), torch.ones(1, 1), torch.tensor([0.2]))
    neg = weighted_bce_with_logits(torch.zeros(1, 1), torch.zeros(1, 1), torch.tensor([0.2]))
    assert float(pos) == pytest.approx(1.542627, abs=1e-6)
    assert float(neg) == pytest.approx(0.846612, abs=1e-6)


@pytest.mark.parametrize("variant", ["deepmar", "alm"])
@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("use_ratios", [False, True])
def test_random_against_reference(variant: str, use_mask: bool, use_ratios: bool) -> None:
    rng = np.random.default_rng(7)
    batch, num_attr = 9, 6
    z = rng.normal(scale=3.0, size=(batch, num_attr))
    y = rng.integers(0, 2, size=(batch, num_attr)).astype(np.float64)
    p = rng.uniform(0.02, 0.9, size=num_attr) if use_ratios else None
    mask = rng.random((batch, num_attr)) > 0.3 if use_mask else None
    expected = REFS[variant](z, y, p, mask)

    loss = weighted_bce_with_logits(
        torch.from_numpy(z),
        torch.from_numpy(y),
        None if p is None else torch.from_numpy(p),
        variant=variant,  # type: ignore[arg-type]
        mask=None if mask is None else torch.from_numpy(mask),
    )
    assert loss.dtype == torch.float64
    assert float(loss) == pytest.approx(expected, rel=1e-10)

    module = WeightedBCELoss(None if p is None else p.tolist(), variant=variant)
    loss32 = module(
        torch.from_numpy(z).float(),
        torch.from_numpy(y).float(),
        None if mask is None else torch.from_numpy(mask),
    )
    assert float(loss32) == pytest.approx(expected, rel=1e-5)


def test_without_ratios_is_plain_bce_summed_over_attributes() -> None:
    gen = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(5, 4, generator=gen), torch.randint(0, 2, (5, 4), generator=gen).float()
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / 5
    torch.testing.assert_close(weighted_bce_with_logits(logits, targets), plain)
    torch.testing.assert_close(WeightedBCELoss()(logits, targets), plain)
    mean_bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    torch.testing.assert_close(weighted_bce_with_logits(logits, targets, variant="alm"), mean_bce)


@pytest.mark.parametrize("variant", ["deepmar", "alm"])
def test_mask_excludes_entries(variant: str) -> None:
    gen = torch.Generator().manual_seed(1)
    logits, targets = torch.randn(6, 5, generator=gen), torch.randint(0, 2, (6, 5), generator=gen).float()
    mask = torch.rand(6, 5, generator=gen) > 0.4
    ratios = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9])
    base = weighted_bce_with_logits(logits, targets, ratios, variant=variant, mask=mask)  # type: ignore[arg-type]
    # Masked entries may hold anything, including RAP's 2 and extreme logits: the loss is unchanged.
    logits2 = torch.where(mask, logits, torch.full_like(logits, 50.0))
    targets2 = torch.where(mask, targets, torch.full_like(targets, 2.0))
    other = weighted_bce_with_logits(logits2, targets2, ratios, variant=variant, mask=mask)  # type: ignore[arg-type]
    torch.testing.assert_close(base, other)
    ref = REFS[variant](
        logits.double().numpy(), targets.double().numpy(), ratios.double().numpy(), mask.numpy()
    )
    assert float(base) == pytest.approx(ref, rel=1e-5)


def test_deepmar_mask_keeps_batch_denominator() -> None:
    logits, targets = torch.zeros(2, 2), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mask = torch.tensor([[True, True], [False, False]])
    loss = weighted_bce_with_logits(logits, targets, mask=mask)
    assert float(loss) == pytest.approx(2 * math.log(2) / 2)


def test_fully_masked_alm_is_zero_not_nan() -> None:
    loss = weighted_bce_with_logits(
        torch.randn(2, 3), torch.ones(2, 3), variant="alm", mask=torch.zeros(2, 3).bool()
    )
    assert float(loss) == 0.0


@pytest.mark.parametrize("variant", ["deepmar", "alm"])
def test_gradient_finite_at_extreme_logits(variant: str) -> None:
    logits = torch.tensor([[100.0, -100.0, 100.0, -100.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, 0.0, 1.0]])  # two right, two badly wrong
    loss = WeightedBCELoss([0.1, 0.2, 0.3, 0.4], variant=variant)(logits, targets)
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    if variant == "alm":  # ε = 1e-12 inside the logs caps a wrong element at -log(1e-12)
        expected = (math.exp(1 - 0.4) * -math.log(1e-12) - math.log(1e-12)) / 4
        assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)


def test_invalid_variant_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"'focal'.*deepmar, alm"):
        WeightedBCELoss(variant="focal")
    with pytest.raises(ValueError, match="valid choices"):
        weighted_bce_with_logits(torch.zeros(1, 1), torch.zeros(1, 1), variant="focal")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ratios", "pattern"),
    [
        ([0.2, -0.1, 0.5], r"pos_ratios\[1\] = -0\.1"),
        ([0.2, 0.5, 2.0], r"pos_ratios\[2\] = 2\.0"),
        ([1.5], r"pos_ratios\[0\] = 1\.5 is outside \[0, 1\]"),
        ([0.3, float("nan")], r"pos_ratios\[1\] = nan"),
        ([[0.1, 0.2]], "1-D"),
    ],
)
def test_invalid_ratios_raise(ratios: list, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        WeightedBCELoss(ratios)


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"expected pos_ratios of shape \[3\], got \[2\]"):
        weighted_bce_with_logits(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="expected targets of shape"):
        weighted_bce_with_logits(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="expected mask of shape"):
        weighted_bce_with_logits(torch.zeros(2, 3), torch.zeros(2, 3), mask=torch.ones(2, 2).bool())


def test_ratios_are_non_persistent_buffer_following_device_and_dtype() -> None:
    module = WeightedBCELoss([0.25, 0.75])
    assert "pos_ratios" in dict(module.named_buffers())
    assert "pos_ratios" not in module.state_dict()
    module = module.to(torch.float64)
    assert module.pos_ratios is not None and module.pos_ratios.dtype == torch.float64
    assert WeightedBCELoss().pos_ratios is None
    assert "variant='deepmar'" in repr(module)
