"""A small model registry: names in YAML map to builder functions.

Modelled on torchvision's ``_api.py``: builders register under a name, ``create_model`` looks the
name up and fails with the list of valid names, so a typo in a config is a one-line fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

_BuilderT = TypeVar("_BuilderT", bound=Callable[..., nn.Module])
_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[_BuilderT], _BuilderT]:
    """Register ``builder(num_attributes=..., **kwargs) -> nn.Module`` under ``name``."""

    def wrap(builder: _BuilderT) -> _BuilderT:
        if name in _MODELS:
            raise ValueError(f"a model named {name!r} is already registered")
        _MODELS[name] = builder
        return builder

    return wrap


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(_MODELS)


def create_model(name: str, num_attributes: int, **kwargs: object) -> nn.Module:
    """Build the registered model ``name`` with ``num_attributes`` outputs.

    Raises:
        ValueError: ``name`` is not registered; the message lists the valid names.
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    return _MODELS[name](num_attributes=num_attributes, **kwargs)
