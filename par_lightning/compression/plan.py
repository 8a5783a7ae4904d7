"""A compression plan: which layer gets which factorization at which rank, as plain data.

The plan is the record of a structure change (STYLE §2): saved as JSON or inside a checkpoint, it lets
``apply_plan(fresh_model, plan, decompose=False)`` rebuild the compressed architecture so that the
compressed state dict loads anywhere, with or without the callback that chose the ranks.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import torch
from torch import nn

from par_lightning.atomic_io import atomic_write_text

from .cpd import cp_decompose
from .curves import Method
from .factors import CPFactors, SVDFactors
from .layers import build_cp, build_svd, svd_factors
from .targets import unsupported_reason

METHODS: tuple[str, ...] = get_args(Method)
FORMAT = "par_lightning.compression_plan"
VERSION = 1


class PlanError(ValueError):
    """A plan does not fit a model, or a plan file is malformed."""


@dataclass(frozen=True)
class LayerPlan:
    """One layer's factorization.

    ``scores`` maps scored ranks to what the rank search measured (kept for reports); ``info`` holds
    JSON-typed extras (dicts, lists, str, numbers, None) so that a JSON round trip gives an equal plan.
    ``weight_shape``, when recorded, is checked against the dense layer before it is replaced.
    """

    method: Method
    rank: int
    scores: dict[int, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    weight_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise PlanError(f"LayerPlan.method must be one of {list(METHODS)}, got {self.method!r}")
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise PlanError(f"LayerPlan.rank must be an int >= 1, got {self.rank!r}")
        scores = {}
        for k, v in dict(self.scores).items():
            if isinstance(k, bool) or not isinstance(k, int):
                raise PlanError(f"LayerPlan.scores keys must be int ranks, got {k!r}")
            scores[k] = float(v)
        if not all(isinstance(k, str) for k in self.info):
            raise PlanError(f"LayerPlan.info keys must be str, got {list(self.info)}")
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "info", dict(self.info))
        if self.weight_shape is not None:
            object.__setattr__(self, "weight_shape", tuple(int(d) for d in self.weight_shape))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (score keys become strings, as JSON requires)."""
        return {
            "method": self.method,
            "rank": self.rank,
            "scores": {str(k): v for k, v in self.scores.items()},
            "info": self.info,
            "weight_shape": None if self.weight_shape is None else list(self.weight_shape),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LayerPlan:
        _check_keys(d, required={"method", "rank"}, allowed={"scores", "info", "weight_shape"}, where="layer")
        try:
            scores = {int(k): v for k, v in d.get("scores", {}).items()}
        except (TypeError, ValueError) as err:
            raise PlanError(f"scores keys must be integer ranks, got {list(d.get('scores', {}))}") from err
        return cls(d["method"], d["rank"], scores, d.get("info", {}), d.get("weight_shape"))


@dataclass(frozen=True)
class CompressionPlan:
    """All factorized layers of a model by qualified module name, plus JSON-typed metadata."""

    layers: dict[str, LayerPlan] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, lp in self.layers.items():
            if not isinstance(name, str) or not name:
                raise PlanError(f"CompressionPlan.layers keys must be non-empty module names, got {name!r}")
            if not isinstance(lp, LayerPlan):
                raise PlanError(
                    f"CompressionPlan.layers[{name!r}] must be a LayerPlan, got {type(lp).__name__}"
                )
        object.__setattr__(self, "layers", dict(self.layers))
        object.__setattr__(self, "meta", dict(self.meta))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of str/int/float/list/None: safe for ``torch.load(weights_only=True)`` checkpoints."""
        layers = {name: lp.to_dict() for name, lp in self.layers.items()}
        return {"format": FORMAT, "version": VERSION, "layers": layers, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CompressionPlan:
        _check_keys(d, required={"format", "version", "layers"}, allowed={"meta"}, where="plan")
        if d["format"] != FORMAT or d["version"] != VERSION:
            raise PlanError(
                f"plan format/version must be {FORMAT!r}/{VERSION}, got {d['format']!r}/{d['version']!r}"
            )
        layers = {}
        for name, ld in d["layers"].items():
            try:
                layers[name] = LayerPlan.from_dict(ld)
            except (PlanError, TypeError, AttributeError) as err:
                raise PlanError(f"plan layers[{name!r}]: {err}") from err
        return cls(layers, d.get("meta", {}))

    def to_json(self, indent: int | None = 2) -> str:
        try:
            return json.dumps(self.to_dict(), indent=indent)
        except TypeError as err:
            raise PlanError(
                f"CompressionPlan.meta or a LayerPlan.info is not JSON-serialisable: {err}"
            ) from err

    @classmethod
    def from_json(cls, text: str) -> CompressionPlan:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write JSON atomically (temp file in the same folder, then ``os.replace``): no torn plan files."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CompressionPlan:
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except (PlanError, json.JSONDecodeError) as err:
            raise PlanError(f"{path}: {err}") from err


def _check_keys(d: Mapping[str, Any], required: set[str], allowed: set[str], where: str) -> None:
    if not isinstance(d, Mapping):
        raise PlanError(f"{where} must be a JSON object, got {type(d).__name__}")
    missing, unknown = required - set(d), set(d) - required - allowed
    if missing or unknown:
        raise PlanError(
            f"{where}: missing fields {sorted(missing)}, unknown fields {sorted(unknown)}; "
            f"expected {sorted(required)} and optionally {sorted(allowed)}"
        )


def check_layer(layer: nn.Module, lp: LayerPlan, name: str = "layer") -> None:
    """Raise a ``PlanError`` naming ``name`` if ``lp`` cannot be applied to ``layer``."""
    if isinstance(layer, nn.Sequential):
        raise PlanError(
            f"{name!r} is already factorized (an nn.Sequential); apply a plan to a dense model only"
        )
    reason = unsupported_reason(layer)
    if reason is not None:
        raise PlanError(f"{name!r} cannot be factorized: {reason}")
    weight = layer.weight
    assert isinstance(weight, torch.Tensor)
    if lp.weight_shape is not None and tuple(weight.shape) != lp.weight_shape:
        raise PlanError(
            f"{name!r} has weight shape {tuple(weight.shape)}, the plan expects {lp.weight_shape}"
        )
    kernel = tuple(weight.shape[2:]) if weight.dim() == 4 else (1, 1)
    if lp.method == "svd":
        if kernel != (1, 1):
            raise PlanError(
                f"{name!r}: method 'svd' needs a 1x1 conv or a Linear, got kernel {kernel}; use 'cp3'"
            )
        cout, cin = weight.shape[:2]
        if lp.rank > min(cout, cin):
            raise PlanError(f"{name!r}: svd rank {lp.rank} exceeds min(Cout, Cin) = {min(cout, cin)}")
    else:
        if not isinstance(layer, nn.Conv2d) or kernel == (1, 1):
            raise PlanError(
                f"{name!r}: method {lp.method!r} needs a kxk conv (k > 1), got {kernel}; use 'svd'"
            )
        if lp.method == "cp4" and min(kernel) == 1:
            raise PlanError(f"{name!r}: 'cp4' on kernel {kernel} gives a size-1 spatial factor; use 'cp3'")


@torch.no_grad()
def factorize_layer(
    layer: nn.Conv2d | nn.Linear,
    method: Method,
    rank: int,
    *,
    decompose: bool = True,
    cp_kwargs: Mapping[str, Any] | None = None,
) -> nn.Sequential:
    """The factorized replacement of one dense layer (factors from its weights, or zeros to load into)."""
    check_layer(layer, LayerPlan(method, rank))
    weight = layer.weight.detach()
    cout, cin = weight.shape[:2]
    dd: dict[str, Any] = {"dtype": weight.dtype, "device": weight.device}
    if method == "svd":
        w2 = weight.reshape(cout, cin)  # (Cout, Cin)
        if decompose:
            sf = svd_factors(w2, rank)
        else:
            sf = SVDFactors(torch.zeros(cout, rank, **dd), torch.zeros(rank, cin, **dd))
        new = build_svd(layer, sf)
    else:
        assert isinstance(layer, nn.Conv2d)
        kh, kw = weight.shape[2:]
        if decompose:
            cf, _ = cp_decompose(weight, rank, method, **dict(cp_kwargs or {}))
        else:
            sizes = (kh * kw,) if method == "cp3" else (kh, kw)
            spatial = tuple(torch.zeros(s, rank, **dd) for s in sizes)
            cf = CPFactors(torch.zeros(cout, rank, **dd), torch.zeros(cin, rank, **dd), spatial)
        new = build_cp(layer, cf)
    new.train(layer.training)
    if not layer.weight.requires_grad:  # a frozen layer stays frozen
        new.requires_grad_(False)
    return new


def apply_plan(
    model: nn.Module,
    plan: CompressionPlan,
    *,
    decompose: bool = True,
    cp_kwargs: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Replace every planned dense layer of ``model`` in place by its factorized ``nn.Sequential``.

    All layers are checked before any is replaced, so a plan that does not fit leaves the model intact.
    A module object reachable under several names is factorized once and the same replacement is put
    in every place (its plan entries, if several, must agree).

    Args:
        model: the dense model; modified in place and returned.
        plan: the layers to replace.
        decompose: factors from the current weights (True), or zero factors with the right shapes, to
            ``load_state_dict`` a compressed checkpoint afterwards (False).
        cp_kwargs: extra keyword arguments for ``cp_decompose`` (iterations, seed, device).
    """
    named = dict(model.named_modules(remove_duplicate=False))
    aliases: dict[int, list[str]] = {}
    for n, m in named.items():
        aliases.setdefault(id(m), []).append(n)

    chosen: dict[int, tuple[str, LayerPlan]] = {}
    for name, lp in plan.layers.items():
        if name not in named:
            close = difflib.get_close_matches(name, [n for n in named if n], n=5, cutoff=0.5)
            raise PlanError(
                f"plan layer {name!r} is not a module of {type(model).__name__}; close names: {close}"
            )
        module = named[name]
        check_layer(module, lp, name)
        first = chosen.setdefault(id(module), (name, lp))
        if (first[1].method, first[1].rank) != (lp.method, lp.rank):
            raise PlanError(
                f"{first[0]!r} and {name!r} are the same module but planned as "
                f"{first[1].method}/{first[1].rank} and {lp.method}/{lp.rank}"
            )

    for key, (name, lp) in chosen.items():
        new = factorize_layer(named[name], lp.method, lp.rank, decompose=decompose, cp_kwargs=cp_kwargs)
        for alias in aliases[key]:
            parent_name, _, child = alias.rpartition(".")
            setattr(model.get_submodule(parent_name), child, new)
    return model
