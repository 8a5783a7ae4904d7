"""RAP v1 / v2 parsers and RAPDataModule, on tiny real-format files written from the spec in tmp_path."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import scipy.io
import torch

from data_modules.errors import DatasetFormatError, DatasetNotFoundError
from data_modules.rap import (
    RAP1_EVAL_ATTRIBUTES,
    RAP2_EVAL_ATTRIBUTES,
    RAPDataModule,
    parse_rap_v1,
    parse_rap_v2,
)

try:
    from helpers_rap import RAP1_ENG, RAP2_EVAL, cell, write_rap_v1, write_rap_v2
except ImportError:  # tests/ turned into a package
    from tests.helpers_rap import RAP1_ENG, RAP2_EVAL, cell, write_rap_v1, write_rap_v2

H, W = 64, 32


def _dm(root, **kwargs) -> RAPDataModule:
    defaults = {"batch_size": 4, "num_workers": 0, "height": H, "width": W, "pad": 4}
    return RAPDataModule(root=str(root), **{**defaults, **kwargs})


@pytest.fixture
def v1(tmp_path):
    return write_rap_v1(tmp_path / "rap1")


@pytest.fixture
def v2(tmp_path):
    return write_rap_v2(tmp_path / "rap2")


def _negative(labels):
    out = labels.copy()
    out[out == 2] = 0
    return out


# --- parsers ------------------------------------------------------------------------------------


def test_spec_constants_match_helper():
    assert tuple(RAP1_ENG[:51]) == RAP1_EVAL_ATTRIBUTES
    assert tuple(RAP2_EVAL) == RAP2_EVAL_ATTRIBUTES


@pytest.mark.parametrize("partition", [0, 3])
def test_parse_v1(v1, partition):
    ann = parse_rap_v1(v1.mat_path, v1.image_dir, partition=partition)
    assert ann.attribute_names == tuple(RAP1_ENG[:51]) and ann.num_attributes == 51
    assert ann.source == v1.mat_path.absolute()
    assert set(ann.image_paths) == {"train", "test"}  # no val: trainval == train (no test leak)
    for split, n in [("train", 15), ("test", 5)]:
        paths, labels = ann.split(split)
        ix = v1.splits[partition][split]
        assert len(paths) == n and [p.name for p in paths] == [v1.names[i] for i in ix]
        assert {p.parent for p in paths} == {v1.image_dir.absolute()}
        assert labels.dtype == np.int8 and labels.shape == (n, 51)
        np.testing.assert_array_equal(labels, _negative(v1.labels[ix]))
    assert ann.split("trainval").paths == ann.split("train").paths


def test_parse_v2(v2):
    ann = parse_rap_v2(v2.mat_path, v2.image_dir)
    assert ann.attribute_names == tuple(RAP2_EVAL) and ann.num_attributes == 54
    assert set(ann.image_paths) == {"train", "val", "test"}
    for split, n in [("train", 14), ("val", 5), ("test", 5)]:
        paths, labels = ann.split(split)
        ix = v2.splits[0][split]
        assert len(paths) == n and [p.name for p in paths] == [v2.names[i] for i in ix]
        np.testing.assert_array_equal(labels, _negative(v2.labels[ix]))
    assert ann.num_images("trainval") == 19
    ann4 = parse_rap_v2(v2.mat_path, v2.image_dir, partition=4)
    assert [p.name for p in ann4.image_paths["test"]] == [v2.names[i] for i in v2.splits[4]["test"]]


@pytest.mark.parametrize("version", [1, 2])
def test_uncertain_negative_vs_ignore(v1, v2, version):
    tiny, parse = (v1, parse_rap_v1) if version == 1 else (v2, parse_rap_v2)
    assert (tiny.labels == 2).any()
    ignore = parse(tiny.mat_path, tiny.image_dir, uncertain="ignore")
    negative = parse(tiny.mat_path, tiny.image_dir, uncertain="negative")
    all_ignore = np.concatenate([ignore.labels[s] for s in ignore.labels])
    all_negative = np.concatenate([negative.labels[s] for s in negative.labels])
    order = np.concatenate([tiny.splits[0][s] for s in ignore.labels])
    np.testing.assert_array_equal(all_ignore, tiny.labels[order])  # 2 kept
    assert (all_ignore == 2).sum() == (tiny.labels == 2).sum()
    np.testing.assert_array_equal(all_negative, _negative(tiny.labels[order]))  # 2 -> 0
    assert not (all_negative == 2).any()
    if version == 1:
        assert set(np.argwhere(all_ignore == 2)[:, 1].tolist()) == {0}  # only Female
    with pytest.raises(ValueError, match=r"uncertain='drop'.*\['negative', 'ignore'\]"):
        parse(tiny.mat_path, tiny.image_dir, uncertain="drop")


def test_v1_val_carve_out_is_deterministic_and_disjoint(v1):
    a = parse_rap_v1(v1.mat_path, v1.image_dir, val_fraction=0.2, val_seed=7)
    b = parse_rap_v1(v1.mat_path, v1.image_dir, val_fraction=0.2, val_seed=7)
    c = parse_rap_v1(v1.mat_path, v1.image_dir, val_fraction=0.2, val_seed=8)
    assert a.num_images("train") == 12 and a.num_images("val") == 3 and a.num_images("test") == 5
    assert a.image_paths == b.image_paths
    assert a.image_paths["val"] != c.image_paths["val"]
    train, val, test = (set(a.image_paths[s]) for s in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    full = parse_rap_v1(v1.mat_path, v1.image_dir)
    assert train | val == set(full.image_paths["train"])
    with pytest.raises(ValueError, match="val_fraction"):
        parse_rap_v1(v1.mat_path, v1.image_dir, val_fraction=1.0)
    with pytest.raises(ValueError, match="at least one image"):
        parse_rap_v1(v1.mat_path, v1.image_dir, val_fraction=0.01)


def _check(exc_info, mat_path, patterns):
    message = str(exc_info.value)
    assert str(mat_path) in message, message
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)


V1_BAD = [
    ({"variable": "peta"}, ["'RAP_annotation'", r"\['peta'\]", "PETA"]),
    ({"drop": ("imagesname", "attribute_exp")}, ["missing field 'RAP_annotation.imagesname'", "position 5"]),
    (
        {"partition_overrides": {"test": np.array([[1, 2, 99]], np.int32)}},
        [r"partion\[0\]\.test", r"\[1, 20\]", r"\[1, 99\]"],
    ),
    (
        {"partition_overrides": {"train": np.arange(0, 15, dtype=np.int32).reshape(1, -1)}},
        [r"partion\[0\]\.train", "0-based", "1-based", "add 1"],
    ),
    ({"overrides": {"label": np.zeros((20, 50), np.int32)}}, ["'RAP_annotation.label'", "50 columns", "92"]),
    (
        {"overrides": {"imagesname": cell(["CAM01_a.png"] * 2 + [f"x{i}.png" for i in range(18)])}},
        ["imagesname", "duplicated", "CAM01_a.png"],
    ),
    ({"overrides": {"label": np.full((20, 92), 3, np.int32)}}, [r"label\[:, 0:51\]", r"\[0, 1, 2\]"]),
    ({"overrides": {"imagesname": cell([f"x{i}.png" for i in range(19)])}}, ["19 images", "20 rows"]),
]


@pytest.mark.parametrize(
    ("kwargs", "patterns"),
    V1_BAD,
    ids=["variable", "missing-field", "index-range", "zero-based", "columns", "duplicates", "values", "rows"],
)
def test_v1_bad_annotation_gives_clear_error(tmp_path, kwargs, patterns):
    tiny = write_rap_v1(tmp_path / "r", images=False, **kwargs)
    with pytest.raises(DatasetFormatError) as info:
        parse_rap_v1(tiny.mat_path, tiny.image_dir)
    _check(info, tiny.mat_path, patterns)


def test_partition_out_of_range(v1, v2):
    with pytest.raises(DatasetFormatError) as info:
        parse_rap_v1(v1.mat_path, v1.image_dir, partition=5)
    _check(info, v1.mat_path, ["partition=5", "5 partitions", r"0\.\.4"])
    with pytest.raises(DatasetFormatError) as info:
        parse_rap_v2(v2.mat_path, v2.image_dir, partition=-1)
    _check(info, v2.mat_path, ["partition=-1", "partition_attribute", r"0\.\.4"])


def test_version_mismatch_is_explained(v1, v2):
    with pytest.raises(DatasetFormatError, match=r"RAP v1 layout.*set version=1"):
        parse_rap_v2(v1.mat_path, v1.image_dir)
    with pytest.raises(DatasetFormatError, match=r"RAP v2 layout.*set version=2"):
        parse_rap_v1(v2.mat_path, v2.image_dir)


V2_BAD = [
    (
        {"drop": ("partition_attribute", "person_identity", "partition_reid")},
        ["partition_attribute", "missing"],
    ),
    (
        {"overrides": {"selected_attribute": np.arange(0, 54, dtype=np.int32).reshape(1, 54)}},
        ["selected_attribute", "0-based"],
    ),
    (
        {"overrides": {"selected_attribute": np.array([[1, 2, 200]], np.int32)}},
        ["selected_attribute", r"\[1, 152\]"],
    ),
    (
        {"partition_overrides": {"val_index": np.array([[3, 25]], np.uint32)}},
        [r"partition_attribute\[0\]\.val_index", r"\[1, 24\]"],
    ),
    ({"overrides": {"data": np.zeros((24, 120), np.int32)}}, ["'RAP_annotation.data'", "120 columns", "152"]),
    ({"overrides": {"name": cell(["same.png"] * 24)}}, ["'RAP_annotation.name'", "duplicated"]),
]


@pytest.mark.parametrize(
    ("kwargs", "patterns"),
    V2_BAD,
    ids=["missing-field", "zero-based", "selected-range", "index-range", "columns", "dups"],
)
def test_v2_bad_annotation_gives_clear_error(tmp_path, kwargs, patterns):
    tiny = write_rap_v2(tmp_path / "r", images=False, **kwargs)
    with pytest.raises(DatasetFormatError) as info:
        parse_rap_v2(tiny.mat_path, tiny.image_dir)
    _check(info, tiny.mat_path, patterns)


def test_v2_missing_field_uses_position_fallback(tmp_path, caplog):
    # a renamed field at its documented position still parses (spec: by name, positional fallback)
    tiny = write_rap_v2(tmp_path / "r", images=False)
    raw = scipy.io.loadmat(tiny.mat_path)["RAP_annotation"]
    fields = {n: raw[n][0, 0] for n in raw.dtype.names}
    fields["names_renamed"] = fields.pop("name")
    reordered = {"names_renamed": fields.pop("names_renamed"), **fields}
    scipy.io.savemat(tiny.mat_path, {"RAP_annotation": reordered})
    with caplog.at_level(logging.WARNING, logger="data_modules"):
        ann = parse_rap_v2(tiny.mat_path, tiny.image_dir)
    assert "no field 'name'" in caplog.text
    assert [p.name for p in ann.image_paths["test"]] == [tiny.names[i] for i in tiny.splits[0]["test"]]


def test_v2_non_png_stored_name_falls_back_to_png(tmp_path):
    tiny = write_rap_v2(tmp_path / "r")
    stored = [n[:-3] + "jpg" for n in tiny.names]
    scipy_names = cell(stored)
    tiny2 = write_rap_v2(tmp_path / "r", overrides={"name": scipy_names}, images=False)
    ann = parse_rap_v2(tiny2.mat_path, tiny.image_dir)
    assert all(p.suffix == ".png" and p.is_file() for p in ann.image_paths["train"])


# --- DataModule ---------------------------------------------------------------------------------


def test_datamodule_v1(v1):
    dm = _dm(v1.root, train_split="trainval")
    assert dm.num_attributes == 51 and dm.attribute_names == list(RAP1_ENG[:51])
    assert dm.splits["val"] == "test"  # no val split in RAP v1 → validate on test (standard protocol)
    ref = _negative(v1.labels[v1.splits[0]["train"]])
    assert np.allclose(dm.pos_ratios, (ref == 1).mean(0))
    dm.setup("fit")
    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, H, W) and targets.shape == (4, 51) and targets.dtype == torch.float32
    val = torch.cat([b[1] for b in dm.val_dataloader()]).numpy()
    np.testing.assert_array_equal(val, _negative(v1.labels[v1.splits[0]["test"]]))
    dm.setup("test")
    assert len(dm.test_dataloader().dataset) == 5


def test_datamodule_v1_val_fraction_and_ignore(v1):
    dm = _dm(v1.root, val_fraction=0.2, uncertain="ignore", partition=2)
    assert dm.splits["val"] == "val"
    dm.setup("validate")
    assert len(dm.val_dataloader().dataset) == 3
    assert (np.concatenate(list(dm.annotation.labels.values())) == 2).any()


def test_datamodule_v2(v2):
    dm = _dm(v2.root, version=2, uncertain="ignore")
    assert dm.num_attributes == 54 and dm.attribute_names == RAP2_EVAL
    dm.setup("fit")
    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, H, W) and targets.shape == (4, 54)
    val = torch.cat([b[1] for b in dm.val_dataloader()]).numpy()
    np.testing.assert_array_equal(val, v2.labels[v2.splits[0]["val"]])


def test_datamodule_explicit_paths(v1, tmp_path):
    dm = _dm(tmp_path / "elsewhere", mat_path=str(v1.mat_path), image_dir=str(v1.image_dir))
    assert dm.num_attributes == 51
    with pytest.raises(DatasetNotFoundError, match=r"nope\.mat \(mat_path\) does not exist"):
        _ = _dm(v1.root, mat_path=str(tmp_path / "nope.mat")).num_attributes


def test_bad_constructor_args():
    with pytest.raises(ValueError, match=r"version=3.*\[1, 2\]"):
        RAPDataModule(version=3)
    with pytest.raises(ValueError, match=r"uncertain='maybe'.*'negative', 'ignore'"):
        RAPDataModule(uncertain="maybe")
    with pytest.raises(ValueError, match="RAP v1 only"):
        RAPDataModule(version=2, val_fraction=0.1)
    with pytest.raises(ValueError, match="partition"):
        RAPDataModule(partition=-1)


def test_missing_root_and_files(tmp_path, v1):
    with pytest.raises(DatasetNotFoundError) as info:
        _ = _dm(tmp_path / "nowhere").num_attributes
    message = str(info.value)
    assert "does not exist" in message and "RAP_dataset" in message and "RAP_annotation.mat" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "PETA.mat").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match=r"No RAP v2 annotation.*looks like PETA"):
        _ = _dm(empty, version=2).num_attributes
    (empty / "PETA.mat").unlink()
    (empty / "annotation.mat").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match="looks like PA-100K"):
        _ = _dm(empty).num_attributes
    for p in sorted(v1.image_dir.iterdir()):
        p.unlink()
    v1.image_dir.rmdir()
    with pytest.raises(DatasetNotFoundError, match=r"image folder .*RAP_dataset does not exist"):
        _ = _dm(v1.root).num_attributes


def test_root_level_mat_is_found(tmp_path):
    tiny = write_rap_v2(tmp_path / "r")
    tiny.mat_path.rename(tiny.root / "RAP_annotation.mat")
    assert _dm(tiny.root, version=2).num_attributes == 54
