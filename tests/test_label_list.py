"""ALM-style label lists (datasets spec §6): the pure parser and label-list mode of the three DataModules.

The tiny lists are written from the spec: ``<image path> <l_0> ... <l_{K-1}>``, single spaces, LF; PETA
lines end in one trailing space; the RAP list keeps value 2 in column 0.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data_modules.attributes import PA100K_ATTRIBUTES, PETA_EVAL_ATTRIBUTES
from data_modules.errors import DatasetFormatError, DatasetNotFoundError, MissingImageError
from data_modules.label_list import parse_label_lists
from data_modules.pa100k import PA100KDataModule
from data_modules.peta import PETADataModule
from data_modules.rap import RAP1_EVAL_ATTRIBUTES, RAPDataModule

H, W = 32, 16
DM_KW = {"batch_size": 2, "num_workers": 0, "height": H, "width": W, "pad": 2}


def _image(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (20, 10, 3), dtype=np.uint8)).save(path)


def _write(path: Path, names: list[str], labels: np.ndarray, trailing: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [" ".join([n, *map(str, row)]) + trailing for n, row in zip(names, labels.tolist(), strict=True)]
    path.write_bytes(("\n".join(lines) + "\n").encode("ascii"))


def _labels(n: int, k: int, seed: int) -> np.ndarray:
    y = np.random.default_rng(seed).integers(0, 2, (n, k))
    y[0] = 1  # every attribute has a positive
    y[-1] = 0
    return y


def _pa100k(root: Path, n_train: int = 5, n_test: int = 3, images: bool = True):
    """pa-100k/train_val.txt + test.txt; images ``090001.jpg`` ... directly under ``root``."""
    names = {
        "train": [f"{i:06d}.jpg" for i in range(1, n_train + 1)],
        "test": [f"{i:06d}.jpg" for i in range(90001, 90001 + n_test)],
    }
    labels = {"train": _labels(n_train, 26, 1), "test": _labels(n_test, 26, 2)}
    _write(root / "train_val.txt", names["train"], labels["train"])
    _write(root / "test.txt", names["test"], labels["test"])
    if images:
        for i, n in enumerate(names["train"] + names["test"]):
            _image(root / n, i)
    return names, labels


def _peta(root: Path):
    names = {
        "train": [f"PETA_dataset/CUHK/archive/{i:04d}.png" for i in range(1, 5)],
        "test": ["PETA_dataset/CUHK/archive/0005.png", "PETA_dataset/3DPeS/archive/100_1.bmp"],
    }
    labels = {"train": _labels(4, 35, 3), "test": _labels(2, 35, 4)}
    _write(root / "PETA_train_list.txt", names["train"], labels["train"], trailing=" ")
    _write(root / "PETA_test_list.txt", names["test"], labels["test"], trailing=" ")
    for i, n in enumerate(names["train"] + names["test"]):
        _image(root / n, i)
    return names, labels


def _rap(root: Path):
    names = {
        "train": [
            f"CAM01_2014-02-15_2014021511{i:02d}-2014021511{i:02d}_tarid{i}_frame1_line1.png"
            for i in range(5)
        ],
        "test": [
            f"CAM02_2014-02-15_2014021512{i:02d}-2014021512{i:02d}_tarid{i}_frame1_line1.png"
            for i in range(3)
        ],
    }
    labels = {"train": _labels(5, 51, 5), "test": _labels(3, 51, 6)}
    labels["train"][1, 0] = 2  # the RAP list keeps the raw value 2 in column 0
    labels["test"][0, 0] = 2
    _write(root / "train.txt", names["train"], labels["train"])
    _write(root / "test.txt", names["test"], labels["test"])
    for i, n in enumerate(names["train"] + names["test"]):
        _image(root / n, i)
    return names, labels


# --- parser ---------------------------------------------------------------------------------------


def test_parse_pa100k_lists(tmp_path):
    names, labels = _pa100k(tmp_path)
    ann = parse_label_lists(
        {"train": tmp_path / "train_val.txt", "test": tmp_path / "test.txt"}, tmp_path, PA100K_ATTRIBUTES
    )
    assert ann.attribute_names == PA100K_ATTRIBUTES
    assert set(ann.image_paths) == {"train", "test"}  # no val list -> no val split
    assert ann.num_images("train") == 5 and ann.num_images("test") == 3
    assert ann.num_images("trainval") == 5
    assert [p.name for p in ann.image_paths["test"]] == names["test"]
    assert all(p.is_absolute() for p in ann.image_paths["train"])
    np.testing.assert_array_equal(ann.labels["train"], labels["train"])
    assert ann.labels["test"].dtype == np.int8


def test_parse_peta_lists_trailing_space_and_subfolders(tmp_path):
    names, labels = _peta(tmp_path)
    raw = (tmp_path / "PETA_train_list.txt").read_bytes()
    assert raw.split(b"\n")[0].endswith(b" ") and b"\r" not in raw
    ann = parse_label_lists(
        {"train": tmp_path / "PETA_train_list.txt", "test": str(tmp_path / "PETA_test_list.txt")},
        tmp_path,
        PETA_EVAL_ATTRIBUTES,
    )
    assert ann.num_attributes == 35
    assert ann.image_paths["test"][1] == (tmp_path / "PETA_dataset/3DPeS/archive/100_1.bmp").absolute()
    np.testing.assert_array_equal(ann.labels["test"], labels["test"])


def test_parse_rap_list_value_two(tmp_path):
    _, labels = _rap(tmp_path)
    lists = {"train": tmp_path / "train.txt", "test": tmp_path / "test.txt"}
    ann = parse_label_lists(lists, tmp_path, RAP1_EVAL_ATTRIBUTES, allowed=(0, 1, 2))
    assert ann.num_attributes == 51 and ann.labels["train"][1, 0] == 2
    np.testing.assert_array_equal(ann.labels["test"], labels["test"])
    with pytest.raises(
        DatasetFormatError,
        match=r"train\.txt: line 2: label 0 \('Female'\) should be one of \[0, 1\], found 2",
    ):
        parse_label_lists(lists, tmp_path, RAP1_EVAL_ATTRIBUTES)


def test_parse_with_val_list_and_crlf_and_blank_tail(tmp_path):
    names, labels = _pa100k(tmp_path)
    val = tmp_path / "val.txt"
    val.write_bytes(b"000001.jpg " + b" ".join([b"1"] * 26) + b" \r\n\n\n")
    ann = parse_label_lists(
        {"train": tmp_path / "train_val.txt", "val": val, "test": tmp_path / "test.txt"},
        tmp_path,
        PA100K_ATTRIBUTES,
    )
    assert ann.num_images("val") == 1 and ann.num_images("trainval") == 6


# --- parser errors --------------------------------------------------------------------------------


def _bad(tmp_path: Path, body: str, k: int = 3, **kwargs):
    path = tmp_path / "list.txt"
    path.write_text(body)
    for name in ("a.jpg", "b.jpg"):
        _image(tmp_path / name)
    return parse_label_lists({"train": path}, tmp_path, ["x", "y", "z"][:k], **kwargs)


def test_error_wrong_number_of_labels(tmp_path):
    with pytest.raises(DatasetFormatError, match=r"list\.txt: line 2: expected 3 labels .*found 2"):
        _bad(tmp_path, "a.jpg 0 1 0\nb.jpg 0 1\n")


def test_error_non_integer_label(tmp_path):
    with pytest.raises(
        DatasetFormatError, match=r"line 1: label 1 \('y'\) should be an integer in \[0, 1\], found '0\.5'"
    ):
        _bad(tmp_path, "a.jpg 0 0.5 0\n")


def test_error_value_outside_allowed(tmp_path):
    with pytest.raises(
        DatasetFormatError, match=r"line 2: label 2 \('z'\) should be one of \[0, 1\], found 3"
    ):
        _bad(tmp_path, "a.jpg 0 1 0\nb.jpg 1 1 3\n")
    with pytest.raises(DatasetFormatError, match=r"found -1"):
        _bad(tmp_path, "a.jpg 0 -1 0\n")


def test_error_duplicate_image(tmp_path):
    with pytest.raises(DatasetFormatError, match=r"image 'a\.jpg' is listed twice, on lines 1 and 3"):
        _bad(tmp_path, "a.jpg 0 1 0\nb.jpg 0 1 0\na.jpg 1 1 1\n")


def test_error_empty_file(tmp_path):
    with pytest.raises(DatasetFormatError, match=r"list\.txt: the file is empty"):
        _bad(tmp_path, "")
    with pytest.raises(DatasetFormatError, match=r"the file is empty"):
        _bad(tmp_path, "\n \n")


def test_error_blank_line_in_the_middle(tmp_path):
    with pytest.raises(DatasetFormatError, match=r"line 2: .*found an empty line"):
        _bad(tmp_path, "a.jpg 0 1 0\n\nb.jpg 0 1 0\n")


def test_error_missing_list_file_and_bad_split(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"nope\.txt does not exist"):
        parse_label_lists({"train": tmp_path / "nope.txt"}, tmp_path, ["x"])
    with pytest.raises(ValueError, match=r"unknown split name"):
        parse_label_lists({"trainval": tmp_path / "nope.txt"}, tmp_path, ["x"])


def test_missing_images_error_vs_skip(tmp_path, caplog):
    body = "".join(f"m{i:02d}.jpg 0 1 0\n" for i in range(12)) + "a.jpg 1 0 1\n"
    with pytest.raises(MissingImageError, match=r"12 of 13 listed image\(s\) do not exist") as err:
        _bad(tmp_path, body)
    msg = str(err.value)
    assert "m09.jpg" in msg and "m10.jpg" not in msg and "and 2 more" in msg
    with caplog.at_level(logging.WARNING, logger="data_modules.label_list"):
        ann = _bad(tmp_path, body, missing="skip")
    assert ann.num_images("train") == 1 and ann.image_paths["train"][0].name == "a.jpg"
    np.testing.assert_array_equal(ann.labels["train"], [[1, 0, 1]])
    assert re.search(r"skipping 12 of 13 listed image", caplog.text)


# --- DataModules in label-list mode ---------------------------------------------------------------


def _check_dm(dm, num_attributes: int, train_labels: np.ndarray) -> None:
    assert dm.num_attributes == num_attributes
    np.testing.assert_allclose(dm.pos_ratios, (train_labels == 1).mean(axis=0))
    assert dm.splits["val"] == "test"  # no val list -> validate on test
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 3, H, W) and y.shape == (2, num_attributes) and y.dtype == torch.float32
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape[1:] == (3, H, W)


def test_pa100k_datamodule_label_lists(tmp_path, caplog):
    _, labels = _pa100k(tmp_path)
    with caplog.at_level(logging.INFO):
        dm = PA100KDataModule(
            root=str(tmp_path), label_lists={"train": "train_val.txt", "test": "test.txt"}, **DM_KW
        )
    assert "no val split; using 'test'" in caplog.text
    dm.prepare_data()  # must not look for annotation.mat
    assert dm.attribute_names == list(PA100K_ATTRIBUTES)
    _check_dm(dm, 26, labels["train"])
    with pytest.raises(ValueError, match="synthesize"):
        PA100KDataModule(root=str(tmp_path), label_lists={"train": "train_val.txt"}, synthesize=True)


def test_peta_datamodule_label_lists(tmp_path):
    _, labels = _peta(tmp_path)
    lists = {"train": "PETA_train_list.txt", "test": str(tmp_path / "PETA_test_list.txt")}  # rel + abs
    dm = PETADataModule(root=str(tmp_path), label_lists=lists, **DM_KW)
    assert dm.attribute_names == list(PETA_EVAL_ATTRIBUTES)
    _check_dm(dm, 35, labels["train"])
    with pytest.raises(ValueError, match="35 evaluated attributes"):
        PETADataModule(root=str(tmp_path), label_lists=lists, attributes="all")


@pytest.mark.parametrize("uncertain", ["negative", "ignore"])
def test_rap_datamodule_label_lists(tmp_path, uncertain):
    _, labels = _rap(tmp_path)
    dm = RAPDataModule(
        root=str(tmp_path),
        label_lists={"train": "train.txt", "test": "test.txt"},
        uncertain=uncertain,
        **DM_KW,
    )
    expected = labels["train"].copy()
    if uncertain == "negative":
        expected[expected == 2] = 0
    np.testing.assert_array_equal(dm.annotation.labels["train"], expected)
    assert dm.annotation.labels["test"][0, 0] == (2 if uncertain == "ignore" else 0)
    _check_dm(dm, 51, labels["train"])


def test_rap_v2_label_lists_rejected(tmp_path):
    with pytest.raises(ValueError, match="ALM has no RAP v2 label list"):
        RAPDataModule(root=str(tmp_path), version=2, label_lists={"train": "train.txt", "test": "test.txt"})


def test_datamodule_missing_image_in_list(tmp_path):
    _pa100k(tmp_path)
    (tmp_path / "000002.jpg").unlink()
    dm = PA100KDataModule(
        root=str(tmp_path), label_lists={"train": "train_val.txt", "test": "test.txt"}, **DM_KW
    )
    with pytest.raises(MissingImageError, match=r"1 of 5 listed image\(s\) do not exist.*000002\.jpg"):
        _ = dm.num_attributes


def test_readme_label_list_command_line(tmp_path):
    """The README's label-list recipe: baseline config, PETA DataModule, lists given as a YAML mapping."""
    from par_lightning.cli import build_cli

    _peta(tmp_path)
    lists = sorted(p.name for p in tmp_path.glob("*.txt"))
    train, test = (n for n in lists if "train" in n), (n for n in lists if "test" in n)
    cli = build_cli(
        [
            "--config", str(Path(__file__).resolve().parents[1] / "experiments" / "baseline_peta.yaml"),
            "--data.init_args.root", str(tmp_path),
            "--data.init_args.label_lists", f"{{train: {next(train)}, test: {next(test)}}}",
            "--trainer.logger", "false",
            "--trainer.default_root_dir", str(tmp_path / "run"),
        ],
        run=False,
    )  # fmt: skip
    assert cli.datamodule.num_attributes == 35 == cli.model.hparams.num_attributes
    assert cli.datamodule.splits["val"] == "test"
