"""Axis-aligned box sampling for the attribute localization modules, as pure functions.

ALM's spatial transformer predicts ``theta = [[sx, 0, tx], [0, sy, ty]]``: a box with no rotation or
shear. ``affine_grid`` + ``grid_sample`` (bilinear, border padding) then resamples the whole map and
a global average pool follows. Because the box is axis-aligned, the sampling is separable, and the
average of the bilinear samples is a weighted sum of the input with an outer-product weight map:

    mean_ij sample(X, y_i, x_j) = sum_hw ry[h] rx[w] X[h, w],   ry = mean_i Ry[i, :], rx = mean_j Rx[j, :]

where ``Ry``/``Rx`` are 1-D linear-interpolation matrices. :func:`pooled_box_features` computes that
for every attribute at once without materialising N resampled maps (the cost is one einsum), and
equals ``grid_sample`` followed by the mean to float round-off (tested against it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def box_theta(raw: torch.Tensor) -> torch.Tensor:
    """Raw STN outputs ``(..., 4)`` -> box parameters ``(..., 4)`` = (sx, sy, tx, ty).

    Scales through a sigmoid (in (0, 1)), centre offsets through a tanh (in (-1, 1)), as in ALM.
    """
    return torch.cat([torch.sigmoid(raw[..., :2]), torch.tanh(raw[..., 2:])], dim=-1)


def affine_matrix(box: torch.Tensor) -> torch.Tensor:
    """Box parameters ``(M, 4)`` -> ``affine_grid`` matrices ``(M, 2, 3)``."""
    sx, sy, tx, ty = box.unbind(-1)
    zero = torch.zeros_like(sx)
    return torch.stack([torch.stack([sx, zero, tx], -1), torch.stack([zero, sy, ty], -1)], dim=-2)


def sample_box(x: torch.Tensor, box: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Resample ``x`` ``(M, C, H, W)`` inside ``box`` ``(M, 4)`` to the same size (ALM's STN step)."""
    grid = F.affine_grid(affine_matrix(box).to(x.dtype), list(x.shape), align_corners=align_corners)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=align_corners)


def _mean_interp_weights(
    scale: torch.Tensor, shift: torch.Tensor, size: int, align_corners: bool
) -> torch.Tensor:
    """Average over output positions of the 1-D bilinear weights: ``(...,)`` box params -> ``(..., size)``.

    Reproduces ``affine_grid``'s base coordinates and ``grid_sample``'s unnormalisation and border clamp.
    """
    idx = torch.arange(size, device=scale.device, dtype=scale.dtype)
    if align_corners:
        base = idx * (2.0 / (size - 1)) - 1.0 if size > 1 else torch.zeros_like(idx)
    else:
        base = (2.0 * idx + 1.0) / size - 1.0
    g = scale.unsqueeze(-1) * base + shift.unsqueeze(-1)  # (..., size) normalised coordinates
    pos = (g + 1.0) / 2.0 * (size - 1) if align_corners else ((g + 1.0) * size - 1.0) / 2.0
    pos = pos.clamp(0.0, size - 1.0)  # border padding
    lo = pos.detach().floor().clamp(max=max(size - 2, 0))
    frac = pos - lo  # in [0, 1]; carries the gradient wrt the box
    lo_idx = lo.long()
    hi_idx = (lo_idx + 1).clamp(max=size - 1)
    weights = torch.zeros(*pos.shape[:-1], size, device=pos.device, dtype=pos.dtype)
    weights = weights.scatter_add(-1, lo_idx, 1.0 - frac)
    weights = weights.scatter_add(-1, hi_idx, frac)
    return weights / size


def pooled_box_features(x: torch.Tensor, box: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Global average of the box-resampled map, for N boxes per image at once.

    Args:
        x: feature map ``(B, C, H, W)``.
        box: ``(B, N, 4)`` box parameters from :func:`box_theta`.
        align_corners: the ``grid_sample`` convention to reproduce.

    Returns:
        ``(B, N, C)``, equal to ``sample_box(x, box_n).mean((2, 3))`` for each box.
    """
    _, _, h, w = x.shape
    sx, sy, tx, ty = box.to(x.dtype).unbind(-1)  # (B, N) each
    ry = _mean_interp_weights(sy, ty, h, align_corners)  # (B, N, H)
    rx = _mean_interp_weights(sx, tx, w, align_corners)  # (B, N, W)
    cols = torch.einsum("bchw,bnw->bnch", x, rx)  # (B, N, C, H)
    return torch.einsum("bnch,bnh->bnc", cols, ry)


def box_corners(box: torch.Tensor) -> torch.Tensor:
    """Box parameters ``(..., 4)`` -> ``(x1, y1, x2, y2)`` as fractions of the image width/height in [0, 1].

    The sampled region spans ``t - s .. t + s`` in normalised [-1, 1] coordinates (border-clamped).
    """
    sx, sy, tx, ty = box.unbind(-1)
    corners = torch.stack([tx - sx, ty - sy, tx + sx, ty + sy], dim=-1)
    return ((corners + 1.0) / 2.0).clamp(0.0, 1.0)
