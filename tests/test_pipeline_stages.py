"""Block-level prefix cache: a timm features_only backbone's blocks are replayed one by one, scores unchanged."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from par_lightning.compression import SearchOptions, pipeline_stages, score_layers, select_layers
from par_lightning.compression.prefix_cache import capture_outputs, replay_outputs

pytestmark = pytest.mark.usefixtures("one_thread")


class FeatNet(nn.Module):
    """A timm FeatureListNet backbone, then a linear head on the pooled last feature map."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = timm.create_model("test_resnet", features_only=True, out_indices=(2, 3))
        self.head = nn.Linear(self.backbone.feature_info.channels()[-1], 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[-1].mean((2, 3)))


def _loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(model(batch[0]), batch[1])


def test_pipeline_stages_lists_backbone_blocks_in_order_then_the_other_parts() -> None:
    model = FeatNet()
    stages = pipeline_stages(model, parts=("backbone", "head", "missing"))
    children = [f"backbone.{n}" for n, _ in model.backbone.named_children()]
    assert stages == (*children, "head")
    assert pipeline_stages(nn.Sequential(nn.Linear(2, 2))) == ()


def test_block_replay_gives_the_same_scores_as_full_passes() -> None:
    torch.manual_seed(0)
    model = FeatNet().double()
    gen = torch.Generator().manual_seed(1)
    batches = [
        (torch.randn(4, 3, 32, 32, generator=gen, dtype=torch.float64), torch.rand(4, 4, generator=gen, dtype=torch.float64).round())
        for _ in range(2)
    ]  # fmt: skip
    targets = {
        n: m
        for n, m in select_layers(model, min_params=1).targets.items()
        if n.startswith(("backbone.layer3", "backbone.layer4", "head"))
    }
    assert len(targets) >= 3
    opts = dict(grid_steps=2, stop_below=None, als_iters=15, epc_sweeps=2)
    plain, _ = score_layers(model, _loss, batches, targets, batches[0][0][:1], SearchOptions(**opts))
    stages = pipeline_stages(model)
    cached, _ = score_layers(
        model, _loss, batches, targets, batches[0][0][:1], SearchOptions(**opts, stages=stages)
    )
    for name in targets:
        assert [c.score for c in cached[name].candidates] == pytest.approx(
            [c.score for c in plain[name].candidates], abs=1e-10
        ), name


def test_an_in_place_change_downstream_does_not_alter_the_cache() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    batches = [(torch.randn(2, 3), None), (torch.randn(2, 3), None)]
    cache = capture_outputs(model, lambda m, b: m(b[0]).sum(), batches, ["0"])
    saved = [t.clone() for t in cache["0"]]
    with replay_outputs(model, cache):
        for _ in range(2):
            for x, _ in batches:
                model(x).mul_(
                    3.0
                )  # ReLU's output is the replayed tensor for a 1-module prefix... and in place
                model[0](x).add_(1.0)  # the replayed module's output itself, changed in place
    for got, want in zip(cache["0"], saved, strict=True):
        assert torch.equal(got, want)
