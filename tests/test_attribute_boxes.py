"""Box drawing (pure functions) and the AttributeBoxes callback in a real fit (PNG + offline W&B)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torchvision.io import decode_png, read_file

from callbacks import AttributeBoxes
from par_lightning.cli import build_cli
from par_lightning.visualize import PALETTE, denormalize, draw_attribute_boxes, pick_attributes
from tests.cli_helpers import tiny_config
from tests.wandb_reader import read_history


def test_denormalize_inverts_imagenet_normalisation() -> None:
    rgb = torch.randint(0, 256, (2, 3, 4, 5)).float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    back = denormalize((rgb - mean) / std)
    assert back.dtype == torch.uint8
    assert torch.equal(back, (rgb * 255).round().to(torch.uint8))


def test_pick_attributes_fixed_or_most_probable_present() -> None:
    probs = torch.tensor([[0.9, 0.2, 0.7, 0.6], [0.1, 0.3, 0.2, 0.4]])
    assert pick_attributes(probs, max_boxes=2) == [[0, 2], [3]]  # none present: the most probable one
    assert pick_attributes(probs, max_boxes=3, fixed=[1]) == [[1], [1]]


def test_draw_attribute_boxes_puts_the_outline_where_the_box_is() -> None:
    images = torch.zeros(1, 3, 40, 20, dtype=torch.uint8)
    boxes = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.25, 0.5, 0.75, 1.0]]])  # attr 1: x 0.25..0.75, y 0.5..1
    grid = draw_attribute_boxes(images, boxes, [[1]], ["hat", "bag"], nrow=1)
    img = grid  # a single image comes back unpadded
    colour = torch.tensor([int(PALETTE[1][i : i + 2], 16) for i in (1, 3, 5)], dtype=torch.uint8)
    x1, y1, x2, y2 = round(0.25 * 19), round(0.5 * 39), round(0.75 * 19), 39
    assert torch.equal(img[:, y2, x1 + 3], colour) and torch.equal(img[:, y1 + 10, x2], colour)
    assert torch.equal(
        img[:, (y1 + y2) // 2 + 5, (x1 + x2) // 2], torch.zeros(3, dtype=torch.uint8)
    )  # inside
    assert torch.equal(img[:, 5, 2], torch.zeros(3, dtype=torch.uint8))  # outside, above the box


def test_callback_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="num_images"):
        AttributeBoxes(num_images=0)
    with pytest.raises(ValueError, match="level"):
        AttributeBoxes(level=3)


def _alm_config(tmp_path: Path, logger: str, callback_args: dict) -> Path:
    path = tiny_config(tmp_path, logger=logger)
    config = yaml.safe_load(path.read_text())
    config["model"]["init_args"].update({"arch": "alm_tiny", "backbone": "test_resnet"})
    config["trainer"]["callbacks"].append(
        {"class_path": "callbacks.AttributeBoxes", "init_args": callback_args}
    )
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_fit_writes_box_grids_to_png_and_offline_wandb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wandb

    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DIR", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    try:
        build_cli(
            ["fit", "--config", str(_alm_config(tmp_path, "wandb", {"num_images": 4, "attributes": ["Hat"]}))]
        )
    finally:
        wandb.finish()
    pngs = sorted((tmp_path / "wandb_logs").rglob("attribute_boxes/epoch_*.png"))
    assert [p.name for p in pngs] == ["epoch_000.png"]
    grid = decode_png(read_file(str(pngs[0])))
    assert grid.shape[0] == 3 and grid.shape[1] == 32 + 4 and grid.shape[2] == 4 * (16 + 2) + 2
    (run_file,) = (tmp_path / "wandb_logs" / "wandb").glob("offline-run-*/run-*.wandb")
    (row,) = [r for r in read_history(run_file) if "val/attribute_boxes/_type" in r]
    assert row["val/attribute_boxes/_type"] == "images/separated"
    assert (row["val/attribute_boxes/width"], row["val/attribute_boxes/height"]) == (
        grid.shape[2],
        grid.shape[1],
    )
    (media,) = row["val/attribute_boxes/filenames"]
    assert (run_file.parent / "files" / media).is_file()


def test_callback_refuses_models_without_localize(tmp_path: Path) -> None:
    path = tiny_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["trainer"]["callbacks"].append({"class_path": "callbacks.AttributeBoxes"})
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(ValueError, match="localize"):
        build_cli(["fit", "--config", str(path)])
