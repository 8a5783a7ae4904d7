"""Registry, timm backbones and the strong baseline."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from torch import nn

from par_lightning.models import StrongBaseline, create_backbone, create_model, list_models, register_model


def test_registry_lists_and_builds() -> None:
    assert {"baseline", "tiny"} <= set(list_models())
    model = create_model("tiny", num_attributes=7)
    assert isinstance(model, StrongBaseline)
    model.eval()
    assert model(torch.randn(2, 3, 32, 16)).shape == (2, 7)


def test_registry_rejects_unknown_and_duplicate_names() -> None:
    with pytest.raises(ValueError, match="unknown model 'nope'; valid names: .*baseline"):
        create_model("nope", num_attributes=3)
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny")(lambda num_attributes: nn.Identity())


def test_baseline_head_is_linear_then_bn_on_any_backbone() -> None:
    model = StrongBaseline(num_attributes=5, backbone="test_efficientnet")
    assert isinstance(model.classifier, nn.Linear) and model.classifier.out_features == 5
    assert isinstance(model.logit_bn, nn.BatchNorm1d)
    model.eval()
    x = torch.randn(3, 3, 64, 32)
    expected = model.logit_bn(model.classifier(model.backbone(x)))
    torch.testing.assert_close(model(x), expected)
    assert isinstance(StrongBaseline(5, backbone="test_resnet", bn_head=False).logit_bn, nn.Identity)


def test_unknown_backbone_error_suggests_close_names() -> None:
    with pytest.raises(ValueError, match=r"unknown timm backbone 'resnet5O'.*resnet50"):
        create_backbone("resnet5O")


def test_pretrained_path_loads_local_weights_without_network(tmp_path: Path) -> None:
    source = timm.create_model("test_resnet", num_classes=10)  # with a classifier, as a real weight file has
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    backbone = create_backbone("test_resnet", pretrained_path=str(path))
    loaded = backbone.state_dict()
    for key, value in source.state_dict().items():
        if key.startswith("fc."):
            continue
        torch.testing.assert_close(loaded[key], value)
    with pytest.raises(ValueError, match="does not exist"):
        create_backbone("test_resnet", pretrained_path=str(tmp_path / "missing.pth"))
