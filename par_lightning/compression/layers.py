"""Factorized replacements for dense ``nn.Conv2d`` / ``nn.Linear`` layers (SVD, CP3, CP4).

Every replacement is an ``nn.Sequential`` of plain ``nn.Conv2d`` / ``nn.Linear`` modules, so it exports,
compiles and runs on cuDNN kernels like any other layer, and it computes exactly ``conv(x, W_hat)``:
no bias before the last layer (pointwise maps commute with zero padding only without bias), stride on
the first 1x1 of an SVD conv (subsampling commutes with pointwise maps) and every spatial argument,
``padding_mode`` included, on the spatial convs.
"""

from __future__ import annotations

from typing import Literal, cast

import torch
from torch import nn

from par_lightning.compression.factors import CPFactors, SVDFactors


def _check_plain(layer: nn.Module, what: str) -> None:
    """Refuse modules whose forward is not the stock conv/linear forward, which the rebuild could not copy."""
    if isinstance(layer, nn.Conv2d):
        stock = (
            type(layer).forward is nn.Conv2d.forward and type(layer)._conv_forward is nn.Conv2d._conv_forward
        )
    elif isinstance(layer, nn.Linear):
        stock = type(layer).forward is nn.Linear.forward
    else:
        raise ValueError(
            f"{what} expects an nn.Conv2d or nn.Linear, got {type(layer).__name__}; transposed, 1-D/3-D and "
            "other layers are not supported: keep them dense"
        )
    if not stock:
        raise ValueError(
            f"{type(layer).__name__} overrides the forward of {type(layer).__mro__[1].__name__} (e.g. dynamic "
            "'same' padding or weight standardisation), which a factorized copy would silently drop: keep it dense"
        )
    if isinstance(layer, nn.Conv2d) and layer.groups != 1:
        raise ValueError(
            f"grouped/depthwise conv (groups={layer.groups}) has nothing to factor across channels: keep it dense"
        )


def svd_factors(weight: torch.Tensor, rank: int) -> SVDFactors:
    """Truncated SVD of a ``(Cout, Cin)`` or ``(Cout, Cin, 1, 1)`` weight with the balanced split.

    Computed in float64 (Eckart-Young optimal in Frobenius norm), then cast back to the weight's
    dtype and device. The balanced split ``a = U S^1/2``, ``b = S^1/2 V^T`` gives both factors the same
    scale, which keeps SGD steps on the two factors comparable.
    """
    if weight.ndim == 4 and tuple(weight.shape[2:]) == (1, 1):
        matrix = weight[:, :, 0, 0]  # (Cout, Cin)
    elif weight.ndim == 2:
        matrix = weight  # (Cout, Cin)
    else:
        raise ValueError(
            f"svd_factors needs a (Cout, Cin) or (Cout, Cin, 1, 1) weight, got shape {tuple(weight.shape)}; "
            "use a CP factorization for kxk kernels"
        )
    max_r = min(matrix.shape)
    if not 1 <= rank <= max_r:
        raise ValueError(
            f"SVD rank must be in [1, min(Cout, Cin) = {max_r}] for a {tuple(matrix.shape)} weight, got {rank}"
        )
    u, s, vh = torch.linalg.svd(
        matrix.detach().to(torch.float64), full_matrices=False
    )  # (Cout, k), (k,), (k, Cin)
    root = s[:rank].sqrt()  # (r,)
    a = u[:, :rank] * root  # (Cout, r)
    b = root[:, None] * vh[:rank]  # (r, Cin)
    return SVDFactors(a=a.to(weight.dtype), b=b.to(weight.dtype))


PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]


