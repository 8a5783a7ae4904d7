"""Which layers of a model to factorize, and why the others are left dense (spec §4.3).

Selection is structural only (types, shapes, names); it never looks at weights, so it can run on a
fresh model before training and the reasons can be logged once.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import NamedTuple

import torch
from torch import nn

from .curves import Method
from .ranks import default_method, max_rank

_PLAIN_FORWARD = {nn.Conv2d: nn.Conv2d.forward, nn.Linear: nn.Linear.forward}


def unsupported_reason(module: nn.Module) -> str | None:
    """Why ``module`` cannot be replaced by a factorized ``nn.Sequential`` at all, or None if it can.

    Subclasses that override ``forward`` (weight standardisation, dynamic 'same' padding, ...) are
    refused: the factorized replacement would silently drop what their forward adds.
    """
    if getattr(module, "transposed", False):
        return "transposed conv"
    base = next((t for t in _PLAIN_FORWARD if isinstance(module, t)), None)
    if base is None:
        return f"{type(module).__name__} is not nn.Conv2d or nn.Linear"
    overridden = type(module).forward is not _PLAIN_FORWARD[base] or (
        isinstance(module, nn.Conv2d) and type(module)._conv_forward is not nn.Conv2d._conv_forward
    )
    if overridden:
        return f"{type(module).__name__} overrides forward"
    if isinstance(module, nn.Conv2d) and module.groups != 1:
        kind = "depthwise" if module.groups == module.in_channels else "grouped"
        return f"{kind} conv (groups={module.groups}): nothing to factor across channels"
    return None


class TargetSelection(NamedTuple):
    """Layers to factorize with their method, and every other conv/linear layer with its skip reason."""

    targets: dict[str, Method]
    skipped: dict[str, str]


def select_layers(
    model: nn.Module,
    include: Sequence[str] = ("*",),
    exclude: Sequence[str] = (),
    types: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear),
    min_params: int = 4096,
    skip_stem: bool = True,
    cp_method: Method = "cp3",
) -> TargetSelection:
    """Pick the layers to factorize and their method.

    Every conv or linear module is listed once (a shared module under its first name) in exactly one of
    the two dicts. Names are matched with shell globs (``fnmatch``) against qualified module names; a
    shared module is excluded if any of its names matches ``exclude``. Grouped and depthwise convs are
    always skipped: no factorization exists for them here.

    Args:
        model: the model to scan (not modified).
        include: a layer is considered only if one of its names matches one of these patterns.
        exclude: a layer matching any of these patterns is skipped.
        types: module types to factorize (instances of other conv/linear types are reported as skipped).
        min_params: layers with fewer weights are skipped (tiny gain, spec §4.3).
        skip_stem: skip convs with at most 3 input channels (the image stem: tiny gain, large damage).
        cp_method: method for kxk convs; kernels with a size-1 side (1x7) always use 'cp3', because
            CP4 would get a size-1 spatial factor.

    Returns:
        ``TargetSelection(targets={name: method}, skipped={name: reason})``, both in module order.
    """
    if cp_method not in ("cp3", "cp4"):
        raise ValueError(f"select_layers: cp_method must be 'cp3' or 'cp4', got {cp_method!r}")
    if isinstance(include, str) or isinstance(exclude, str):
        raise TypeError("select_layers: include/exclude must be sequences of patterns, e.g. ('backbone.*',)")
    aliases: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        aliases.setdefault(id(module), []).append(name)

    kinds = (nn.Linear, nn.modules.conv._ConvNd, *types)  # conv/linear not in types are reported as skipped
    targets: dict[str, Method] = {}
    skipped: dict[str, str] = {}
    for name, module in model.named_modules():
        if not any(isinstance(module, t) for t in kinds):
            continue
        names = aliases[id(module)]
        reason = _skip_reason(module, names, include, exclude, types, min_params, skip_stem)
        if reason is not None:
            skipped[name] = reason
            continue
        method = default_method(module)
        if method is None or not isinstance(module, (nn.Conv2d, nn.Linear)):
            skipped[name] = "no factorization method for this layer"
            continue
        if isinstance(module, nn.Conv2d) and method != "svd" and cp_method == "cp4":
            kh, kw = module.kernel_size
            method = "cp4" if min(kh, kw) > 1 else "cp3"
        if max_rank(module, method, 1.0) < 2:
            skipped[name] = f"parameter-neutral {method} rank < 2"
            continue
        targets[name] = method
    return TargetSelection(targets, skipped)


def _skip_reason(
    module: nn.Module,
    names: list[str],
    include: Sequence[str],
    exclude: Sequence[str],
    types: tuple[type[nn.Module], ...],
    min_params: int,
    skip_stem: bool,
) -> str | None:
    """The first skip rule that applies, or None (rule order is the order of this function)."""
    if not any(fnmatchcase(n, p) for n in names for p in include):
        return f"not matched by include {list(include)}"
    hit = next((p for n in names for p in exclude if fnmatchcase(n, p)), None)
    if hit is not None:
        return f"excluded by pattern {hit!r}"
    reason = unsupported_reason(module)
    if reason is not None:
        return reason
    if not isinstance(module, types):
        return f"type {type(module).__name__} not in types"
    if skip_stem and isinstance(module, nn.Conv2d) and module.in_channels <= 3:
        return f"stem conv ({module.in_channels} input channels)"
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    n_weights = weight.numel()
    if n_weights < min_params:
        return f"tiny layer ({n_weights} weights < min_params={min_params})"
    return None
