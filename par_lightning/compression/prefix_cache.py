"""Reuse the outputs of unchanged upstream modules across the many ``G_hat`` passes of a rank search.

Scoring one candidate rank needs K forward/backward passes with that layer swapped. When the layer
sits in ALM's attribute heads, the backbone and pyramid produce the same outputs in every one of
those passes: computing them once per batch and replaying them turns each pass into a head-only pass.

``stages`` lists top-level parts in execution order whose output depends only on the model input
and the earlier stages (e.g. ``("backbone", "pyramid")``). For a target layer inside stage i, stages
before i are replayed; for a target after all stages, all of them are.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from par_lightning.compression.calibration import LossFn, _isolated, _model_device, to_device

_SEQUENTIAL_FEATURE_NETS = ("FeatureListNet", "FeatureDictNet")  # timm wrappers that run children in order


def pipeline_stages(model: nn.Module, parts: Sequence[str] = ("backbone", "pyramid")) -> tuple[str, ...]:
    """Cacheable stages of a model made of ``parts`` run one after another (ALM: backbone, then pyramid).

    A timm ``features_only`` backbone (``FeatureListNet``/``FeatureDictNet``) feeds each child the output of
    the previous one, so its children are stages of their own: a target deep in the backbone then
    replays every block before its own instead of recomputing the whole stem (the stem convs at full
    resolution are the most expensive part of a forward pass). Parts the model lacks are left out.
    """
    stages: list[str] = []
    for part in parts:
        module = getattr(model, part, None)
        if module is None:
            continue
        if type(module).__name__ in _SEQUENTIAL_FEATURE_NETS:
            stages += [f"{part}.{child}" for child, _ in module.named_children()]
        else:
            stages.append(part)
    return tuple(stages)


def stages_before(target: str, stages: Sequence[str]) -> list[str]:
    """The stages upstream of ``target`` (a qualified module name)."""
    upstream = []
    for stage in stages:
        if target == stage or target.startswith(stage + "."):
            break
        upstream.append(stage)
    return upstream


def capture_outputs(
    model: nn.Module, loss_fn: LossFn, batches: Sequence[Any], names: Sequence[str], seed: int = 0
) -> dict[str, list[Any]]:
    """Outputs of the named modules for each batch, from one no-grad pass with calibration's RNG and modes."""
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise KeyError(
            f"stages {missing} are not modules of the model; top-level modules: {list(dict(model.named_children()))}"
        )
    outputs: dict[str, list[Any]] = {n: [] for n in names}
    hooks = [modules[n].register_forward_hook(lambda _m, _i, out, n=n: outputs[n].append(out)) for n in names]
    device = _model_device(model)
    try:
        with _isolated(model, seed), torch.no_grad():
            for batch in batches:
                loss_fn(model, to_device(batch, device))
    finally:
        for h in hooks:
            h.remove()
    for n, outs in outputs.items():
        if len(outs) != len(batches):
            raise ValueError(
                f"stage {n!r} ran {len(outs)} times for {len(batches)} batches; only stages called once per forward can be cached"
            )
    return outputs


def _copy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    if isinstance(value, dict):
        return type(value)((k, _copy(v)) for k, v in value.items())
    return value


@contextmanager
def replay_outputs(model: nn.Module, cached: dict[str, list[Any]]) -> Iterator[None]:
    """Within the block, each cached module returns its stored output for batch 0, 1, ..., K-1, 0, ... in turn."""
    modules = dict(model.named_modules())
    patched = []
    try:
        for name, outs in cached.items():
            module = modules[name]
            counter = itertools.count()

            def replay(
                *_args: Any, _outs: list[Any] = outs, _counter: Iterator[int] = counter, **_kwargs: Any
            ) -> Any:
                # a copy: a downstream in-place op (``x += ...``, ReLU(inplace)) must not alter the cache
                return _copy(_outs[next(_counter) % len(_outs)])

            module.forward = replay
            patched.append(module)
        yield
    finally:
        for module in patched:
            del module.forward
