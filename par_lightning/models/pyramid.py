"""ALM's feature pyramid: top-down path whose levels are concatenated, not added.

P5 = lat(C5); P4 = [up(P5), lat(C4)]; P3 = [up(P4), lat(C3)], so with 256-channel laterals the levels
have 768 / 512 / 256 channels (fine to coarse). No smoothing conv, as in the reference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ConcatPyramid(nn.Module):
    """Lateral 1x1 convs (with bias, no BN/ReLU) and bilinear top-down concatenation.

    Args:
        in_channels: channels of the backbone taps, fine to coarse (e.g. 320, 608, 1024).
        channels: lateral width (256 in ALM).
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 256) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        levels = len(in_channels)
        # Level i (fine to coarse) concatenates itself with every coarser lateral.
        self.out_channels = [channels * (levels - i) for i in range(levels)]

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Backbone maps fine to coarse -> pyramid maps fine to coarse (same spatial sizes)."""
        top = self.laterals[-1](feats[-1])
        outs = [top]
        for lateral, feat in zip(reversed(self.laterals[:-1]), reversed(feats[:-1]), strict=True):
            up = F.interpolate(top, size=feat.shape[-2:], mode="bilinear", align_corners=False)
            top = torch.cat([up, lateral(feat)], dim=1)
            outs.append(top)
        return outs[::-1]
