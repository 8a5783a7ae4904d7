"""timm backbones for PAR models: name validation and local weight files, never downloads."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import timm
import torch
from torch import nn


def _check_name(name: str) -> None:
    """Fail with close matches and the command that lists valid names."""
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=8, cutoff=0.6)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ValueError(
            f"unknown timm backbone {name!r}.{hint} List valid names with "
            f"`python -c \"import timm; print(timm.list_models('*{name[:4]}*'))\"`."
        )


def _weight_kwargs(pretrained: bool, pretrained_path: str | None) -> dict[str, Any]:
    """timm arguments for the weights: a local file (never a download) or timm's default source."""
    if pretrained_path is None:
        return {"pretrained": pretrained}
    path = Path(pretrained_path).expanduser()
    if not path.is_file():
        raise ValueError(f"pretrained_path {str(path)!r} does not exist or is not a file")
    return {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}


def create_backbone(
    name: str,
    pretrained: bool = False,
    pretrained_path: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Create a timm model without classifier (``num_classes=0``): it returns pooled features.

    Args:
        name: any ``timm.list_models()`` name.
        pretrained: let timm fetch its default weights (needs network; off by default).
        pretrained_path: a local ``.pth``/``.safetensors`` file with timm-style weights; timm drops the
            classifier keys. Takes precedence over ``pretrained``.
        kwargs: forwarded to ``timm.create_model`` (e.g. ``drop_rate``).

    Raises:
        ValueError: unknown backbone name (with close matches) or missing weight file.
    """
    _check_name(name)
    return timm.create_model(name, num_classes=0, **_weight_kwargs(pretrained, pretrained_path), **kwargs)


def create_feature_backbone(
    name: str,
    out_indices: Sequence[int] | None = None,
    pretrained: bool = False,
    pretrained_path: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Create a timm ``features_only`` model returning feature maps (multi-level heads such as ALM).

    Args:
        name: any timm model that supports ``features_only``.
        out_indices: which feature levels to return (``feature_info`` indices); ``None`` = the last three.
        pretrained, pretrained_path, kwargs: as in :func:`create_backbone`.
    """
    _check_name(name)
    weights = _weight_kwargs(pretrained, pretrained_path)
    if out_indices is None:
        with torch.device("meta"):  # shapes only: no memory, no init cost
            levels = len(cast(Any, timm.create_model(name, features_only=True, **kwargs)).feature_info)
        out_indices = tuple(range(levels))[-3:]
    return timm.create_model(name, features_only=True, out_indices=tuple(out_indices), **weights, **kwargs)