def _conv(
    cin: int,
    cout: int,
    kernel: tuple[int, int],
    weight: torch.Tensor,
    *,
    stride: tuple[int, int] = (1, 1),
    padding: str | tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
    padding_mode: str = "zeros",
    bias: torch.Tensor | None = None,
) -> nn.Conv2d:
    """A conv holding ``weight`` (and ``bias``), on their device and dtype."""
    conv = nn.Conv2d(
        cin,
        cout,
        kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=bias is not None,
        padding_mode=cast(PaddingMode, padding_mode),
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
        if conv.bias is not None and bias is not None:
            conv.bias.copy_(bias)
    return conv


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """A Linear holding ``weight`` (out, in) and ``bias``, on their device and dtype."""
    linear = nn.Linear(
        weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device, dtype=weight.dtype
    )
    with torch.no_grad():
        linear.weight.copy_(weight)
        if linear.bias is not None and bias is not None:
            linear.bias.copy_(bias)
    return linear


def _pair(v: tuple[int, ...]) -> tuple[int, int]:
    return v[0], v[1]


def build_svd(layer: nn.Conv2d | nn.Linear, factors: SVDFactors) -> nn.Sequential:
    """Two-layer replacement ``in -> r -> out`` of a 1x1 conv or a Linear; the original bias goes on the last one."""
    _check_plain(layer, "build_svd")
    w = layer.weight
    a = factors.a.detach().to(device=w.device, dtype=w.dtype)  # (Cout, r)
    b = factors.b.detach().to(device=w.device, dtype=w.dtype)  # (r, Cin)
    bias = None if layer.bias is None else layer.bias.detach()  # (Cout,)
    r = factors.rank
    cout, cin = w.shape[0], w.shape[1]
    if isinstance(layer, nn.Conv2d) and tuple(layer.kernel_size) != (1, 1):
        raise ValueError(f"build_svd needs a 1x1 conv, got kernel {tuple(layer.kernel_size)}: use build_cp")
    if a.shape != (cout, r) or b.shape != (r, cin):
        raise ValueError(
            f"SVD factors {tuple(a.shape)} @ {tuple(b.shape)} do not fit {type(layer).__name__} {cin}->{cout}"
        )
    if isinstance(layer, nn.Linear):
        return nn.Sequential(_linear(b, None), _linear(a, bias)).train(layer.training)
    # Stride and padding on the first (cheapest) layer: subsampling and padding commute with a bias-free 1x1.
    pad = layer.padding if isinstance(layer.padding, str) else _pair(layer.padding)
    first = _conv(
        cin,
        r,
        (1, 1),
        b[:, :, None, None],
        stride=_pair(layer.stride),
        padding=pad,
        padding_mode=layer.padding_mode,
    )  # weight (r, Cin, 1, 1)
    last = _conv(r, cout, (1, 1), a[:, :, None, None], bias=bias)  # weight (Cout, r, 1, 1)
    return nn.Sequential(first, last).train(layer.training)


def build_cp(conv: nn.Conv2d, factors: CPFactors) -> nn.Sequential:
    """CP3 (one depthwise kh x kw) or CP4 (depthwise kh x 1 then 1 x kw) replacement of a kxk conv.

    Layers: 1x1 Cin->R (no bias), depthwise spatial conv(s) carrying stride, padding (strings too),
    dilation and padding_mode, then 1x1 R->Cout with the original bias.
    """
    _check_plain(conv, "build_cp")
    if not isinstance(conv, nn.Conv2d):
        raise ValueError("build_cp expects an nn.Conv2d; use build_svd for nn.Linear")
    kh, kw = conv.kernel_size
    if (kh, kw) == (1, 1):
        raise ValueError("build_cp needs a kxk kernel; a 1x1 conv is a matrix: use svd_factors and build_svd")
    cout, cin, r = conv.out_channels, conv.in_channels, factors.rank
    if len(factors.spatial) == 1:
        spatial_shapes: list[tuple[int, int]] = [(kh * kw, r)]
    elif len(factors.spatial) == 2:
        spatial_shapes = [(kh, r), (kw, r)]
    else:
        raise ValueError(f"CPFactors needs 1 (CP3) or 2 (CP4) spatial factors, got {len(factors.spatial)}")
    got = [tuple(factors.out.shape), tuple(factors.inp.shape), *(tuple(f.shape) for f in factors.spatial)]
    want = [(cout, r), (cin, r), *spatial_shapes]
    if got != want:
        raise ValueError(
            f"CP factor shapes {got} do not fit conv {cin}->{cout} kernel {(kh, kw)}; expected {want}"
        )

    def cast_(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(device=conv.weight.device, dtype=conv.weight.dtype)

    def depthwise(
        kernel: tuple[int, int],
        weight: torch.Tensor,
        stride: tuple[int, int],
        padding: str | tuple[int, int],
        dilation: tuple[int, int],
    ) -> nn.Conv2d:
        return _conv(
            r,
            r,
            kernel,
            weight,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=r,
            padding_mode=mode,
        )

    sh, sw = conv.stride
    dh, dw = conv.dilation
    pad = conv.padding
    mode = conv.padding_mode
    first = _conv(cin, r, (1, 1), cast_(factors.inp).T[:, :, None, None])  # weight (R, Cin, 1, 1)
    if len(factors.spatial) == 1:
        sp = cast_(factors.spatial[0]).T.reshape(r, 1, kh, kw)  # (R, 1, kh, kw)
        pad_hw = pad if isinstance(pad, str) else _pair(pad)
        spatial = [depthwise((kh, kw), sp, (sh, sw), pad_hw, (dh, dw))]
    else:
        sp_h = cast_(factors.spatial[0]).T.reshape(r, 1, kh, 1)  # (R, 1, kh, 1)
        sp_w = cast_(factors.spatial[1]).T.reshape(r, 1, 1, kw)  # (R, 1, 1, kw)
        # Per-dimension split of the spatial args; a string padding applies to both ('same' needs stride 1).
        pad_h = pad if isinstance(pad, str) else (pad[0], 0)
        pad_w = pad if isinstance(pad, str) else (0, pad[1])
        spatial = [
            depthwise((kh, 1), sp_h, (sh, 1), pad_h, (dh, 1)),
            depthwise((1, kw), sp_w, (1, sw), pad_w, (1, dw)),
        ]
    bias = None if conv.bias is None else conv.bias.detach()
    last = _conv(r, cout, (1, 1), cast_(factors.out)[:, :, None, None], bias=bias)  # weight (Cout, R, 1, 1)
    return nn.Sequential(first, *spatial, last).train(conv.training)


def read_factors(module: nn.Sequential) -> SVDFactors | CPFactors:
    """The factors held by a module built by :func:`build_svd` or :func:`build_cp` (views of its weights)."""
    layers = list(module)
    linears = [m for m in layers if type(m) is nn.Linear]
    convs = [m for m in layers if type(m) is nn.Conv2d]
    if len(layers) == 2 and len(linears) == 2:
        return SVDFactors(a=linears[1].weight, b=linears[0].weight)
    ends_ok = len(convs) == len(layers) >= 2 and all(
        tuple(m.kernel_size) == (1, 1) and m.groups == 1 for m in (convs[0], convs[-1])
    )
    if ends_ok and len(convs) == 2:
        return SVDFactors(a=convs[1].weight[:, :, 0, 0], b=convs[0].weight[:, :, 0, 0])
    r = convs[0].out_channels if convs else 0
    if ends_ok and len(convs) in (3, 4) and all(m.groups == r for m in convs[1:-1]):
        out = convs[-1].weight[:, :, 0, 0]  # (Cout, R)
        inp = convs[0].weight[:, :, 0, 0].T  # (Cin, R)
        spatial = tuple(
            m.weight.reshape(r, -1).T for m in convs[1:-1]
        )  # CP3: (kh*kw, R); CP4: (kh, R), (kw, R)
        return CPFactors(out=out, inp=inp, spatial=spatial)
    raise ValueError(
        "module is not a factorized layer built by build_svd/build_cp (expected Linear-Linear, 1x1-1x1, "
        f"1x1-depthwise-1x1 or 1x1-depthwise-depthwise-1x1), got {[type(m).__name__ for m in layers]}"
    )


def factorized_weight(module: nn.Sequential, kernel_size: tuple[int, int] | None = None) -> torch.Tensor:
    """The dense weight the factorized module applies: ``(out, in)`` for Linear, ``(Cout, Cin, kh, kw)`` for convs.

    ``kernel_size`` is read from the depthwise convs; when given, it is checked against them.
    """
    factors = read_factors(module)
    convs = [m for m in module if isinstance(m, nn.Conv2d)]
    ks: tuple[int, int] = (1, 1)
    if isinstance(factors, SVDFactors):
        dense = factors.reconstruct().detach()  # (Cout, Cin)
        if convs:
            dense = dense[:, :, None, None]  # (Cout, Cin, 1, 1)
        elif kernel_size is not None:
            raise ValueError(f"a factorized Linear has no kernel, got kernel_size={kernel_size}")
    else:
        ks = (convs[1].kernel_size[0], convs[-2].kernel_size[1])
        dense = factors.reconstruct(ks).detach()  # (Cout, Cin, kh, kw)
    if kernel_size is not None and tuple(kernel_size) != ks:
        raise ValueError(f"kernel_size={tuple(kernel_size)} does not match the module's kernel {ks}")
    return dense
