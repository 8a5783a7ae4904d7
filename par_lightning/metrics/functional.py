"""Pure-tensor Pedestrian Attribute Recognition metrics (label-based mA, instance-based Acc/Prec/Rec/F1).

The maths lives here once; :class:`par_lightning.metrics.PARMetrics` only accumulates the sufficient
statistics returned by :func:`par_stat_scores` and :func:`par_instance_sums` and calls
:func:`par_metrics_compute`. Conventions follow Rethinking_of_PAR / ALM (see ``datasets.md`` §7):

* prediction ``ŷ_ij = 1[s_ij > τ]`` (strict ``>``);
* ``ε = 1e-20`` in every ratio, so empty denominators give 0 instead of NaN;
* every sample stays in the instance-based denominator ``N`` (a sample with no ground-truth
  positives contributes 0 recall, not "skipped" as in DeepMAR);
* ``F1`` is the harmonic mean of the *averaged* precision and recall.

Entries where ``mask`` is False (e.g. the RAP "uncertain" label 2) are excluded everywhere: they count
in neither ``P_j`` nor ``Nn_j`` and belong to neither ``G_i`` nor ``H_i``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "EPS",
    "par_instance_sums",
    "par_metrics",
    "par_metrics_compute",
    "par_stat_scores",
]

#: ε used by Rethinking_of_PAR in every metric ratio.
EPS = 1e-20


def _check_same_shape(preds: Tensor, target: Tensor, mask: Tensor | None) -> None:
    if preds.ndim != 2:
        raise ValueError(f"expected 2-D predictions of shape [B, L], got shape {list(preds.shape)}")
    if preds.shape != target.shape:
        raise ValueError(
            f"predictions and targets must have the same shape [B, L], got {list(preds.shape)} "
            f"and {list(target.shape)}"
        )
    if mask is not None and mask.shape != preds.shape:
        raise ValueError(
            f"mask must have the shape of the targets {list(preds.shape)}, got {list(mask.shape)}"
        )


def _as_sets(preds: Tensor, target: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """Return boolean ``(H, G, valid)``: predicted positives, true positives (``target == 1``), valid entries.

    Targets other than 1 count as negative (Rethinking's 2 → 0 convention) unless masked out.
    """
    _check_same_shape(preds, target, mask)
    valid = torch.ones_like(target, dtype=torch.bool) if mask is None else mask.to(torch.bool)
    h = preds.to(torch.bool) & valid
    g = (target == 1) & valid
    return h, g, valid


def par_stat_scores(
    preds: Tensor, target: Tensor, mask: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""Per-attribute confusion counts, the sufficient statistics of the label-based mA.

    .. math::
        TP_j = \sum_i y_{ij}\hat y_{ij} m_{ij}, \quad FP_j = \sum_i (1-y_{ij})\hat y_{ij} m_{ij}, \quad
        TN_j = \sum_i (1-y_{ij})(1-\hat y_{ij}) m_{ij}, \quad FN_j = \sum_i y_{ij}(1-\hat y_{ij}) m_{ij}

    Args:
        preds: ``[B, L]`` binary predictions (bool or 0/1).
        target: ``[B, L]`` ground truth; entries equal to 1 are positive, everything else negative.
        mask: optional ``[B, L]`` bool; False entries are ignored (counted nowhere).

    Returns:
        ``(tp, fp, tn, fn)``, each int64 of shape ``[L]``.
    """
    h, g, valid = _as_sets(preds, target, mask)
    neg = valid & ~g
    tp = (g & h).sum(dim=0, dtype=torch.int64)
    fn = (g & ~h).sum(dim=0, dtype=torch.int64)
    fp = (neg & h).sum(dim=0, dtype=torch.int64)
    tn = (neg & ~h).sum(dim=0, dtype=torch.int64)
    return tp, fp, tn, fn


def par_instance_sums(
    preds: Tensor, target: Tensor, mask: Tensor | None = None, eps: float = EPS
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""Per-batch sums of the instance-based ratios, so that batches can be accumulated by addition.

    With :math:`G_i = \{j : y_{ij} = 1\}` and :math:`H_i = \{j : \hat y_{ij} = 1\}` (masked entries in neither):

    .. math::
        S_{acc} = \sum_i \frac{|G_i \cap H_i|}{|G_i \cup H_i| + \epsilon}, \quad
        S_{prec} = \sum_i \frac{|G_i \cap H_i|}{|H_i| + \epsilon}, \quad
        S_{rec} = \sum_i \frac{|G_i \cap H_i|}{|G_i| + \epsilon}

    Every sample counts in ``N`` (Rethinking/ALM), so empty sets contribute 0 to the sums.

    Returns:
        ``(acc_sum, prec_sum, rec_sum, n)``: float64 scalars and an int64 scalar sample count.
    """
    h, g, _ = _as_sets(preds, target, mask)
    inter = (g & h).sum(dim=1, dtype=torch.float64)
    union = (g | h).sum(dim=1, dtype=torch.float64)
    n_pred = h.sum(dim=1, dtype=torch.float64)
    n_true = g.sum(dim=1, dtype=torch.float64)
    acc_sum = (inter / (union + eps)).sum()
    prec_sum = (inter / (n_pred + eps)).sum()
    rec_sum = (inter / (n_true + eps)).sum()
    n = torch.tensor(preds.shape[0], dtype=torch.int64, device=preds.device)
    return acc_sum, prec_sum, rec_sum, n


def par_metrics_compute(
    tp: Tensor,
    fp: Tensor,
    tn: Tensor,
    fn: Tensor,
    acc_sum: Tensor,
    prec_sum: Tensor,
    rec_sum: Tensor,
    n: Tensor,
    eps: float = EPS,
) -> dict[str, Tensor]:
    r"""Final PAR metrics from accumulated statistics.

    .. math::
        mA_j = \frac{1}{2}\left(\frac{TP_j}{P_j + \epsilon} + \frac{TN_j}{Nn_j + \epsilon}\right), \quad
        mA = \frac{1}{L}\sum_j mA_j, \quad
        Acc = \frac{S_{acc}}{N}, \; Prec = \frac{S_{prec}}{N}, \; Rec = \frac{S_{rec}}{N}, \quad
        F1 = \frac{2\,Prec\,Rec}{Prec + Rec + \epsilon}

    with ``P_j = TP_j + FN_j`` and ``Nn_j = TN_j + FP_j``. An attribute without positives (or negatives)
    gets 0 for that half (ε behaviour), which pulls mA down on tiny evaluation sets. With ``n == 0``
    (nothing accumulated) the instance metrics are NaN.

    Returns:
        Dict with scalar ``mA``, ``acc``, ``prec``, ``rec``, ``f1`` and ``mA_per_attribute`` of shape
        ``[L]``, all in the default floating dtype (computed in float64).
    """
    out_dtype = torch.get_default_dtype()
    tp, fp, tn, fn = (x.to(torch.float64) for x in (tp, fp, tn, fn))
    ma_per = (tp / (tp + fn + eps) + tn / (tn + fp + eps)) / 2
    n_f = n.to(torch.float64)
    acc = acc_sum.to(torch.float64) / n_f
    prec = prec_sum.to(torch.float64) / n_f
    rec = rec_sum.to(torch.float64) / n_f
    f1 = 2 * prec * rec / (prec + rec + eps)
    return {
        "mA": ma_per.mean().to(out_dtype),
        "acc": acc.to(out_dtype),
        "prec": prec.to(out_dtype),
        "rec": rec.to(out_dtype),
        "f1": f1.to(out_dtype),
        "mA_per_attribute": ma_per.to(out_dtype),
    }


def par_metrics(
    probs: Tensor, target: Tensor, threshold: float = 0.5, mask: Tensor | None = None
) -> dict[str, Tensor]:
    """One-shot PAR metrics on a full evaluation set (prediction ``probs > threshold``, strict).

    Args:
        probs: ``[N, L]`` sigmoid probabilities (not logits: pass ``logits.sigmoid()``).
        target: ``[N, L]`` ground truth, 1 = positive, anything else negative unless masked.
        threshold: decision threshold τ.
        mask: optional ``[N, L]`` bool, False = ignore the entry.

    Returns:
        See :func:`par_metrics_compute`.
    """
    preds = probs > threshold
    return par_metrics_compute(
        *par_stat_scores(preds, target, mask),
        *par_instance_sums(preds, target, mask),
    )
