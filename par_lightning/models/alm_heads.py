"""Attribute localization modules (ALM, Tang et al. ICCV 2019): one per attribute per pyramid level.

Each module re-weights the channels (SE attention, residual), regresses an axis-aligned box from the
attended map, resamples the box and classifies its pooled features into one logit.

Two implementations with identical parameters and maths:

* :class:`LoopALMHead`: the reference, a Python loop over N independent modules, as in the paper's
  code; kept as the ground truth for tests and benchmarks.
* :class:`BatchedALMHead`: all N modules at once: the first SE conv is one 1x1 conv to N*C/r
  channels, the second and the per-attribute linears are grouped 1x1 convs (groups=N), and the box
  sampling is one batched operation. ``sampling="separable"`` (default) pools the box analytically
  (:mod:`.box_sampling`), ``sampling="grid_sample"`` runs one batched ``affine_grid``/``grid_sample``
  over B*N maps (memory grows with N; kept to show both routes agree).

``align_corners`` defaults to True: the reference ran on PyTorch 0.4, whose ``affine_grid`` and
``grid_sample`` behaved like ``align_corners=True``; set False for the modern convention.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from par_lightning.models.box_sampling import box_theta, pooled_box_features, sample_box

Sampling = Literal["separable", "grid_sample"]


def se_hidden(channels: int, reduction: int) -> int:
    """Hidden width of the SE bottleneck (``C // reduction``, at least 1)."""
    return max(channels // reduction, 1)


class AttributeLocalization(nn.Module):
    """One attribute's module at one level: SE attention -> box -> resample -> pool -> logit."""

    def __init__(self, channels: int, reduction: int = 16, align_corners: bool = True) -> None:
        super().__init__()
        hidden = se_hidden(channels, reduction)
        self.se_reduce = nn.Conv2d(channels, hidden, 1)
        self.se_expand = nn.Conv2d(hidden, channels, 1)
        self.stn = nn.Linear(channels, 4)
        self.fc = nn.Linear(channels, 1)
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, C, H, W)`` -> logit ``(B, 1)`` and box ``(B, 4)``."""
        pooled = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        attn = torch.sigmoid(self.se_expand(torch.relu(self.se_reduce(pooled))))  # (B, C, 1, 1)
        attended = x * attn + x
        box = box_theta(self.stn(attended.mean((2, 3))))  # (B, 4)
        region = sample_box(attended, box, self.align_corners)  # (B, C, H, W)
        return self.fc(region.mean((2, 3))), box


class LoopALMHead(nn.Module):
    """N :class:`AttributeLocalization` modules run one after the other (the reference)."""

    def __init__(
        self, channels: int, num_attributes: int, reduction: int = 16, align_corners: bool = True
    ) -> None:
        super().__init__()
        self.channels, self.num_attributes, self.reduction = channels, num_attributes, reduction
        self.align_corners = align_corners
        self.attributes = nn.ModuleList(
            AttributeLocalization(channels, reduction, align_corners) for _ in range(num_attributes)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, C, H, W)`` -> logits ``(B, N)`` and boxes ``(B, N, 4)``."""
        logits, boxes = zip(*(module(x) for module in self.attributes), strict=True)
        return torch.cat(logits, dim=1), torch.stack(boxes, dim=1)


class BatchedALMHead(nn.Module):
    """The N attribute modules of one level computed together (same parameters as the loop)."""

    def __init__(
        self,
        channels: int,
        num_attributes: int,
        reduction: int = 16,
        align_corners: bool = True,
        sampling: Sampling = "separable",
    ) -> None:
        super().__init__()
        if sampling not in ("separable", "grid_sample"):
            raise ValueError(f"sampling must be 'separable' or 'grid_sample', got {sampling!r}")
        n, c, hidden = num_attributes, channels, se_hidden(channels, reduction)
        self.channels, self.num_attributes, self.reduction = c, n, reduction
        self.align_corners, self.sampling = align_corners, sampling
        self.se_reduce = nn.Conv2d(c, n * hidden, 1)  # every attribute reads all C channels
        self.se_expand = nn.Conv2d(n * hidden, n * c, 1, groups=n)
        self.stn = nn.Conv1d(n * c, n * 4, 1, groups=n)
        self.fc = nn.Conv1d(n * c, n, 1, groups=n)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, C, H, W)`` -> logits ``(B, N)`` and boxes ``(B, N, 4)``."""
        b, c, h, w = x.shape
        n = self.num_attributes
        pooled = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        gain = 1.0 + torch.sigmoid(self.se_expand(torch.relu(self.se_reduce(pooled))))  # (B, N*C, 1, 1)
        gain = gain.view(b, n, c)  # X' = X * a + X = X * (1 + a), per attribute
        attended_mean = pooled.view(b, 1, c) * gain  # (B, N, C) = GAP(X'), linear in X
        box = box_theta(self.stn(attended_mean.reshape(b, n * c, 1)).view(b, n, 4))  # (B, N, 4)
        if self.sampling == "separable":
            # Channel scaling commutes with spatial resampling: sample X, then scale by (1 + a).
            region_mean = pooled_box_features(x, box, self.align_corners) * gain  # (B, N, C)
        else:
            attended = x.unsqueeze(1) * gain.view(b, n, c, 1, 1)  # (B, N, C, H, W)
            region = sample_box(attended.reshape(b * n, c, h, w), box.reshape(b * n, 4), self.align_corners)
            region_mean = region.mean((2, 3)).view(b, n, c)
        logits = self.fc(region_mean.reshape(b, n * c, 1)).view(b, n)
        return logits, box

    @classmethod
    def from_loop(cls, loop: LoopALMHead, sampling: Sampling = "separable") -> BatchedALMHead:
        """A batched head holding exactly the loop head's weights (for tests and conversions)."""
        head = cls(loop.channels, loop.num_attributes, loop.reduction, loop.align_corners, sampling)
        mods = list(loop.attributes)
        ref = next(loop.parameters())
        head.to(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            for dst, attr in (
                (head.se_reduce, "se_reduce"),
                (head.se_expand, "se_expand"),
                (head.stn, "stn"),
                (head.fc, "fc"),
            ):
                weights = [getattr(m, attr).weight for m in mods]  # Conv2d (o, i, 1, 1) or Linear (o, i)
                dst.weight.copy_(torch.cat(weights).reshape(dst.weight.shape))
                bias = dst.bias
                assert bias is not None
                bias.copy_(torch.cat([getattr(m, attr).bias for m in mods]))
        return head


def build_alm_head(
    channels: int,
    num_attributes: int,
    reduction: int = 16,
    align_corners: bool = True,
    heads: Literal["batched", "loop"] = "batched",
    sampling: Sampling = "separable",
) -> nn.Module:
    """The level head selected by ``heads``; raises with the valid choices otherwise."""
    if heads == "batched":
        return BatchedALMHead(channels, num_attributes, reduction, align_corners, sampling)
    if heads == "loop":
        return LoopALMHead(channels, num_attributes, reduction, align_corners)
    raise ValueError(f"heads must be 'batched' or 'loop', got {heads!r}")
