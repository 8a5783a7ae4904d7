"""Drawing ALM's attribute boxes on images: pure tensor functions, no Lightning, no logger.

The localization is ALM's selling point; a grid of images with each attribute's box makes it
inspectable (does "Hat" look at the head?). :class:`callbacks.AttributeBoxes` logs these grids.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.utils import draw_bounding_boxes, make_grid

from data_modules.transforms import IMAGENET_MEAN, IMAGENET_STD

# Ten well-separated colours (Tableau 10), cycled over the attributes shown.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)


def denormalize(
    images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """Normalised float images ``(B, 3, H, W)`` -> ``uint8`` RGB in [0, 255]."""
    m = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return ((images * s + m).clamp(0, 1) * 255).round().to(torch.uint8)


def pick_attributes(
    probs: torch.Tensor, max_boxes: int, fixed: Sequence[int] | None = None
) -> list[list[int]]:
    """Which attributes to draw per image: ``fixed`` indices, else the ``max_boxes`` most probable present ones."""
    if fixed is not None:
        return [list(fixed) for _ in range(probs.shape[0])]
    chosen = []
    for row in probs:
        order = torch.argsort(row, descending=True)[:max_boxes]
        chosen.append([int(j) for j in order if row[j] >= 0.5] or [int(order[0])])
    return chosen


def draw_attribute_boxes(
    images: torch.Tensor,
    boxes: torch.Tensor,
    chosen: Sequence[Sequence[int]],
    names: Sequence[str],
    width: int = 1,
    nrow: int = 8,
) -> torch.Tensor:
    """Draw each image's chosen attribute boxes and tile the images.

    Args:
        images: ``uint8`` ``(B, 3, H, W)``.
        boxes: ``(B, N, 4)`` as ``(x1, y1, x2, y2)`` fractions of the image (``ALM.localize`` of one level).
        chosen: per image, the attribute indices to draw.
        names: attribute names, used as box labels.
        width: line width in pixels.
        nrow: images per grid row.

    Returns:
        ``uint8`` grid ``(3, H', W')``.
    """
    _, _, h, w = images.shape
    scale = torch.tensor([w - 1, h - 1, w - 1, h - 1], dtype=torch.float32)
    drawn = []
    for img, img_boxes, attrs in zip(images, boxes.float().cpu(), chosen, strict=True):
        pixel_boxes = img_boxes[list(attrs)] * scale  # (k, 4)
        colours = [PALETTE[j % len(PALETTE)] for j in attrs]
        labels = [names[j] for j in attrs]
        drawn.append(draw_bounding_boxes(img.cpu(), pixel_boxes, labels=labels, colors=colours, width=width))
    return make_grid(torch.stack(drawn), nrow=nrow, padding=2, pad_value=255)
