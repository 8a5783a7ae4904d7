"""``lightning predict`` on a folder of images: CSV + JSON rows, eval preprocessing, thresholds, errors.

The probabilities are checked against the module's own output on each image loaded through the
DataModule's *validation* dataset code and transform, and the decisions against those reference
probabilities, so a wrong transform, a row named by the wrong file or a threshold applied to the wrong
attribute all fail.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch import Trainer
from PIL import Image

from callbacks.prediction_writer import PredictionWriter, _merge, resolve_thresholds
from data_modules import PA100KDataModule, PARImageDataset
from data_modules.errors import CorruptImageError, DatasetNotFoundError
from data_modules.predict_folder import PredictFolderDataset, list_images
from par_lightning.cli import build_cli, main
from par_lightning.module import PARModule
from tests.cli_helpers import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
OVERLAY = REPO / "experiments" / "predict.yaml"
# relative path -> (PIL mode, (width, height)); sizes differ from the model input so resizing matters
IMAGES = {
    "a.png": ("RGBA", (20, 40)),
    "B.JPG": ("RGB", (33, 70)),
    "sub/c.jpeg": ("RGB", (16, 32)),
    "sub/deeper/d.bmp": ("RGB", (25, 50)),
    "sub/e.PNG": ("L", (18, 30)),
}
EXPECTED_ORDER = ["B.JPG", "a.png", "sub/c.jpeg", "sub/deeper/d.bmp", "sub/e.PNG"]  # sorted POSIX paths


def write_images(
    folder: Path, images: dict[str, tuple[str, tuple[int, int]]] = IMAGES, seed: int = 0
) -> None:
    rng = np.random.default_rng(seed)
    for rel, (mode, (w, h)) in images.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
        pixels = rng.integers(0, 256, (h, w, channels), dtype=np.uint8).squeeze()
        Image.fromarray(pixels, mode=mode).save(folder / rel)
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub" / "c.jpeg.txt").write_text("not an image either")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny config, an untrained checkpoint saved from it, and a folder of images."""
    tmp = tmp_path_factory.mktemp("predict")
    config = tiny_config(tmp)
    cli = build_cli(["--config", str(config)], run=False)
    cli.trainer.strategy.connect(cli.model)
    ckpt = tmp / "untrained.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    images = tmp / "images"
    write_images(images)
    return {"tmp": tmp, "config": config, "ckpt": ckpt, "images": images, "datamodule": cli.datamodule}


def reference_probs(ctx: dict[str, Any], files: list[str]) -> torch.Tensor:
    """The module's probabilities with each image loaded by the validation dataset code and transform."""
    module = PARModule.load_from_checkpoint(ctx["ckpt"], map_location="cpu").eval()
    datamodule: PA100KDataModule = ctx["datamodule"]
    datamodule.setup("validate")
    val_transform = datamodule.datasets["val"].transform
    paths = [ctx["images"] / f for f in files]
    loaded = PARImageDataset(paths, np.zeros((len(paths), 1)), val_transform)
    with torch.no_grad():
        return torch.cat([torch.sigmoid(module(loaded[i][0][None])) for i in range(len(paths))])  # type: ignore[index]


def predict(ctx: dict[str, Any], out: Path, *extra: str, folder: Path | None = None) -> None:
    """The documented command, in process, with the run folder (where the files go) moved to ``out``."""
    main(
        [
            "predict",
            "--config",
            str(ctx["config"]),
            "--config",
            str(OVERLAY),
            "--ckpt_path",
            str(ctx["ckpt"]),
            "--data.init_args.predict_dir",
            str(folder or ctx["images"]),
            "--trainer.default_root_dir",
            str(out),
            *extra,
        ]
    )


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


def test_list_images_is_recursive_case_insensitive_and_sorted(tmp_path: Path) -> None:
    write_images(tmp_path)
    (tmp_path / "x.gif").write_bytes(b"GIF89a")  # not a listed extension
    assert [p.as_posix() for p in list_images(tmp_path)] == EXPECTED_ORDER


