"""BN-Inception (Inception-v2 with BatchNorm), truncated after ``inception_5b``, registered with timm.

Importing this module registers ``bninception`` with timm, so ``timm.create_model("bninception", ...)``
builds it (``num_classes=0`` gives pooled 1024-d features, ``features_only=True`` the 3b/4d/5b maps that
ALM uses). The layers and hyper-parameters follow the Cadene ``pretrainedmodels`` BN-Inception that ALM
copies; only the ImageNet classifier is replaced by a timm head (adaptive pooling, ``fc``).

Input convention: RGB in [0, 1], normalised with the ImageNet mean/std, like every timm model here.
Weights: none are downloaded. ``pretrained=True`` needs a local file, passed as
``pretrained_cfg_overlay={"file": path}``; it may be in this module's layout or in the Cadene/ALM layout
(``conv1_7x7_s2``, ``inception_3a_1x1_bn``, ``last_linear``, optionally under ``main_branch.``), see
:func:`checkpoint_filter_fn`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, Literal

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import create_classifier
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

__all__ = [
    "BNInception",
    "ConvBNReLU",
    "InceptionBlock",
    "caffe_conv1_to_rgb",
    "cadene_key",
    "checkpoint_filter_fn",
]

InputConvention = Literal["auto", "caffe_bgr255", "rgb_imagenet"]
CAFFE_MEAN_BGR = (104.0, 117.0, 128.0)  # what the Cadene ImageNet weights subtract from BGR 0-255 input


class ConvBNReLU(nn.Module):
    """Conv (with bias, as in the Caffe original) -> BatchNorm2d -> ReLU.

    A plain ``nn.Module`` rather than ``nn.Sequential`` so timm's ``flatten_sequential`` keeps it whole.
    BN uses torch's default momentum: Cadene's ``momentum=0.9`` is a Caffe value misread by PyTorch (ALM drops it).
    """

    def __init__(
        self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, padding: int = 0
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=padding, bias=True)
        self.bn = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated on channels: 1x1 | 1x1->3x3 | 1x1->3x3->3x3 | pool(->1x1).

    With ``downsample`` (blocks 3c, 4e) there is no 1x1 branch, the second 3x3 of both 3x3 branches has
    stride 2 and the pool branch is a 3x3/2 max pool passed through without projection.
    """

    def __init__(
        self,
        in_chs: int,
        c1x1: int,
        c3x3_reduce: int,
        c3x3: int,
        dbl_reduce: int,
        dbl: int,
        pool_proj: int,
        pool: Literal["avg", "max"] = "avg",
        downsample: bool = False,
    ) -> None:
        super().__init__()
        stride = 2 if downsample else 1
        self.conv_1x1 = None if downsample else ConvBNReLU(in_chs, c1x1, 1)
        self.conv_3x3_reduce = ConvBNReLU(in_chs, c3x3_reduce, 1)
        self.conv_3x3 = ConvBNReLU(c3x3_reduce, c3x3, 3, stride=stride, padding=1)
        self.double_3x3_reduce = ConvBNReLU(in_chs, dbl_reduce, 1)
        self.double_3x3_1 = ConvBNReLU(dbl_reduce, dbl, 3, padding=1)
        self.double_3x3_2 = ConvBNReLU(dbl, dbl, 3, stride=stride, padding=1)
        self.pool: nn.Module
        if downsample:  # no padding: with ceil_mode it matches the padded stride-2 convs on even sizes
            self.pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        elif pool == "avg":
            self.pool = nn.AvgPool2d(3, stride=1, padding=1, ceil_mode=True, count_include_pad=True)
        else:
            self.pool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        self.pool_proj = None if downsample else ConvBNReLU(in_chs, pool_proj, 1)
        self.out_chs = c3x3 + dbl + (in_chs if downsample else c1x1 + pool_proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [
            self.conv_3x3(self.conv_3x3_reduce(x)),
            self.double_3x3_2(self.double_3x3_1(self.double_3x3_reduce(x))),
        ]
        pooled = self.pool(x)
        if self.conv_1x1 is not None and self.pool_proj is not None:
            return torch.cat([self.conv_1x1(x), *branches, self.pool_proj(pooled)], 1)
        return torch.cat([*branches, pooled], 1)  # (B, c3x3 + dbl + C_in, H/2, W/2)


# name: (1x1, 3x3 reduce, 3x3, double reduce, double, pool proj, pool, downsample); input widths follow.
_BLOCKS: tuple[tuple[str, int, int, int, int, int, int, Literal["avg", "max"], bool], ...] = (
    ("inception_3a", 64, 64, 64, 64, 96, 32, "avg", False),
    ("inception_3b", 64, 64, 96, 64, 96, 64, "avg", False),
    ("inception_3c", 0, 128, 160, 64, 96, 0, "max", True),
    ("inception_4a", 224, 64, 96, 96, 128, 128, "avg", False),
    ("inception_4b", 192, 96, 128, 96, 128, 128, "avg", False),
    ("inception_4c", 160, 128, 160, 128, 160, 128, "avg", False),
    ("inception_4d", 96, 128, 192, 160, 192, 128, "avg", False),
    ("inception_4e", 0, 128, 192, 192, 256, 0, "max", True),
    ("inception_5a", 352, 192, 320, 160, 224, 128, "avg", False),
    ("inception_5b", 352, 192, 320, 192, 224, 128, "max", False),
)
_STAGES = ("conv1", "pool1", "conv2_reduce", "conv2", "pool2", *(block[0] for block in _BLOCKS))


class BNInception(nn.Module):
    """BN-Inception up to ``inception_5b`` (stride 32, 1024 ch) with a timm classifier head.

    Top-level children are registered in execution order (stem, pools, blocks, head) so that timm's
    ``FeatureListNet`` can cut the network at ``feature_info`` modules. Input sides that are multiples
    of 32 always work; odd map sizes at the 3c/4e inputs make the conv and pool branches disagree, as
    in the original.
    """

    def __init__(
        self, num_classes: int = 1000, in_chans: int = 3, global_pool: str = "avg", drop_rate: float = 0.0
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.num_features = self.head_hidden_size = 1024
        self.conv1 = ConvBNReLU(in_chans, 64, 7, stride=2, padding=3)
        self.pool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2_reduce = ConvBNReLU(64, 64, 1)
        self.conv2 = ConvBNReLU(64, 192, 3, padding=1)
        self.pool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        chs = 192
        for name, c1x1, c3x3_reduce, c3x3, dbl_reduce, dbl, pool_proj, pool, downsample in _BLOCKS:
            block = InceptionBlock(chs, c1x1, c3x3_reduce, c3x3, dbl_reduce, dbl, pool_proj, pool, downsample)
            self.add_module(name, block)
            chs = block.out_chs
        self.feature_info = [
            dict(num_chs=64, reduction=2, module="conv1"),
            dict(num_chs=192, reduction=4, module="conv2"),
            dict(num_chs=320, reduction=8, module="inception_3b"),
            dict(num_chs=608, reduction=16, module="inception_4d"),
            dict(num_chs=1024, reduction=32, module="inception_5b"),
        ]
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        pool_type = global_pool if global_pool is not None else self.global_pool.pool_type
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=pool_type)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for name in _STAGES:
            x = self.get_submodule(name)(x)
        return x  # (B, 1024, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)  # (B, 1024)
        x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# ---- checkpoints -------------------------------------------------------------------------------------
_STEM_TO_CADENE = {"conv1": "conv1_7x7_s2", "conv2_reduce": "conv2_3x3_reduce", "conv2": "conv2_3x3"}
_BRANCH_TO_CADENE = {"conv_1x1": "1x1", "conv_3x3_reduce": "3x3_reduce", "conv_3x3": "3x3"}


def cadene_key(key: str) -> str:
    """Name of one of our state-dict keys in the Cadene/ALM layout (``inception_3a.conv_1x1.bn.weight`` ->
    ``inception_3a_1x1_bn.weight``)."""
    *path, param = key.split(".")
    if path == ["fc"]:
        return f"last_linear.{param}"
    bn = "_bn" if path[-1] == "bn" else ""
    if len(path) == 2:
        return f"{_STEM_TO_CADENE[path[0]]}{bn}.{param}"
    return f"{path[0]}_{_BRANCH_TO_CADENE.get(path[1], path[1])}{bn}.{param}"


def caffe_conv1_to_rgb(
    weight: torch.Tensor,
    bias: torch.Tensor,
    mean_bgr: tuple[float, ...] = CAFFE_MEAN_BGR,
    mean_rgb: tuple[float, ...] = IMAGENET_DEFAULT_MEAN,
    std_rgb: tuple[float, ...] = IMAGENET_DEFAULT_STD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold the input change BGR 0-255 minus ``mean_bgr`` -> RGB ImageNet-normalised into the first conv.

    With ``z_c = (x_c - m_c) / s_c`` (RGB, x in [0, 1]) the Caffe input is ``u_{2-c} = 255 s_c z_c + d_c``,
    ``d_c = 255 m_c - mean_bgr[2 - c]``. So the new weight is ``W[:, 2-c] * 255 s_c`` and the constant
    ``d_c`` goes into the bias (summed over the kernel). This is exact wherever the kernel does not touch
    the zero padding; at the image border a padded zero now means "ImageNet mean pixel" instead of
    "Caffe mean pixel", a per-channel difference of ``d_c`` (a few grey levels).
    """
    w = weight.double().flip(1)  # (C_out, 3, kh, kw), channels now RGB
    std = torch.tensor(std_rgb, dtype=torch.float64).view(1, 3, 1, 1)
    offset = 255.0 * torch.tensor(mean_rgb, dtype=torch.float64) - torch.tensor(mean_bgr).double().flip(0)
    new_bias = bias.double() + (w * offset.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))  # (C_out,)
    return (w * 255.0 * std).to(weight.dtype), new_bias.to(bias.dtype)


def checkpoint_filter_fn(
    state_dict: Mapping[str, torch.Tensor], model: BNInception, input_convention: InputConvention = "auto"
) -> dict[str, torch.Tensor]:
    """Map a checkpoint onto ``model``'s keys (timm's ``pretrained_filter_fn``).

    Accepts our own layout or the Cadene/ALM one; an ALM model checkpoint (keys under ``main_branch.``)
    keeps only its backbone. A classifier that does not fit the model is dropped, a missing one keeps the
    model's random init, and missing ``num_batches_tracked`` buffers are zero.

    ``input_convention`` says what input the file's conv1 expects. ``"auto"`` (default) converts only the
    plain Cadene layout, i.e. the ImageNet release ``bn_inception-52deb4733.pth`` (``"caffe_bgr255"``);
    our layout (so a converted model saved again is never converted twice) and ALM checkpoints, which were
    trained on RGB ImageNet-normalised input, are taken as ``"rgb_imagenet"``. Pass it explicitly through
    ``timm.create_model(..., input_convention=...)`` to override.

    Raises:
        ValueError: unknown ``input_convention``, or keys missing, unexpected or of the wrong shape.
    """
    if input_convention not in ("auto", "caffe_bgr255", "rgb_imagenet"):
        raise ValueError(
            f"input_convention={input_convention!r}; use 'auto', 'caffe_bgr255' or 'rgb_imagenet'"
        )
    sd = dict(state_dict)
    is_alm = any(k.startswith("main_branch.") for k in sd)
    if is_alm:  # the rest of an ALM checkpoint (FPN, attribute modules, finalfc) is not the backbone
        sd = {k.removeprefix("main_branch."): v for k, v in sd.items() if k.startswith("main_branch.")}
    target = model.state_dict()
    is_cadene = "conv1_7x7_s2.weight" in sd
    if is_cadene:
        to_ours = {cadene_key(k): k for k in target}
        to_ours.setdefault("last_linear.weight", "fc.weight")
        to_ours.setdefault("last_linear.bias", "fc.bias")
        sd = {to_ours.get(k, k): v for k, v in sd.items()}
    if input_convention == "auto":
        input_convention = "caffe_bgr255" if is_cadene and not is_alm else "rgb_imagenet"

    def shown(key: str) -> str:
        return f"{key!r} (file name {cadene_key(key)!r})" if is_cadene and key in target else repr(key)

    for key in ("fc.weight", "fc.bias"):
        if key in sd and (key not in target or sd[key].shape != target[key].shape):
            del sd[key]  # classifier for another number of classes
        if key in target and key not in sd:
            sd[key] = target[key]  # keeps the model's random head
    for key in target:
        if key.endswith("num_batches_tracked") and key not in sd:
            sd[key] = torch.zeros_like(target[key])
    problems = {
        "unexpected keys": sorted(k for k in sd if k not in target),
        "missing keys": sorted(k for k in target if k not in sd),
        "bad shapes": sorted(k for k in sd if k in target and sd[k].shape != target[k].shape),
    }
    if any(problems.values()):
        parts = [
            f"{what}: {', '.join(shown(k) for k in keys[:5])}{' ...' if len(keys) > 5 else ''}"
            for what, keys in problems.items()
            if keys
        ]
        raise ValueError(
            "checkpoint does not fit bninception (expected our layout or the Cadene/ALM layout): "
            + "; ".join(parts)
        )
    if input_convention == "caffe_bgr255":
        sd["conv1.conv.weight"], sd["conv1.conv.bias"] = caffe_conv1_to_rgb(
            sd["conv1.conv.weight"], sd["conv1.conv.bias"]
        )
    return sd


default_cfgs = generate_default_cfgs(  # no url: weights only ever come from a local file
    {
        "bninception": dict(
            num_classes=1000,
            input_size=(3, 256, 128),
            pool_size=(8, 4),
            crop_pct=1.0,
            interpolation="bilinear",
            mean=IMAGENET_DEFAULT_MEAN,
            std=IMAGENET_DEFAULT_STD,
            first_conv="conv1.conv",
            classifier="fc",
        )
    }
)


@register_model
def bninception(pretrained: bool = False, **kwargs: Any) -> BNInception:
    """BN-Inception to ``inception_5b`` (ALM's backbone); ``features_only`` taps 3b/4d/5b by default.

    ``input_convention`` (popped from kwargs) is forwarded to :func:`checkpoint_filter_fn`.
    """
    input_convention = kwargs.pop("input_convention", "auto")
    sources = [kwargs.get("pretrained_cfg_overlay"), kwargs.get("pretrained_cfg")]
    if pretrained and not any(
        isinstance(s, dict) and (s.get("file") or s.get("state_dict")) for s in sources
    ):
        raise ValueError(
            "bninception has no downloadable weights: pass a local file with "
            "pretrained_cfg_overlay={'file': path} (or pretrained_path=... in the project configs)"
        )
    return build_model_with_cfg(
        BNInception,
        "bninception",
        pretrained,
        pretrained_filter_fn=partial(checkpoint_filter_fn, input_convention=input_convention),
        feature_cfg=dict(flatten_sequential=True, out_indices=(2, 3, 4)),
        **kwargs,
    )
