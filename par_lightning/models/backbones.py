"""timm backbones for PAR models: name validation and local weight files, never downloads."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import timm
from torch import nn


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
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=8, cutoff=0.6)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ValueError(
            f"unknown timm backbone {name!r}.{hint} List valid names with "
            f"`python -c \"import timm; print(timm.list_models('*{name[:4]}*'))\"`."
        )
    if pretrained_path is not None:
        path = Path(pretrained_path).expanduser()
        if not path.is_file():
            raise ValueError(f"pretrained_path {str(path)!r} does not exist or is not a file")
        return timm.create_model(
            name, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(path)}, **kwargs
        )
    return timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)
