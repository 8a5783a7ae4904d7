"""Positive-ratio weighted binary cross-entropy for multi-label PAR training (``datasets.md`` §8).

Rare attributes would otherwise be drowned by negatives; DeepMAR weights each element by the training
positive ratio ``p_j`` of its attribute: ``exp(1 - p_j)`` for positives, ``exp(p_j)`` for negatives.
Two reductions/forms are in use and both are provided:

* ``"deepmar"`` (Rethinking_of_PAR / DeepMAR, default): weighted BCE-with-logits, **summed over
  attributes and averaged over the batch**.
* ``"alm"`` (ALM / LW-ALM, needed to reproduce their numbers): BCE on sigmoid probabilities with
  ``ε = 1e-12`` inside the logs, where (a bracketing quirk of the reference code) **only the positive term
  is weighted**, averaged over all elements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ALM_EPS", "LOSS_VARIANTS", "WeightedBCELoss", "weighted_bce_with_logits"]

LossVariant = Literal["deepmar", "alm"]
#: Valid values of ``variant``.
LOSS_VARIANTS: tuple[str, ...] = get_args(LossVariant)
#: ε inside ``log`` in ALM's ``Weighted_BCELoss``.
ALM_EPS = 1e-12


def _check_variant(variant: str) -> None:
    if variant not in LOSS_VARIANTS:
        raise ValueError(
            f"unknown weighted-BCE variant {variant!r}; valid choices: {', '.join(LOSS_VARIANTS)}"
        )


def _check_inputs(logits: Tensor, targets: Tensor, pos_ratios: Tensor | None, mask: Tensor | None) -> None:
    if logits.ndim != 2:
        raise ValueError(f"expected logits of shape [B, L], got {list(logits.shape)}")
    if targets.shape != logits.shape:
        raise ValueError(
            f"expected targets of shape {list(logits.shape)} (like logits), got {list(targets.shape)}"
        )
    if mask is not None and mask.shape != logits.shape:
        raise ValueError(f"expected mask of shape {list(logits.shape)} (like logits), got {list(mask.shape)}")
    if pos_ratios is not None and pos_ratios.shape != (logits.shape[1],):
        raise ValueError(f"expected pos_ratios of shape [{logits.shape[1]}], got {list(pos_ratios.shape)}")


def weighted_bce_with_logits(
    logits: Tensor,
    targets: Tensor,
    pos_ratios: Tensor | None = None,
    variant: LossVariant = "deepmar",
    mask: Tensor | None = None,
) -> Tensor:
    r"""Positive-ratio weighted BCE on logits.

    ``deepmar`` (Rethinking/DeepMAR), with :math:`\ell_{ij}` the BCE-with-logits of element ``(i, j)``:

    .. math::
        w_{ij} = m_{ij}\begin{cases} e^{1-p_j} & y_{ij} = 1 \\ e^{p_j} & y_{ij} = 0 \end{cases}, \qquad
        L = \frac{1}{B}\sum_i\sum_j w_{ij}\,\ell_{ij}

    ``alm`` (ALM's ``Weighted_BCELoss``), with :math:`s = \sigma(z)`, :math:`\epsilon = 10^{-12}`:

    .. math::
        L = -\frac{1}{\sum_{ij} m_{ij}}\sum_{ij} m_{ij}\left[e^{1-p_j}\,y_{ij}\log(s_{ij} + \epsilon)
            + (1 - y_{ij})\log(1 - s_{ij} + \epsilon)\right]

    (``1 - s`` is evaluated as ``σ(-z)``, exact in floating point even for large ``z``.)

    Args:
        logits: ``[B, L]`` raw scores.
        targets: ``[B, L]`` labels in {0, 1} (soft values allowed; the weight is picked from
            ``targets > 0.5``). Other values (e.g. RAP's 2) must be masked out.
        pos_ratios: ``[L]`` training positive ratios ``p_j``; ``None`` → all weights 1 (plain BCE).
        variant: ``"deepmar"`` or ``"alm"``.
        mask: optional ``[B, L]`` bool, False = ignored entry (weight 0; excluded from ALM's mean).

    Returns:
        Scalar loss, in at least float32 precision.
    """
    _check_variant(variant)
    _check_inputs(logits, targets, pos_ratios, mask)
    dtype = torch.promote_types(logits.dtype, torch.float32)
    z = logits.to(dtype)
    valid = None if mask is None else mask.to(torch.bool)
    # Zero the ignored targets so that values like 2 never reach the log terms.
    y = targets.to(dtype) if valid is None else targets.to(dtype).masked_fill(~valid, 0.0)
    is_pos = y > 0.5
    p = None if pos_ratios is None else pos_ratios.to(device=z.device, dtype=dtype)

    if variant == "deepmar":
        loss = F.binary_cross_entropy_with_logits(z, y, reduction="none")
        if p is not None:
            loss = loss * torch.where(is_pos, torch.exp(1 - p), torch.exp(p))
        if valid is not None:
            loss = loss * valid
        return loss.sum() / max(z.shape[0], 1)

    # ALM: only the positive term carries the weight exp(1 - p_j).
    pos_term = y * torch.log(torch.sigmoid(z) + ALM_EPS)
    if p is not None:
        pos_term = pos_term * torch.exp(1 - p)
    term = pos_term + (1 - y) * torch.log(torch.sigmoid(-z) + ALM_EPS)
    if valid is None:
        return -term.mean()
    return -(term * valid).sum() / valid.sum().clamp_min(1)


class WeightedBCELoss(nn.Module):
    """Module wrapper of :func:`weighted_bce_with_logits` holding the positive ratios.

    The ratios are a non-persistent buffer: they follow ``.to(device)`` but are not written into
    checkpoints (they are data-derived and recomputed by the datamodule).

    Args:
        pos_ratios: training positive ratio of each attribute, each in [0, 1] (0 or 1 when an attribute never or always occurs in training; the weights stay finite); ``None`` → unweighted.
        variant: ``"deepmar"`` (default) or ``"alm"``.
    """

    pos_ratios: Tensor | None

    def __init__(self, pos_ratios: Sequence[float] | Tensor | None = None, variant: str = "deepmar") -> None:
        super().__init__()
        _check_variant(variant)
        self.variant = variant
        ratios = None
        if pos_ratios is not None:
            ratios = torch.as_tensor(pos_ratios, dtype=torch.float32).detach().clone()
            if ratios.ndim != 1 or ratios.numel() == 0:
                raise ValueError(
                    f"pos_ratios must be a non-empty 1-D sequence, got shape {list(ratios.shape)}"
                )
            for j, value in enumerate(ratios.tolist()):
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"pos_ratios[{j}] = {value!r} is outside [0, 1]")
        self.register_buffer("pos_ratios", ratios, persistent=False)

    def forward(self, logits: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
        """Scalar weighted BCE of ``logits`` ``[B, L]`` against ``targets`` ``[B, L]`` (see module docs)."""
        variant = cast(LossVariant, self.variant)
        return weighted_bce_with_logits(logits, targets, self.pos_ratios, variant, mask)

    def extra_repr(self) -> str:
        n = "None" if self.pos_ratios is None else str(self.pos_ratios.numel())
        return f"variant={self.variant!r}, num_attributes={n}"
