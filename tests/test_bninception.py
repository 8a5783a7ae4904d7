"""BN-Inception backbone: architecture numbers from the ALM spec, timm integration, checkpoint loading."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from par_lightning.models import bninception as bni
from par_lightning.models.backbones import create_backbone

RGB_MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
RGB_STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
CAFFE_MEAN_BGR = torch.tensor([104.0, 117.0, 128.0], dtype=torch.float64).view(1, 3, 1, 1)

# (stage, C, H, W) at 3x256x128, from the spec table (measured on the reference network)
STAGE_SHAPES = [
    ("conv1", 64, 128, 64),
    ("pool1", 64, 64, 32),
    ("conv2", 192, 64, 32),
    ("pool2", 192, 32, 16),
    ("inception_3a", 256, 32, 16),
    ("inception_3b", 320, 32, 16),
    ("inception_3c", 576, 16, 8),
    ("inception_4a", 576, 16, 8),
    ("inception_4b", 576, 16, 8),
    ("inception_4c", 608, 16, 8),
    ("inception_4d", 608, 16, 8),
    ("inception_4e", 1056, 8, 4),
    ("inception_5a", 1024, 8, 4),
    ("inception_5b", 1024, 8, 4),
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Batch-1 maps of a few pixels: thread start-up and spinning cost more than the convs themselves."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def to_cadene(key: str) -> str:
    """Test-side renaming to the Cadene names, written from the reference file's naming pattern."""
    stem = {"conv1.": "conv1_7x7_s2", "conv2_reduce.": "conv2_3x3_reduce", "conv2.": "conv2_3x3"}
    for ours, theirs in stem.items():
        if key.startswith(ours):
            key = theirs + "." + key[len(ours) :]
    key = re.sub(r"^(inception_\d[a-e])\.(conv_)?(\w+)\.", r"\1_\3.", key)
    key = re.sub(r"\.bn\.", "_bn.", key).replace(".conv.", ".")
    return key.replace("fc.", "last_linear.")


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Random weights and BN statistics, so equality checks are not met by the default init."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                noise = torch.randn(tensor.shape, generator=gen, dtype=tensor.dtype)
                tensor.copy_(noise.abs() + 0.5 if name.endswith("running_var") else 0.05 * noise)
    return model


@pytest.fixture(scope="module")
def cadene_sd() -> dict[str, torch.Tensor]:
    """A random ImageNet-style BN-Inception file in the Cadene layout (2017 files have no num_batches_tracked)."""
    model = randomise(bni.BNInception(num_classes=1000), seed=0)
    return {to_cadene(k): v.clone() for k, v in model.state_dict().items() if "num_batches_tracked" not in k}


def save(sd: dict[str, Any], path: Path) -> str:
    torch.save(sd, path)
    return str(path)


def create(**kwargs: Any) -> Any:
    return timm.create_model("bninception", **kwargs)


def load(path: str, **kwargs: Any) -> Any:
    return create(pretrained=True, pretrained_cfg_overlay={"file": path}, **kwargs)


# ---- architecture ------------------------------------------------------------------------------------
def test_parameter_counts_match_the_reference() -> None:
    model = create(num_classes=0)
    assert sum(p.numel() for p in model.parameters()) == 10_270_240
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert sum(m.weight.numel() + m.bias.numel() for m in bn) == 20_032
    with_head = create()
    assert sum(p.numel() for p in with_head.parameters()) == 10_270_240 + 1024 * 1000 + 1000


def test_layers_follow_the_cadene_hyper_parameters(cadene_sd: dict[str, torch.Tensor]) -> None:
    model: Any = bni.BNInception()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 69 == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(c.bias is not None for c in convs)
    assert all(m.ceil_mode for m in model.modules() if isinstance(m, nn.MaxPool2d | nn.AvgPool2d))
    pool_5a, pool_5b = model.inception_5a.pool, model.inception_5b.pool
    assert isinstance(pool_5a, nn.AvgPool2d) and pool_5a.count_include_pad and pool_5a.padding == 1
    assert isinstance(pool_5b, nn.MaxPool2d) and (pool_5b.stride, pool_5b.padding) == (1, 1)
    # names and shapes as they appear in the Cadene pretrainedmodels file
    expected = {
        "conv1_7x7_s2.weight": (64, 3, 7, 7),
        "conv2_3x3_reduce_bn.bias": (64,),
        "inception_3a_pool_proj_bn.weight": (32,),
        "inception_3c_double_3x3_2_bn.running_var": (96,),
        "inception_4e_double_3x3_reduce.weight": (192, 608, 1, 1),
        "inception_5a_pool_proj.weight": (128, 1056, 1, 1),
        "inception_5b_double_3x3_reduce.weight": (192, 1024, 1, 1),
        "last_linear.weight": (1000, 1024),
    }
    assert {k: tuple(cadene_sd[k].shape) for k in expected} == expected
    assert len(cadene_sd) == 6 * 69 + 2


