"""Parameter and MAC counts of dense and factorized layers (spec §1.3), by formula and by measurement.

Formulas drive the rank bounds and the rank search; the hook-based count measures a built model from the
shapes it actually sees, so reports never rely on the formulas being right. Weights only: a bias adds
``Cout`` parameters to every variant and is left out. MACs are multiply-accumulates (FLOPs = 2 x MACs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from par_lightning.compression.curves import Method

METHODS: tuple[Method, ...] = ("svd", "cp3", "cp4")


def check_method(layer: nn.Module, method: str) -> None:
    """Raise unless ``method`` applies to ``layer``: SVD for Linear / 1x1 convs, CP3/CP4 for kxk convs."""
    if method not in METHODS:
        raise ValueError(f"unknown factorization method {method!r}; valid: {list(METHODS)}")
    if isinstance(layer, nn.Linear):
        if method != "svd":
            raise ValueError(f"a Linear layer is factorized by 'svd', not {method!r}")
        return
    if not isinstance(layer, nn.Conv2d):
        raise ValueError(f"only nn.Conv2d and nn.Linear can be factorized, got {type(layer).__name__}")
    if layer.groups != 1:
        raise ValueError(f"grouped conv (groups={layer.groups}) cannot be factorized: keep it dense")
    is_1x1 = tuple(layer.kernel_size) == (1, 1)
    if is_1x1 and method != "svd":
        raise ValueError(f"a 1x1 conv is a matrix: factorize it by 'svd', not {method!r}")
    if not is_1x1 and method == "svd":
        raise ValueError(f"a {tuple(layer.kernel_size)} conv is factorized by 'cp3' or 'cp4', not 'svd'")


def conv_output_hw(conv: nn.Conv2d, input_hw: tuple[int, int]) -> tuple[int, int]:
    """Output ``(H', W')`` of ``conv`` on an ``(H, W)`` input, string paddings included."""
    out = []
    for d in range(2):
        size, k, s, dil = input_hw[d], conv.kernel_size[d], conv.stride[d], conv.dilation[d]
        if conv.padding == "same":
            out.append(size)  # torch allows 'same' only with stride 1
            continue
        p = 0 if conv.padding == "valid" else conv.padding[d]
        out.append((size + 2 * p - dil * (k - 1) - 1) // s + 1)  # type: ignore[operator]
    return out[0], out[1]


def dense_params(layer: nn.Conv2d | nn.Linear) -> int:
    """Weight parameters of the dense layer (``Cout * Cin / groups * kh * kw`` or ``in * out``)."""
    return layer.weight.numel()


def dense_macs(layer: nn.Conv2d | nn.Linear, input_hw: tuple[int, int] | None = None) -> int:
    """MACs per sample of the dense layer (per input row for a Linear; ``input_hw`` is needed for convs)."""
    if isinstance(layer, nn.Linear):
        return layer.in_features * layer.out_features
    if input_hw is None:
        raise ValueError("dense_macs of a conv needs input_hw=(H, W), e.g. from input_sizes(model, x)")
    ho, wo = conv_output_hw(layer, input_hw)
    return dense_params(layer) * ho * wo


def factorized_params(layer: nn.Conv2d | nn.Linear, method: Method, rank: int) -> int:
    """Weight parameters of the rank-``rank`` factorization (spec §1.3 table)."""
    check_method(layer, method)
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    if isinstance(layer, nn.Linear):
        return rank * (layer.in_features + layer.out_features)
    cin, cout = layer.in_channels, layer.out_channels
    kh, kw = layer.kernel_size
    if method == "svd":
        return rank * (cin + cout)
    if method == "cp3":
        return rank * (cin + kh * kw + cout)
    return rank * (cin + kh + kw + cout)


def factorized_macs(
    layer: nn.Conv2d | nn.Linear, method: Method, rank: int, input_hw: tuple[int, int] | None = None
) -> int:
    """MACs per sample of the rank-``rank`` factorization (spec §1.3 table; per input row for a Linear).

    CP's first 1x1 runs at full input resolution (a kxk stride-s conv cannot be subsampled early); CP4's
    kh x 1 conv outputs ``H' x W``; SVD convs carry the stride on their first 1x1.
    """
    check_method(layer, method)
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    if isinstance(layer, nn.Linear):
        return rank * (layer.in_features + layer.out_features)
    if input_hw is None:
        raise ValueError("factorized_macs of a conv needs input_hw=(H, W), e.g. from input_sizes(model, x)")
    cin, cout = layer.in_channels, layer.out_channels
    kh, kw = layer.kernel_size
    h, w = input_hw
    ho, wo = conv_output_hw(layer, input_hw)
    if method == "svd":
        return rank * (cin + cout) * ho * wo
    if method == "cp3":
        return rank * (cin * h * w + kh * kw * ho * wo + cout * ho * wo)
    # CP4: the kh x 1 conv keeps the input width (kernel 1, stride 1, no padding along W).
    return rank * (cin * h * w + kh * ho * w + kw * ho * wo + cout * ho * wo)


_Hook = Callable[[str, nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]


def _forward_with_hooks(model: nn.Module, example_input: torch.Tensor, hook_fn: _Hook) -> None:
    """One no-grad eval-mode forward with ``hook_fn(name, module, input, output)`` on every conv/linear.

    Eval mode keeps BN running statistics untouched; every module's train/eval flag is restored afterwards.
    """
    modes = {m: m.training for m in model.modules()}
    handles = [
        m.register_forward_hook(lambda mod, inp, out, name=name: hook_fn(name, mod, inp, out))
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear)
    ]
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.training = mode


def count_module_costs(model: nn.Module, example_input: torch.Tensor) -> dict[str, tuple[int, int]]:
    """``{qualified name: (weight params, MACs per sample)}`` of every Conv1d/Conv2d/Linear, from one forward.

    MACs come from the shapes each layer actually saw: conv = output elements x Cin/groups x kh x kw,
    linear = output elements x in_features, divided by the batch size ``example_input.shape[0]``.
    A module called several times (shared) is listed once, with the MACs of all its calls summed.
    """
    totals: dict[str, int] = {}
    layers: dict[str, nn.Conv2d | nn.Linear] = {}

    def hook(name: str, mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        weight = cast(torch.Tensor, mod.weight)  # (out, in/groups, *kernel) or (out, in)
        per_out = weight[0].numel()  # MACs per output element: Cin/groups * kernel elements, or in_features
        totals[name] = totals.get(name, 0) + out.numel() * per_out
        layers[name] = mod  # type: ignore[assignment]

    _forward_with_hooks(model, example_input, hook)
    batch = example_input.shape[0]
    return {name: (dense_params(layers[name]), total // batch) for name, total in totals.items()}


def input_sizes(model: nn.Module, example_input: torch.Tensor) -> dict[str, tuple[int, int]]:
    """``{qualified name: (H, W)}`` of the input each Conv2d sees (its first call, for a shared module)."""
    sizes: dict[str, tuple[int, int]] = {}

    def hook(name: str, mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(mod, nn.Conv2d) and name not in sizes:
            sizes[name] = (int(inp[0].shape[-2]), int(inp[0].shape[-1]))

    _forward_with_hooks(model, example_input, hook)
    return sizes
