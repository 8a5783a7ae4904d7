"""Standard PAR preprocessing (datasets spec §9).

Train: resize to (H, W) → pad → random crop back to (H, W) → random horizontal flip → tensor → ImageNet
normalisation (Rethinking-of-PAR recipe). Eval: resize → tensor → normalise. Flips never change PAR
labels (no evaluated attribute is left/right specific), so they are safe as augmentation.
"""

from __future__ import annotations

from collections.abc import Callable

from torchvision import transforms as T

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "build_transforms"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def build_transforms(height: int, width: int, train: bool, pad: int = 10, hflip: bool = True) -> Callable:
    """Build the PIL-image → normalised ``FloatTensor[3, height, width]`` pipeline.

    Args:
        height: output height H.
        width: output width W.
        train: add the augmentations (pad + random crop, horizontal flip).
        pad: pixels of zero padding on every side before the random crop; 0 disables pad + crop.
        hflip: random horizontal flip with p = 0.5 (train only).
    """
    if height < 1 or width < 1 or pad < 0:
        raise ValueError(
            f"build_transforms: need height, width >= 1 and pad >= 0, got {height}, {width}, {pad}"
        )
    steps: list[Callable] = [T.Resize((height, width))]
    if train and pad > 0:
        steps += [T.Pad(pad), T.RandomCrop((height, width))]
    if train and hflip:
        steps.append(T.RandomHorizontalFlip(p=0.5))
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return T.Compose(steps)
