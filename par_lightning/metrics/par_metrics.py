"""Accumulating, DDP-correct PAR metric (mA, Acc, Prec, Rec, F1) as a :class:`torchmetrics.Metric`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from par_lightning.metrics.functional import par_instance_sums, par_metrics_compute, par_stat_scores

__all__ = ["PARMetrics"]


class PARMetrics(Metric):
    r"""Standard Pedestrian Attribute Recognition metrics, accumulated over batches.

    Label-based (per attribute ``j``, then averaged):

    .. math::
        mA = \frac{1}{L}\sum_j \frac{1}{2}\left(\frac{TP_j}{P_j + \epsilon} + \frac{TN_j}{Nn_j + \epsilon}\right)

    Instance-based (per sample ``i``, ``G_i`` true and ``H_i`` predicted positive sets):

    .. math::
        Acc = \frac{1}{N}\sum_i \frac{|G_i \cap H_i|}{|G_i \cup H_i| + \epsilon}, \;
        Prec = \frac{1}{N}\sum_i \frac{|G_i \cap H_i|}{|H_i| + \epsilon}, \;
        Rec = \frac{1}{N}\sum_i \frac{|G_i \cap H_i|}{|G_i| + \epsilon}, \;
        F1 = \frac{2\,Prec\,Rec}{Prec + Rec + \epsilon}

    Prediction is ``probs > threshold`` and ε = 1e-20 (Rethinking_of_PAR/ALM conventions). Only sums are
    stored (``dist_reduce_fx="sum"``), so the result over several processes equals the single-process
    result on the union of their data.

    Args:
        num_attributes: number of evaluated attributes ``L``.
        threshold: decision threshold on the probabilities.
        ignore_value: target value treated as "unlabelled" and excluded from every count (RAP's 2,
            DeepMAR/official convention); ``None`` keeps every entry (map 2 → 0 beforehand for the
            Rethinking convention, otherwise non-1 targets count as negatives).
        kwargs: forwarded to :class:`torchmetrics.Metric`.

    ``compute()`` returns a dict with scalar ``mA``, ``acc``, ``prec``, ``rec``, ``f1`` and the vector
    ``mA_per_attribute`` (``[L]``; not loggable with ``self.log``).
    """

    full_state_update: bool = False
    higher_is_better: bool = True
    is_differentiable: bool = False
    plot_lower_bound: float = 0.0
    plot_upper_bound: float = 1.0

    tp: Tensor
    fp: Tensor
    tn: Tensor
    fn: Tensor
    acc_sum: Tensor
    prec_sum: Tensor
    rec_sum: Tensor
    n: Tensor

    def __init__(
        self, num_attributes: int, threshold: float = 0.5, ignore_value: int | None = 2, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(num_attributes, int) or num_attributes < 1:
            raise ValueError(f"num_attributes must be a positive int, got {num_attributes!r}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be a probability in [0, 1], got {threshold!r}")
        self.num_attributes = num_attributes
        self.threshold = float(threshold)
        self.ignore_value = ignore_value

        for name in ("tp", "fp", "tn", "fn"):
            self.add_state(name, default=torch.zeros(num_attributes, dtype=torch.long), dist_reduce_fx="sum")
        for name in ("acc_sum", "prec_sum", "rec_sum"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _check_shapes(self, probs: Tensor, target: Tensor) -> None:
        expected = f"[B, {self.num_attributes}]"
        for name, t in (("probs", probs), ("target", target)):
            if t.ndim != 2 or t.shape[1] != self.num_attributes:
                raise ValueError(f"expected {name} of shape {expected}, got {list(t.shape)}")
        if probs.shape[0] != target.shape[0]:
            raise ValueError(
                f"probs and target must have the same batch size, got {list(probs.shape)} and {list(target.shape)}"
            )

    def update(self, probs: Tensor, target: Tensor) -> None:
        """Accumulate one batch.

        Args:
            probs: ``[B, L]`` sigmoid probabilities (not logits).
            target: ``[B, L]`` labels, 0/1 and optionally ``ignore_value``.
        """
        self._check_shapes(probs, target)
        mask = None if self.ignore_value is None else target != self.ignore_value
        preds = probs > self.threshold
        tp, fp, tn, fn = par_stat_scores(preds, target, mask)
        acc_sum, prec_sum, rec_sum, n = par_instance_sums(preds, target, mask)
        self.tp += tp
        self.fp += fp
        self.tn += tn
        self.fn += fn
        self.acc_sum += acc_sum
        self.prec_sum += prec_sum
        self.rec_sum += rec_sum
        self.n += n

    def compute(self) -> dict[str, Tensor]:
        """Metrics over everything accumulated since the last ``reset()`` (see class docstring)."""
        return par_metrics_compute(
            self.tp, self.fp, self.tn, self.fn, self.acc_sum, self.prec_sum, self.rec_sum, self.n
        )
