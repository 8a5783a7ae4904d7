"""Calibration gradients: ``G = dL/dW`` of the dense model and ``G_hat = dL/dW_hat`` with one layer swapped.

Scoring runs in the middle of training, so a pass must leave no trace: BN buffers, ``.grad``,
``requires_grad`` flags, train/eval modes and the global RNG are all as before. Every pass re-seeds a
forked RNG identically, so dropout masks match between the ``G`` pass and every ``G_hat`` pass and the
scores compare the same function on the same batches (spec §3.8).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from par_lightning.compression.alignment import alignment_score, cp_update_direction, svd_update_direction
from par_lightning.compression.factors import CPFactors, SVDFactors

LossFn = Callable[[nn.Module, Any], Tensor]
"""``(model, batch) -> scalar loss``; the training loss without logging (e.g. a ``compute_loss``)."""


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) tensor / tuple / list / dict batch to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    raise ValueError("the model has no parameters: nothing to score")


def _weight(model: nn.Module, name: str) -> nn.Parameter:
    """The ``weight`` parameter of the submodule ``name``, with an error that lists valid names."""
    modules = dict(model.named_modules())
    if name not in modules:
        layers = [n for n, m in modules.items() if isinstance(getattr(m, "weight", None), nn.Parameter)]
        raise KeyError(f"no module named {name!r} in the model; layers with a weight: {layers}")
    weight = getattr(modules[name], "weight", None)
    if not isinstance(weight, nn.Parameter):
        raise ValueError(f"module {name!r} ({type(modules[name]).__name__}) has no weight parameter to score")
    return weight


@contextmanager
def _isolated(model: nn.Module, seed: int) -> Iterator[None]:
    """Train mode, grad enabled, no autocast, forked and re-seeded RNG; every piece of state restored after."""
    modes = {m: m.training for m in model.modules()}
    params = list(model.parameters())
    grads = [p.grad for p in params]
    flags = [p.requires_grad for p in params]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    device = _model_device(model)
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with (
            torch.random.fork_rng(devices=cuda),
            torch.inference_mode(False),
            torch.enable_grad(),
            torch.autocast(device_type=device.type, enabled=False),
        ):
            torch.manual_seed(seed)
            for p in params:
                p.requires_grad_(False)
            model.train()
            yield
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        for p, g, f in zip(params, grads, flags, strict=True):
            p.grad = g
            p.requires_grad_(f)
        for m, training in modes.items():
            m.training = training


class _Loss(nn.Module):
    """Wraps ``loss_fn(model, batch)`` as a module so ``functional_call`` can substitute one weight."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Any) -> Tensor:
        return self.loss_fn(self.model, batch)


def _mean_gradients(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Sequence[Any],
    names: Sequence[str],
    inputs: Sequence[Tensor],
    overrides: dict[str, Tensor],
) -> dict[str, Tensor]:
    """Mean over ``batches`` of ``d loss / d inputs`` (one fwd/bwd per batch); ``overrides`` replace weights."""
    if len(batches) == 0:
        raise ValueError("no calibration batches: pass at least one batch")
    device = _model_device(model)
    wrapper = _Loss(model, loss_fn)
    params = {f"model.{k}": v for k, v in overrides.items()}
    total: list[Tensor] = [torch.zeros_like(x) for x in inputs]
    for batch in batches:
        loss = torch.func.functional_call(wrapper, params, (to_device(batch, device),), strict=False)
        if loss.dim() != 0:
            raise ValueError(f"loss_fn must return a scalar loss, got shape {tuple(loss.shape)}")
        grads = torch.autograd.grad(loss, list(inputs), allow_unused=True)
        for k, (name, g) in enumerate(zip(names, grads, strict=True)):
            if g is None:
                raise ValueError(
                    f"layer {name!r} got no gradient from the loss: is it used in the forward pass?"
                )
            total[k] += g.detach()
    return {name: t / len(batches) for name, t in zip(names, total, strict=True)}


def layer_gradients(
    model: nn.Module, loss_fn: LossFn, batches: Sequence[Any], names: Sequence[str], seed: int = 0
) -> dict[str, Tensor]:
    """``G = dL/dW`` of each named layer's weight, averaged over the batches, in one pass of K fwd/bwd.

    Only the scored weights require grad during the pass, so backward stops early; the model's state
    (BN buffers, ``.grad``, ``requires_grad``, modes, global RNG) is left exactly as it was.

    Args:
        model: the network; layer names are relative to it (``model.named_modules()``).
        loss_fn: ``(model, batch) -> scalar loss``.
        batches: the K calibration batches (moved to the model's device).
        names: qualified names of the layers to score.
        seed: RNG seed of every pass; keep it equal between the ``G`` and ``G_hat`` passes.
    """
    weights = [_weight(model, n) for n in names]
    with _isolated(model, seed):
        for w in weights:
            w.requires_grad_(True)
        return _mean_gradients(model, loss_fn, batches, names, weights, {})


def swapped_gradient(
    model: nn.Module, loss_fn: LossFn, batches: Sequence[Any], name: str, w_hat: Tensor, seed: int = 0
) -> Tensor:
    """``G_hat = dL/dW_hat``: the gradient with layer ``name`` temporarily using the dense weight ``w_hat``.

    The factorized module computes the same function as the dense layer with ``W_hat``, so its
    gradient with respect to ``W_hat`` is this one (spec §3.4). Same isolation guarantees as
    :func:`layer_gradients`; the model's own weight is never touched.
    """
    weight = _weight(model, name)
    if w_hat.shape != weight.shape:
        raise ValueError(
            f"w_hat for layer {name!r} has shape {tuple(w_hat.shape)}, the weight {tuple(weight.shape)}: "
            "reconstruct the factors to the dense weight shape first"
        )
    leaf = w_hat.detach().to(device=weight.device, dtype=weight.dtype).clone().requires_grad_(True)
    with _isolated(model, seed):
        return _mean_gradients(model, loss_fn, batches, [name], [leaf], {f"{name}.weight": leaf})[name]


def score_rank(g: Tensor, g_hat: Tensor, factors: SVDFactors | CPFactors) -> float:
    """``s = cos(G, J J^T G_hat)`` for SVD or CP factors of one layer."""
    if isinstance(factors, SVDFactors):
        u = svd_update_direction(g_hat, factors)
    elif isinstance(factors, CPFactors):
        u = cp_update_direction(g_hat, factors)
    else:
        raise TypeError(f"factors must be SVDFactors or CPFactors, got {type(factors).__name__}")
    return alignment_score(g, u.to(g.dtype))
