"""PARModule: injected optimizers that follow swapped layers, deep supervision, checkpoints."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from par_lightning.cli import main
from par_lightning.module import PARModule, merge_outputs
from tests.cli_helpers import tiny_config


def _module(**kwargs: object) -> PARModule:
    return PARModule(
        arch="tiny", backbone="test_resnet", num_attributes=4, pos_ratios=[0.2, 0.5, 0.3, 0.1], **kwargs
    )


def test_optimizer_covers_current_parameters_and_scales_head_lr() -> None:
    module = _module(optimizer=functools.partial(torch.optim.SGD, lr=0.1), head_lr_scale=10.0)
    optimizer = module.configure_optimizers()
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["backbone"]["lr"] == pytest.approx(0.1) and groups["head"]["lr"] == pytest.approx(1.0)
    covered = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert covered == {id(p) for p in module.parameters()}
    # a layer swapped in later (as compression does) is covered by the next configure_optimizers call
    module.model.classifier = nn.Sequential(
        nn.Linear(module.model.classifier.in_features, 2), nn.Linear(2, 4)
    )
    covered = {id(p) for g in module.configure_optimizers().param_groups for p in g["params"]}
    assert covered == {id(p) for p in module.parameters()}


def test_plateau_scheduler_gets_its_monitor() -> None:
    module = _module(
        lr_scheduler=functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau, mode="max"),
        scheduler_monitor="val/mA",
    )
    config = module.configure_optimizers()
    assert config["lr_scheduler"]["monitor"] == "val/mA"
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)


def test_deep_supervision_sums_losses_and_max_votes() -> None:
    module = _module(loss="bce")
    a, b = torch.randn(3, 4), torch.randn(3, 4)

    class TwoHeads(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return a, b

    module.model = TwoHeads()
    targets = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0], [1, 1, 2, 0]])
    mask = targets <= 1
    bce = nn.functional.binary_cross_entropy_with_logits
    expected = sum(((bce(h, targets.clamp(max=1), reduction="none") * mask).sum(1).mean()) for h in (a, b))
    loss = module._shared_step((torch.zeros(3, 3, 8, 8), targets), "train")
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(merge_outputs((a, b)), torch.maximum(a, b))


def test_mismatched_attribute_metadata_is_rejected() -> None:
    with pytest.raises(ValueError, match="attribute_names has 2 entries but num_attributes is 4"):
        _module(attribute_names=["a", "b"])
    with pytest.raises(ValueError, match="loss must be one of"):
        _module(loss="focal")


def test_checkpoint_loads_without_the_cli_and_with_weights_only(tmp_path: Path) -> None:
    main(["fit", "--config", str(tiny_config(tmp_path))])
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    raw = torch.load(ckpt, weights_only=True, map_location="cpu")
    assert raw["hyper_parameters"]["num_attributes"] == 26
    model = PARModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    reference = PARModule(
        **{k: v for k, v in raw["hyper_parameters"].items() if not k.startswith("_")}
    ).eval()
    reference.load_state_dict(raw["state_dict"])
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, 32, 16)).astype("float32"))
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))