def test_predict_writes_csv_and_json_equal_to_the_eval_path(ctx: dict[str, Any], tmp_path: Path) -> None:
    names = ctx["datamodule"].attribute_names
    ref = reference_probs(ctx, EXPECTED_ORDER)
    # the rows must be told apart for a wrong file <-> row match to fail
    assert (ref[1:] - ref[:1]).abs().amax() > 1e-4
    # thresholds at the reference median split the images both ways; the rest use default_threshold
    thresholds = {names[0]: float(ref[:, 0].median()), names[7]: float(ref[:, 7].median())}
    default = float(ref.mean())
    predict(
        ctx,
        tmp_path,
        "--trainer.callbacks.init_args.threshold",
        json.dumps(thresholds),
        "--trainer.callbacks.init_args.default_threshold",
        repr(default),
    )
    expected_thr = [thresholds.get(n, default) for n in names]
    expected_dec = (ref.double() >= torch.tensor(expected_thr, dtype=torch.float64)).int()
    assert 0 < int(expected_dec[:, 0].sum()) < len(EXPECTED_ORDER)  # the per-attribute threshold bites

    assert not (
        tmp_path / "config.yaml"
    ).exists()  # config.yaml is saved by `fit` only: a training run's stays intact
    header, rows = read_csv(tmp_path / "predictions.csv")
    assert header == ["path", *(f"prob_{n}" for n in names), *(f"pred_{n}" for n in names)]
    assert [r[0] for r in rows] == EXPECTED_ORDER
    a = len(names)
    csv_probs = torch.tensor([[float(v) for v in r[1 : 1 + a]] for r in rows], dtype=torch.float32)
    torch.testing.assert_close(csv_probs, ref, rtol=0, atol=1e-6)
    assert torch.equal(torch.tensor([[int(v) for v in r[1 + a :]] for r in rows]), expected_dec)

    doc = json.loads((tmp_path / "predictions.json").read_text())
    assert doc["attributes"] == names and doc["num_images"] == len(EXPECTED_ORDER)
    assert doc["thresholds"] == dict(zip(names, expected_thr, strict=True))
    assert doc["checkpoint"] == str(ctx["ckpt"]) and doc["predict_dir"] == str(ctx["images"].absolute())
    assert doc["skipped"] == []
    entries = doc["predictions"]
    assert [e["path"] for e in entries] == EXPECTED_ORDER
    json_probs = torch.tensor([[e["probabilities"][n] for n in names] for e in entries], dtype=torch.float32)
    torch.testing.assert_close(json_probs, ref, rtol=0, atol=1e-6)
    assert torch.equal(json_probs, csv_probs)
    assert torch.equal(torch.tensor([[e["decisions"][n] for n in names] for e in entries]), expected_dec)


def test_without_predict_dir_the_predict_split_is_written(ctx: dict[str, Any], tmp_path: Path) -> None:
    """The old behaviour stays: ``predict_split`` (test) is predicted, rows named by the sampler's indices."""
    main(
        ["predict", "--config", str(ctx["config"]), "--config", str(OVERLAY), "--ckpt_path", str(ctx["ckpt"])]
        + ["--trainer.default_root_dir", str(tmp_path)]
    )
    test_paths = [str(p) for p in ctx["datamodule"].annotation.split("test").paths]
    _, rows = read_csv(tmp_path / "predictions.csv")
    assert [r[0] for r in rows] == test_paths and len(rows) == 8
    module = PARModule.load_from_checkpoint(ctx["ckpt"], map_location="cpu").eval()
    ctx["datamodule"].setup("validate")
    loaded = PARImageDataset(test_paths, np.zeros((8, 1)), ctx["datamodule"].datasets["val"].transform)
    with torch.no_grad():
        ref = torch.sigmoid(module(torch.stack([loaded[i][0] for i in range(8)])))  # type: ignore[index]
    got = torch.tensor([[float(v) for v in r[1:27]] for r in rows], dtype=torch.float32)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
    assert json.loads((tmp_path / "predictions.json").read_text())["predict_dir"] is None