def test_stage_shapes_and_feature_taps_at_256x128() -> None:
    net = create(features_only=True).eval()
    seen: dict[str, tuple[int, ...]] = {}
    for name, _, _, _ in STAGE_SHAPES:
        getattr(net, name).register_forward_hook(lambda m, i, o, n=name: seen.__setitem__(n, tuple(o.shape)))
    with torch.no_grad():
        taps = net(torch.randn(1, 3, 256, 128))
    assert seen == {n: (1, c, h, w) for n, c, h, w in STAGE_SHAPES}
    assert [tuple(t.shape) for t in taps] == [(1, 320, 32, 16), (1, 608, 16, 8), (1, 1024, 8, 4)]
    assert net.feature_info.channels() == [320, 608, 1024]
    assert net.feature_info.reduction() == [8, 16, 32]


def test_feature_info_and_explicit_out_indices() -> None:
    info = bni.BNInception().feature_info
    assert [(d["module"], d["num_chs"], d["reduction"]) for d in info] == [
        ("conv1", 64, 2),
        ("conv2", 192, 4),
        ("inception_3b", 320, 8),
        ("inception_4d", 608, 16),
        ("inception_5b", 1024, 32),
    ]
    net = create(features_only=True, out_indices=(0, 1, 4)).eval()
    assert net.feature_info.channels() == [64, 192, 1024]
    with torch.no_grad():
        taps = net(torch.randn(1, 3, 64, 32))
    assert [tuple(t.shape) for t in taps] == [(1, 64, 32, 16), (1, 192, 16, 8), (1, 1024, 2, 1)]


@pytest.mark.parametrize("size", [(224, 224), (128, 64)])
def test_adaptive_pooling_accepts_other_sizes(size: tuple[int, int]) -> None:
    model = create(num_classes=0).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 1024)


@pytest.mark.parametrize("features_only", [True, False])
def test_forward_backward_small_input(features_only: bool) -> None:
    kwargs = {"features_only": True} if features_only else {"num_classes": 5}
    model = create(**kwargs)
    out = model(torch.randn(2, 3, 64, 32))
    outs = out if features_only else [out]
    expected = [(2, 320, 8, 4), (2, 608, 4, 2), (2, 1024, 2, 1)] if features_only else [(2, 5)]
    assert [tuple(o.shape) for o in outs] == expected
    sum(o.square().mean() for o in outs).backward()
    grad = model.conv1.conv.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_head_api() -> None:
    model = create(num_classes=3).eval()
    assert model.num_features == 1024 and model.get_classifier().out_features == 3
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 64, 32))
        assert feats.shape == (1, 1024, 2, 1)
        torch.testing.assert_close(model.forward_head(feats, pre_logits=True), feats.mean(dim=(2, 3)))
        model.reset_classifier(7)
        assert model.forward_head(feats).shape == (1, 7)
        model.reset_classifier(0)
        assert isinstance(model.get_classifier(), nn.Identity) and model.forward_head(feats).shape == (
            1,
            1024,
        )


