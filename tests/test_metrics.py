"""Tests of the PAR metrics against an independent numpy float64 reference (datasets.md §7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from par_lightning.metrics import (
    PARMetrics,
    par_instance_sums,
    par_metrics,
    par_metrics_compute,
    par_stat_scores,
)

EPS = 1e-20
KEYS = ("mA", "acc", "prec", "rec", "f1")


def ref_metrics(
    probs: np.ndarray, target: np.ndarray, threshold: float = 0.5, ignore: int | None = None
) -> dict:
    """Straight transcription of datasets.md §7 (Rethinking/ALM convention) with explicit loops."""
    probs = np.asarray(probs, dtype=np.float64)
    target = np.asarray(target)
    n, num_attr = target.shape
    valid = np.ones_like(target, dtype=bool) if ignore is None else target != ignore
    y = (target == 1) & valid
    yhat = (probs > threshold) & valid

    ma_per = np.zeros(num_attr)
    for j in range(num_attr):
        pos = neg = tp = tn = 0
        for i in range(n):
            if not valid[i, j]:
                continue
            if y[i, j]:
                pos += 1
                tp += int(yhat[i, j])
            else:
                neg += 1
                tn += int(not yhat[i, j])
        ma_per[j] = (tp / (pos + EPS) + tn / (neg + EPS)) / 2

    acc = prec = rec = 0.0
    for i in range(n):
        g = {j for j in range(num_attr) if y[i, j]}
        h = {j for j in range(num_attr) if yhat[i, j]}
        inter = len(g & h)
        acc += inter / (len(g | h) + EPS)
        prec += inter / (len(h) + EPS)
        rec += inter / (len(g) + EPS)
    acc, prec, rec = acc / n, prec / n, rec / n
    f1 = 2 * prec * rec / (prec + rec + EPS)
    return {"mA": ma_per.mean(), "acc": acc, "prec": prec, "rec": rec, "f1": f1, "mA_per_attribute": ma_per}


def assert_matches(result: dict, expected: dict, atol: float = 1e-6) -> None:
    for key in KEYS:
        assert result[key].ndim == 0, key
        assert float(result[key]) == pytest.approx(float(expected[key]), abs=atol), key
    np.testing.assert_allclose(
        result["mA_per_attribute"].double().numpy(), expected["mA_per_attribute"], atol=atol
    )


# §7.3 worked example.
Y_EX = [[1, 0, 1], [0, 0, 0], [1, 1, 0], [0, 1, 1]]
YHAT_EX = [[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]]


def _probs_from_preds(preds: list[list[int]]) -> torch.Tensor:
    return torch.tensor(preds, dtype=torch.float32) * 0.8 + 0.1  # 1 -> 0.9, 0 -> 0.1


def test_worked_example_functional() -> None:
    target = torch.tensor(Y_EX)
    preds = torch.tensor(YHAT_EX).bool()
    tp, fp, tn, fn = par_stat_scores(preds, target)
    assert tp.tolist() == [2, 1, 0] and tn.tolist() == [2, 1, 2]
    assert (tp + fn).tolist() == [2, 2, 2] and (tn + fp).tolist() == [2, 2, 2]
    assert tp.dtype == torch.int64

    acc_sum, prec_sum, rec_sum, n = par_instance_sums(preds, target)
    assert acc_sum.dtype == torch.float64 and int(n) == 4
    assert float(acc_sum) == pytest.approx(1.5) and float(prec_sum) == pytest.approx(2.0)
    assert float(rec_sum) == pytest.approx(1.5)

    out = par_metrics(_probs_from_preds(YHAT_EX), target)
    expected = {"mA": 0.666667, "acc": 0.375, "prec": 0.5, "rec": 0.375, "f1": 0.428571}
    for key, value in expected.items():
        assert float(out[key]) == pytest.approx(value, abs=1e-6), key
    assert out["mA_per_attribute"].tolist() == pytest.approx([1.0, 0.5, 0.5])
    assert_matches(out, ref_metrics(_probs_from_preds(YHAT_EX).numpy(), np.array(Y_EX)))


def test_worked_example_metric_class() -> None:
    metric = PARMetrics(num_attributes=3)
    metric.update(_probs_from_preds(YHAT_EX[:1]), torch.tensor(Y_EX[:1]))
    metric.update(_probs_from_preds(YHAT_EX[1:]), torch.tensor(Y_EX[1:]))
    out = metric.compute()
    assert float(out["mA"]) == pytest.approx(0.666667, abs=1e-6)
    assert float(out["acc"]) == pytest.approx(0.375, abs=1e-6)
    assert float(out["prec"]) == pytest.approx(0.5, abs=1e-6)
    assert float(out["rec"]) == pytest.approx(0.375, abs=1e-6)
    assert float(out["f1"]) == pytest.approx(0.428571, abs=1e-6)


@pytest.mark.parametrize("ignore_value", [None, 2])
def test_random_batches_accumulate_to_one_shot(ignore_value: int | None) -> None:
    rng = np.random.default_rng(0)
    num_attr = 7
    high = 2 if ignore_value is None else 3  # include the ignore label when it is active
    metric = PARMetrics(num_attributes=num_attr, ignore_value=ignore_value)
    all_probs, all_target = [], []
    for batch_size in (5, 1, 13, 8):
        probs = rng.random((batch_size, num_attr)).astype(np.float32)
        target = rng.integers(0, high, size=(batch_size, num_attr))
        metric.update(torch.from_numpy(probs), torch.from_numpy(target))
        all_probs.append(probs)
        all_target.append(target)
    probs, target = np.concatenate(all_probs), np.concatenate(all_target)
    expected = ref_metrics(probs, target, ignore=ignore_value)
    assert_matches(metric.compute(), expected)
    assert int(metric.n) == len(target)

    mask = None if ignore_value is None else torch.from_numpy(target != ignore_value)
    assert_matches(par_metrics(torch.from_numpy(probs), torch.from_numpy(target), mask=mask), expected)


def test_random_with_threshold() -> None:
    rng = np.random.default_rng(1)
    probs, target = rng.random((30, 5)), rng.integers(0, 2, size=(30, 5))
    metric = PARMetrics(5, threshold=0.3)
    metric.update(torch.from_numpy(probs), torch.from_numpy(target))
    assert_matches(metric.compute(), ref_metrics(probs, target, threshold=0.3))


def test_threshold_is_strict() -> None:
    out = par_metrics(torch.tensor([[0.5, 0.5000001]]), torch.tensor([[1, 1]]))
    assert float(out["rec"]) == pytest.approx(0.5)
    assert out["mA_per_attribute"].tolist() == pytest.approx([0.0, 0.5])


def test_empty_sets_use_epsilon_not_nan() -> None:
    # sample 0: no positives and no predictions; sample 1: positives but no predictions.
    out = par_metrics(torch.tensor([[0.1, 0.2], [0.3, 0.4]]), torch.tensor([[0, 0], [1, 1]]))
    for key in KEYS:
        assert torch.isfinite(out[key]), key
    assert float(out["acc"]) == 0.0 and float(out["prec"]) == 0.0 and float(out["rec"]) == 0.0
    assert float(out["f1"]) == 0.0

    # sample 0: no positives, one prediction -> 0 everywhere; sample 1: perfect.
    # Every sample stays in N (Rethinking/ALM), so the averages are halved.
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1]])
    target = torch.tensor([[0, 0], [1, 0]])
    out = par_metrics(probs, target)
    assert float(out["acc"]) == pytest.approx(0.5)
    assert float(out["prec"]) == pytest.approx(0.5)
    assert float(out["rec"]) == pytest.approx(0.5)
    assert_matches(out, ref_metrics(probs.numpy(), target.numpy()))


def test_attribute_without_positives() -> None:
    # attribute 1 has no positives in the whole set: TPR half is 0 (ε), so mA_1 = TNR / 2.
    probs = torch.tensor([[0.9, 0.1], [0.1, 0.1], [0.8, 0.7]])
    target = torch.tensor([[1, 0], [0, 0], [1, 0]])
    out = par_metrics(probs, target)
    assert out["mA_per_attribute"].tolist() == pytest.approx([1.0, (2 / 3) / 2])
    assert_matches(out, ref_metrics(probs.numpy(), target.numpy()))


def test_ignore_value_is_masked() -> None:
    probs = torch.tensor([[0.9, 0.9], [0.1, 0.9]])
    target = torch.tensor([[2, 1], [0, 2]])
    masked = PARMetrics(2)  # ignore_value=2 by default
    masked.update(probs, target)
    out = masked.compute()
    # attribute 0 sees only sample 1 (TN), attribute 1 only sample 0 (TP): perfect on what is labelled.
    assert out["mA_per_attribute"].tolist() == pytest.approx([0.5, 0.5])  # one class missing each -> ε half
    tp, fp, tn, fn = masked.tp.tolist(), masked.fp.tolist(), masked.tn.tolist(), masked.fn.tolist()
    assert (tp, fp, tn, fn) == ([0, 1], [0, 0], [1, 0], [0, 0])
    assert float(out["prec"]) == pytest.approx(0.5)  # sample 0: H = {1}, G = {1}; sample 1: both empty
    assert_matches(out, ref_metrics(probs.numpy(), target.numpy(), ignore=2))

    unmasked = PARMetrics(2, ignore_value=None)  # 2 then counts as a negative
    unmasked.update(probs, target)
    assert unmasked.fp.tolist() == [1, 1]
    assert float(unmasked.compute()["prec"]) == pytest.approx(0.5 * 0.5 + 0.5 * 0.0)


def test_f1_is_harmonic_mean_of_averaged_prec_and_rec() -> None:
    # sample 0: P=1/2, R=1 ; sample 1: P=1, R=1/2 -> mean per-sample F1 = 2/3, but avg P = avg R = 3/4.
    probs = torch.tensor([[0.9, 0.9], [0.9, 0.1]])
    target = torch.tensor([[1, 0], [1, 1]])
    out = par_metrics(probs, target)
    assert float(out["prec"]) == pytest.approx(0.75) and float(out["rec"]) == pytest.approx(0.75)
    assert float(out["f1"]) == pytest.approx(0.75)
    assert float(out["f1"]) != pytest.approx(2 / 3)


def test_reset() -> None:
    metric = PARMetrics(3)
    metric.update(torch.rand(4, 3), torch.randint(0, 2, (4, 3)))
    metric.reset()
    assert int(metric.n) == 0 and int(metric.tp.sum()) == 0 and float(metric.acc_sum) == 0.0
    metric.update(_probs_from_preds(YHAT_EX), torch.tensor(Y_EX))
    assert float(metric.compute()["acc"]) == pytest.approx(0.375)


def test_state_dtypes_and_reductions() -> None:
    metric = PARMetrics(4)
    assert metric.tp.dtype == torch.long and metric.tp.shape == (4,)
    assert metric.acc_sum.dtype == torch.float64 and metric.n.dtype == torch.long
    assert set(metric._reductions) == {"tp", "fp", "tn", "fn", "acc_sum", "prec_sum", "rec_sum", "n"}
    assert metric.full_state_update is False and metric.higher_is_better is True
    assert metric.is_differentiable is False


def _split_data(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(40, 6, generator=gen), torch.randint(0, 3, (40, 6), generator=gen)


def test_ddp_style_merge_state_equals_single_process() -> None:
    probs, target = _split_data()
    whole = PARMetrics(6)
    whole.update(probs, target)

    rank0, rank1 = PARMetrics(6), PARMetrics(6)
    rank0.update(probs[:17], target[:17])
    rank1.update(probs[17:], target[17:])
    rank0.merge_state(rank1)
    merged = rank0.compute()
    expected = whole.compute()
    for key in (*KEYS, "mA_per_attribute"):
        torch.testing.assert_close(merged[key], expected[key], atol=1e-7, rtol=0)


def test_ddp_style_manual_state_sum_equals_single_process() -> None:
    probs, target = _split_data(4)
    whole = PARMetrics(6)
    whole.update(probs, target)

    halves = [PARMetrics(6), PARMetrics(6)]
    halves[0].update(probs[:20], target[:20])
    halves[1].update(probs[20:], target[20:])
    summed = {name: getattr(halves[0], name) + getattr(halves[1], name) for name in halves[0]._defaults}
    out = par_metrics_compute(**summed)
    for key in (*KEYS, "mA_per_attribute"):
        torch.testing.assert_close(out[key], whole.compute()[key], atol=1e-7, rtol=0)
    assert_matches(out, ref_metrics(probs.numpy(), target.numpy(), ignore=2))


def test_forward_returns_batch_value_and_accumulates() -> None:
    probs, target = _split_data(5)
    metric = PARMetrics(6)
    batch_value = metric(probs[:10], target[:10])
    assert_matches(batch_value, ref_metrics(probs[:10].numpy(), target[:10].numpy(), ignore=2))
    metric(probs[10:], target[10:])
    assert_matches(metric.compute(), ref_metrics(probs.numpy(), target.numpy(), ignore=2))


def test_shape_validation_messages() -> None:
    metric = PARMetrics(26)
    with pytest.raises(ValueError, match=r"expected probs of shape \[B, 26\], got \[4, 25\]"):
        metric.update(torch.rand(4, 25), torch.zeros(4, 25))
    with pytest.raises(ValueError, match=r"expected target of shape \[B, 26\], got \[4\]"):
        metric.update(torch.rand(4, 26), torch.zeros(4))
    with pytest.raises(ValueError, match="same batch size"):
        metric.update(torch.rand(4, 26), torch.zeros(3, 26))
    with pytest.raises(ValueError, match="same shape"):
        par_metrics(torch.rand(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="num_attributes"):
        PARMetrics(0)


def test_package_name_par_metrics_is_the_function() -> None:
    import par_lightning.metrics as pkg
    from par_lightning.metrics import functional

    assert pkg.par_metrics is functional.par_metrics