def test_corrupt_image_is_named_or_skipped(ctx: dict[str, Any], tmp_path: Path, caplog: Any) -> None:
    folder = tmp_path / "images"
    write_images(folder, {k: IMAGES[k] for k in ("a.png", "sub/c.jpeg")})
    (folder / "sub" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(CorruptImageError, match=r"broken\.jpg"):
        predict(ctx, tmp_path / "strict", folder=folder)
    with caplog.at_level(logging.WARNING, logger="data_modules"):
        predict(
            ctx,
            tmp_path / "run",
            "--data.init_args.skip_corrupt",
            "true",
            "--trainer.callbacks.init_args.output_dir",
            str(tmp_path / "skip"),
            folder=folder,
        )
    assert "broken.jpg" in caplog.text
    assert sorted(p.name for p in (tmp_path / "skip").iterdir()) == ["predictions.csv", "predictions.json"]
    doc = json.loads((tmp_path / "skip" / "predictions.json").read_text())
    assert [e["path"] for e in doc["predictions"]] == ["a.png", "sub/c.jpeg"]
    assert doc["skipped"] == ["sub/broken.jpg"]


def test_rows_stay_matched_when_a_batch_drops_an_undecodable_image(
    ctx: dict[str, Any], tmp_path: Path
) -> None:
    """Without the pre-flight check the dataset drops the image mid-batch: carried indices keep rows right."""
    folder = tmp_path / "images"
    write_images(folder)
    (folder / "a0_broken.png").write_bytes(b"\x89PNG broken")  # sorts between B.JPG and a.png
    predict(
        ctx,
        tmp_path / "out",
        "--data.init_args.skip_corrupt",
        "true",
        "--data.init_args.check_images",
        "false",
        folder=folder,
    )
    _, rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert [r[0] for r in rows] == EXPECTED_ORDER
    got = torch.tensor([[float(v) for v in r[1:27]] for r in rows], dtype=torch.float32)
    ctx_here = {**ctx, "images": folder}
    torch.testing.assert_close(got, reference_probs(ctx_here, EXPECTED_ORDER), rtol=0, atol=1e-6)
    assert json.loads((tmp_path / "out" / "predictions.json").read_text())["skipped"] == ["a0_broken.png"]


def test_empty_or_missing_folder_is_a_clear_error(ctx: dict[str, Any], tmp_path: Path) -> None:
    root = str(ctx["datamodule"].root)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("no images here")
    datamodule = PA100KDataModule(root=root, predict_dir=str(empty))
    with pytest.raises(DatasetNotFoundError, match=rf"predict_dir {empty} holds no image files"):
        datamodule.setup("predict")
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError, match=rf"predict_dir {missing} does not exist"):
        PA100KDataModule(root=root, predict_dir=str(missing))
    with pytest.raises(DatasetNotFoundError, match=r"predict_dir .*readme.txt is not a folder"):
        PA100KDataModule(root=root, predict_dir=str(empty / "sub" / "readme.txt"))


def test_threshold_errors_name_the_problem(ctx: dict[str, Any], tmp_path: Path) -> None:
    names = ["Female", "Hat", "Glasses"]
    assert resolve_thresholds({"Hat": 0.2}, 0.7, names) == {"Female": 0.7, "Hat": 0.2, "Glasses": 0.7}
    assert resolve_thresholds(0.3, 0.5, names) == dict.fromkeys(names, 0.3)
    with pytest.raises(
        ValueError, match=r"unknown attributes \['Hatt', 'Bag'\]; valid names: Female, Hat, Glasses"
    ):
        resolve_thresholds({"Hatt": 0.2, "Female": 0.5, "Bag": 0.1}, 0.5, names)
    with pytest.raises(ValueError, match=r"threshold\['Hat'\] must be a number in \[0, 1\], got 1.5"):
        PredictionWriter(threshold={"Hat": 1.5})
    with pytest.raises(ValueError, match=r"default_threshold must be a number in \[0, 1\]"):
        PredictionWriter(default_threshold=-0.1)
    # through the command: the writer checks the names against the checkpoint's attributes
    with pytest.raises(ValueError, match=r"unknown attributes \['NotAnAttribute'\]; valid names: Female, "):
        predict(ctx, tmp_path / "out", "--trainer.callbacks.init_args.threshold", "{NotAnAttribute: 0.3}")
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_draw_boxes_needs_an_alm_model() -> None:
    module = PARModule(arch="tiny", backbone="test_resnet", num_attributes=3)
    PredictionWriter().setup(Trainer(logger=False), module, "predict")  # no boxes asked: fine
    with pytest.raises(ValueError, match=r"draw_boxes needs a model with `localize`.*StrongBaseline"):
        PredictionWriter(draw_boxes=True).setup(Trainer(logger=False), module, "predict")