# ---- checkpoints -------------------------------------------------------------------------------------
def test_cadene_file_loads_and_conv1_is_converted(cadene_sd: dict[str, torch.Tensor], tmp_path: Path) -> None:
    model = load(save(cadene_sd, tmp_path / "bn_inception.pth"), num_classes=0).eval()
    ours = model.state_dict()
    assert not any(k.startswith("fc.") for k in ours)
    converted = {"conv1.conv.weight", "conv1.conv.bias"}
    for key, value in ours.items():
        if key not in converted and "num_batches_tracked" not in key:
            assert torch.equal(value, cadene_sd[to_cadene(key)]), key

    rgb = torch.rand(2, 3, 32, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    caffe_input = 255.0 * rgb.flip(1) - CAFFE_MEAN_BGR  # BGR, 0-255, mean subtracted
    w, b = cadene_sd["conv1_7x7_s2.weight"].double(), cadene_sd["conv1_7x7_s2.bias"].double()
    reference = F.conv2d(caffe_input, w, b, stride=2, padding=3)  # (2, 64, 16, 12)
    with torch.no_grad():
        got = model.conv1.conv(((rgb - RGB_MEAN) / RGB_STD).float()).double()
    # output i reads input rows 2i-3 .. 2i+3: away from the zero padding for 2 <= i <= (H - 4) // 2
    inner = (slice(None), slice(None), slice(2, (32 - 4) // 2 + 1), slice(2, (24 - 4) // 2 + 1))
    scale = reference[inner].abs().max().item()
    torch.testing.assert_close(got[inner], reference[inner], rtol=1e-4, atol=1e-4 * scale)
    assert (got[..., 0, :] - reference[..., 0, :]).abs().max() > 1e-3 * scale  # the documented border effect

    again = load(save(model.state_dict(), tmp_path / "converted.pth"), num_classes=0)  # our layout now
    torch.testing.assert_close(again.conv1.conv.weight, model.conv1.conv.weight, rtol=0, atol=0)


def test_classifier_kept_only_when_it_fits(cadene_sd: dict[str, torch.Tensor], tmp_path: Path) -> None:
    path = save(cadene_sd, tmp_path / "bn_inception.pth")
    assert torch.equal(load(path).fc.weight, cadene_sd["last_linear.weight"])
    assert load(path, num_classes=10).fc.weight.shape == (10, 1024)


def test_own_layout_round_trip(tmp_path: Path) -> None:
    source = randomise(bni.BNInception(num_classes=0), seed=2)
    model = load(save(source.state_dict(), tmp_path / "ours.pth"), num_classes=0)
    loaded = model.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key


def test_alm_checkpoint_keeps_backbone_unconverted(
    cadene_sd: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    alm = {f"module.main_branch.{k}": v for k, v in cadene_sd.items() if not k.startswith("last_linear")}
    alm["module.finalfc.weight"] = torch.zeros(26, 1024)
    alm["module.st_3b.att_list.0.conv1.weight"] = torch.zeros(48, 768, 1, 1)
    model = load(save({"state_dict": alm}, tmp_path / "alm.pth"), num_classes=0)
    assert torch.equal(model.conv1.conv.weight, cadene_sd["conv1_7x7_s2.weight"])
    assert torch.equal(
        model.inception_5b.pool_proj.bn.running_mean, cadene_sd["inception_5b_pool_proj_bn.running_mean"]
    )


def test_input_convention_override(cadene_sd: dict[str, torch.Tensor], tmp_path: Path) -> None:
    path = save(cadene_sd, tmp_path / "bn_inception.pth")
    kept = load(path, num_classes=0, input_convention="rgb_imagenet")
    assert torch.equal(kept.conv1.conv.weight, cadene_sd["conv1_7x7_s2.weight"])
    forced = load(
        save(kept.state_dict(), tmp_path / "ours.pth"), num_classes=0, input_convention="caffe_bgr255"
    )
    expected = cadene_sd["conv1_7x7_s2.weight"].double().flip(1) * 255.0 * RGB_STD
    torch.testing.assert_close(forced.conv1.conv.weight.double(), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="input_convention='bgr'"):
        load(path, num_classes=0, input_convention="bgr")


def test_mismatched_files_name_the_key(cadene_sd: dict[str, torch.Tensor], tmp_path: Path) -> None:
    extra = dict(cadene_sd, **{"inception_3a_bogus.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="unexpected keys: 'inception_3a_bogus.weight'"):
        load(save(extra, tmp_path / "extra.pth"), num_classes=0)
    missing = {k: v for k, v in cadene_sd.items() if k != "inception_4d_3x3_bn.running_var"}
    with pytest.raises(ValueError, match="missing keys: .*'inception_4d_3x3_bn.running_var'"):
        load(save(missing, tmp_path / "missing.pth"), num_classes=0)
    wrong = dict(cadene_sd, **{"inception_3b_1x1.bias": torch.zeros(3)})
    with pytest.raises(ValueError, match="bad shapes: .*'inception_3b_1x1.bias'"):
        load(save(wrong, tmp_path / "wrong.pth"), num_classes=0)


def test_pretrained_without_file_is_refused() -> None:
    with pytest.raises(ValueError, match="no downloadable weights"):
        create(pretrained=True)


def test_create_backbone_reads_a_local_cadene_file(
    cadene_sd: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    backbone: Any = create_backbone("bninception", pretrained_path=save(cadene_sd, tmp_path / "w.pth")).eval()
    assert torch.equal(backbone.inception_4a.conv_1x1.conv.weight, cadene_sd["inception_4a_1x1.weight"])
    with torch.no_grad():
        assert backbone(torch.randn(1, 3, 64, 32)).shape == (1, 1024)
