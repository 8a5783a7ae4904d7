"""ALM on BN-Inception (parameter parity with the reference) and on other timm backbone families."""

from __future__ import annotations

import pytest
import torch

from par_lightning.models import ALM, create_model, list_models


@pytest.mark.parametrize(("n", "expected"), [(26, 14_021_760), (35, 15_147_120), (51, 17_147_760)])
def test_bninception_alm_parameter_parity_with_reference(n: int, expected: int) -> None:
    """Spec alm.md 1.4: 10,770,720 + 125,040 * N parameters, for the batched and the loop heads alike."""
    assert expected == 10_770_720 + 125_040 * n
    for heads in ("batched", "loop"):
        model = ALM(n, backbone="bninception", heads=heads)  # type: ignore[arg-type]
        assert sum(p.numel() for p in model.parameters()) == expected


def test_bninception_alm_parts_match_reference_breakdown() -> None:
    """Spec alm.md 5.1 (N=26): backbone, laterals, the three ALM levels and the main classifier."""
    model = ALM(26, backbone="bninception")

    def count(prefix: str) -> int:
        return sum(p.numel() for name, p in model.named_parameters() if name.startswith(prefix))

    assert count("backbone.") == 10_270_240
    assert count("pyramid.") == 500_480
    assert [count(f"heads.{i}.") for i in range(3)] == [2_038_114, 932_802, 253_474]
    assert count("classifier.") == 26_650


def test_bninception_alm_shapes_at_reference_input() -> None:
    model = ALM(4, backbone="bninception").eval()
    with torch.no_grad():
        taps = model.backbone(torch.zeros(1, 3, 256, 128))
        pyramid = model.pyramid(taps)
    assert [tuple(t.shape[1:]) for t in taps] == [(320, 32, 16), (608, 16, 8), (1024, 8, 4)]
    assert [tuple(p.shape[1:]) for p in pyramid] == [(768, 32, 16), (512, 16, 8), (256, 8, 4)]


def _forward_backward(model: torch.nn.Module, size: tuple[int, int]) -> None:
    out = model(torch.randn(2, 3, *size))
    heads = [out] if isinstance(out, torch.Tensor) else list(out)
    torch.stack(heads).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)  # type: ignore[union-attr]


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_trains_at_small_input(name: str) -> None:
    kwargs = {"backbone": "test_resnet"} if name in ("alm", "baseline") else {}
    _forward_backward(create_model(name, num_attributes=5, **kwargs), (64, 32))


def test_bninception_alm_trains_at_small_input() -> None:
    _forward_backward(ALM(3, backbone="bninception", pyramid_channels=32), (64, 32))


@pytest.mark.parametrize(
    "backbone",
    # the families named by the issue, each through its smallest timm member
    ["resnet18", "test_resnet", "mobilenetv3_small_050", "test_efficientnet", "test_convnext"],
)
def test_alm_on_timm_backbone_families(backbone: str) -> None:
    model = ALM(3, backbone=backbone, pyramid_channels=32)
    _forward_backward(model, (64, 32))
    with torch.no_grad():
        assert model.localize(torch.randn(1, 3, 96, 48)).shape == (1, 3, 3, 4)  # other input sizes work


@pytest.mark.parametrize("heads", ["batched", "loop"])
def test_bninception_alm_macs_match_reference(heads: str) -> None:
    """Spec alm.md 5.2: conv + linear MACs per 3x256x128 image = 1,396,998,144 + 123,392 * N."""
    from par_lightning.compression import count_module_costs

    n = 26
    costs = count_module_costs(ALM(n, backbone="bninception", heads=heads), torch.zeros(1, 3, 256, 128))  # type: ignore[arg-type]
    assert sum(m for _, m in costs.values()) == 1_396_998_144 + 123_392 * n