def test_draw_boxes_writes_one_png_per_image_for_alm(ctx: dict[str, Any], tmp_path: Path) -> None:
    config = yaml.safe_load(ctx["config"].read_text())
    config["model"]["init_args"]["arch"] = "alm_tiny"
    alm_config = tmp_path / "alm.yaml"
    alm_config.write_text(yaml.safe_dump(config, sort_keys=False))
    cli = build_cli(["--config", str(alm_config)], run=False)
    cli.trainer.strategy.connect(cli.model)
    ckpt = tmp_path / "alm.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    alm = {**ctx, "config": alm_config, "ckpt": ckpt}
    predict(alm, tmp_path / "out", "--trainer.callbacks.init_args.draw_boxes", "true")
    boxes = tmp_path / "out" / "boxes"
    drawn = sorted(p.relative_to(boxes).as_posix() for p in boxes.rglob("*.png"))
    assert drawn == sorted(f"{f}.png" for f in EXPECTED_ORDER)
    with Image.open(boxes / "sub" / "c.jpeg.png") as img:
        assert img.size == (16, 32)  # the model's input (width, height) of the tiny config
    ref = reference_probs(alm, EXPECTED_ORDER)
    _, rows = read_csv(tmp_path / "out" / "predictions.csv")
    got = torch.tensor([[float(v) for v in r[1:27]] for r in rows], dtype=torch.float32)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("datamodule", ["PETADataModule", "RAPDataModule"])  # PA-100K: the runs above
def test_every_datamodule_takes_predict_dir(datamodule: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(
            [
                "predict",
                "--model",
                "par_lightning.PARModule",
                "--data",
                f"data_modules.{datamodule}",
                "--data.init_args.predict_dir",
                "my_images/",
                "--print_config",
            ]
        )
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["init_args"]["predict_dir"] == "my_images/"


def test_folder_dataset_items_carry_their_index(tmp_path: Path) -> None:
    write_images(tmp_path)
    dataset = PredictFolderDataset(tmp_path)
    assert dataset.files == EXPECTED_ORDER
    image, index = dataset[3]  # type: ignore[misc]
    assert int(index) == 3 and index.dtype == torch.long and image.shape == (3, 50, 25)


def test_merge_drops_sampler_padding_and_sorts() -> None:
    probs = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    # rank 0 got 0, 2, 4; rank 1 got 1, 3 and 0 again (DistributedSampler pads to equal lengths)
    parts = [(torch.tensor([0, 2, 4]), probs[[0, 2, 4]]), (torch.tensor([1, 3, 0]), probs[[1, 3, 0]])]
    indices, merged = _merge(parts)
    assert indices.tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(merged, probs[:5])


@pytest.mark.slow
def test_two_process_ddp_predict_writes_every_image_once(ctx: dict[str, Any], tmp_path: Path) -> None:
    """2 CPU ranks (gloo): rank 0 gathers, drops the sampler's padding and writes; same rows as 1 process."""
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    predict(ctx, single)
    command = [sys.executable, "-m", "par_lightning", "predict", "--config", str(ctx["config"])]
    command += ["--config", str(OVERLAY), "--ckpt_path", str(ctx["ckpt"])]
    command += ["--data.init_args.predict_dir", str(ctx["images"]), "--data.init_args.eval_batch_size", "1"]
    command += ["--trainer.devices", "2", "--trainer.strategy", "ddp"]
    command += ["--trainer.default_root_dir", str(ddp)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}
    out = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    header, rows = read_csv(ddp / "predictions.csv")
    single_header, single_rows = read_csv(single / "predictions.csv")
    assert header == single_header and [r[0] for r in rows] == EXPECTED_ORDER == [r[0] for r in single_rows]
    values = torch.tensor([[float(v) for v in r[1:]] for r in rows])
    torch.testing.assert_close(
        values, torch.tensor([[float(v) for v in r[1:]] for r in single_rows]), rtol=0, atol=1e-6
    )
    doc = json.loads((ddp / "predictions.json").read_text())
    assert [e["path"] for e in doc["predictions"]] == EXPECTED_ORDER and doc["skipped"] == []
    assert sorted(p.name for p in ddp.iterdir()) == ["predictions.csv", "predictions.json"]
