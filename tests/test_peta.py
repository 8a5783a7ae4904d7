"""PETA parser and PETADataModule, on tiny real-format ``PETA.mat`` files in tmp_path."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import scipy.io
import torch

from data_modules.attributes import PETA_EVAL_ATTRIBUTES
from data_modules.errors import DatasetFormatError, DatasetNotFoundError, MissingImageError
from data_modules.peta import PETADataModule, parse_peta

try:
    from helpers_pa100k import write_pa100k
    from helpers_peta import ALL_NAMES, EVAL_NAMES, cell, write_peta
except ImportError:  # tests/ turned into a package
    from tests.helpers_pa100k import write_pa100k
    from tests.helpers_peta import ALL_NAMES, EVAL_NAMES, cell, write_peta

H, W = 64, 32


def _dm(root, **kwargs) -> PETADataModule:
    defaults = {"batch_size": 4, "num_workers": 0, "height": H, "width": W, "pad": 4}
    return PETADataModule(root=str(root), **{**defaults, **kwargs})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_peta(tmp_path_factory.mktemp("peta") / "PETA")


def _format_error(tmp_path, patterns, **write_kwargs) -> str:
    tiny = write_peta(tmp_path / "p", write_images=False, **write_kwargs)
    with pytest.raises(DatasetFormatError) as info:
        parse_peta(tiny.mat_path, tiny.image_dir)
    message = str(info.value)
    assert str(tiny.mat_path) in message, message
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)
    return message


# --- parser -------------------------------------------------------------------------------------


def test_eval_names_match_spec_copy():
    assert PETA_EVAL_ATTRIBUTES == EVAL_NAMES and len(PETA_EVAL_ATTRIBUTES) == 35


def test_mock_file_matches_reference_positional_access(tiny):
    peta = scipy.io.loadmat(str(tiny.mat_path))["peta"]
    assert peta[0][0][0][:, 4:].shape == (20, 105)
    assert peta[0][0][1][7][0][0] == ALL_NAMES[7]
    assert peta[0][0][3].shape == (2, 1)
    train = peta[0][0][3][1][0][0][0][0]
    assert train.shape == (10, 1)
    np.testing.assert_array_equal(train[:, 0] - 1, tiny.rows(1, "train"))


def test_parse_valid_set(tiny):
    ann = parse_peta(tiny.mat_path, tiny.image_dir)
    assert ann.attribute_names == PETA_EVAL_ATTRIBUTES
    assert ann.source == tiny.mat_path.absolute()
    assert set(ann.image_paths) == {"train", "val", "test"}
    for split, n in [("train", 10), ("val", 4), ("test", 6)]:
        paths, labels = ann.split(split)
        assert len(paths) == n
        assert [p.name for p in paths] == tiny.names(0, split)
        assert {p.parent for p in paths} == {tiny.image_dir.absolute()}
        assert labels.dtype == np.int8 and labels.shape == (n, 35)
        np.testing.assert_array_equal(labels, tiny.labels[tiny.rows(0, split), :35])
    paths, labels = ann.split("trainval")
    assert [p.name for p in paths] == tiny.names(0, "train") + tiny.names(0, "val")
    rows = np.concatenate([tiny.rows(0, "train"), tiny.rows(0, "val")])
    np.testing.assert_array_equal(labels, tiny.labels[rows, :35])


def test_partition_1_differs_from_0(tiny):
    p0 = parse_peta(tiny.mat_path, tiny.image_dir, partition=0)
    p1 = parse_peta(tiny.mat_path, tiny.image_dir, partition=1)
    assert p0.image_paths["train"] != p1.image_paths["train"]
    assert [p.name for p in p1.image_paths["test"]] == tiny.names(1, "test")
    np.testing.assert_array_equal(p1.labels["test"], tiny.labels[tiny.rows(1, "test"), :35])


def test_all_attributes(tiny):
    ann = parse_peta(tiny.mat_path, tiny.image_dir, attributes="all")
    assert ann.num_attributes == 105 and ann.attribute_names == ALL_NAMES
    np.testing.assert_array_equal(ann.labels["val"], tiny.labels[tiny.rows(0, "val")])
    with pytest.raises(ValueError, match=r"attributes='some'.*'eval', 'all'"):
        parse_peta(tiny.mat_path, tiny.image_dir, attributes="some")  # type: ignore[arg-type]


def test_float_data_and_positional_fields_are_tolerated(tmp_path):
    tiny = write_peta(tmp_path / "p", write_images=False)
    peta = scipy.io.loadmat(str(tiny.mat_path))["peta"][0, 0]
    renamed = {
        "f0": np.asarray(peta["data"], dtype=np.float64),
        "f1": peta["attribute"],
        "f2": peta["selected_attribute"],
        "f3": peta["partition_attribute"],
    }
    scipy.io.savemat(tiny.mat_path, {"peta": renamed})
    ann = parse_peta(tiny.mat_path, tiny.image_dir)
    np.testing.assert_array_equal(ann.labels["train"], tiny.labels[tiny.rows(0, "train"), :35])


# --- bad inputs ---------------------------------------------------------------------------------


def test_wrong_top_level_variable(tmp_path):
    _format_error(tmp_path, ["missing variable", "'peta'", "'petaa'"], variable="petaa")


@pytest.mark.parametrize("missing", ["partition_attribute", "attribute", "data"])
def test_struct_missing_field(tmp_path, missing):
    present = [f for f in ("data", "attribute", "selected_attribute", "partition_attribute") if f != missing]
    _format_error(
        tmp_path,
        [f"no field '{missing}'", re.escape(str(present))],
        drop=(missing,),
    )


def test_partition_out_of_range(tiny):
    with pytest.raises(ValueError, match=r"partition=5 is out of range.*2 partition\(s\).*0\.\.1") as info:
        parse_peta(tiny.mat_path, tiny.image_dir, partition=5)
    assert str(tiny.mat_path) in str(info.value) and "partition_attribute" in str(info.value)


def test_zero_based_indices(tmp_path):
    zero_based = np.arange(0, 10, dtype=np.int32).reshape(-1, 1)
    _format_error(
        tmp_path,
        [r"partition_attribute\[0\]\.train", "index 0", "1-based", "add 1"],
        partition_overrides={"train": zero_based},
    )


def test_index_beyond_rows(tmp_path):
    too_big = np.arange(12, 22, dtype=np.int32).reshape(-1, 1)
    _format_error(
        tmp_path,
        [r"partition_attribute\[0\]\.train", r"\[1, 20\]", r"\[12, 21\]"],
        partition_overrides={"train": too_big},
    )


def test_label_matrix_wrong_columns(tmp_path):
    data = np.zeros((20, 4 + 104), np.uint8)
    _format_error(
        tmp_path, ["'peta.data'", "108 columns", "104 label", "105 names"], overrides={"data": data}
    )


def test_labels_outside_0_1(tmp_path):
    data = np.zeros((20, 109), np.uint8)
    data[3, 9] = 2
    data[:, :4] = 77  # metadata columns are not labels
    _format_error(
        tmp_path, [r"peta\.data\[:, 4:\]", r"\[0, 1\]", r"row 3, column 5"], overrides={"data": data}
    )


def test_eval_names_mismatch(tmp_path):
    names = list(ALL_NAMES)
    names[16] = "personalFemale"
    _format_error(tmp_path, ["entry 16", "'personalFemale'", "'personalMale'", "attributes='all'"],
                  overrides={"attribute": cell(names)})  # fmt: skip


def test_pa100k_file_given_as_mat_path(tmp_path):
    pa = write_pa100k(tmp_path / "pa", (4, 2, 2))
    with pytest.raises(DatasetFormatError, match=r"looks like PA-100K.*PA100KDataModule"):
        parse_peta(pa.annotation_path, pa.image_dir)


# --- DataModule ---------------------------------------------------------------------------------


def test_datamodule_properties_and_loaders(tiny):
    dm = _dm(tiny.root, train_split="trainval", val_split="test", eval_batch_size=4)
    assert not dm.datasets
    assert dm.num_attributes == 35 and dm.attribute_names == list(PETA_EVAL_ATTRIBUTES)
    rows = np.concatenate([tiny.rows(0, "train"), tiny.rows(0, "val")])
    assert np.allclose(dm.pos_ratios, tiny.labels[rows, :35].mean(0))
    assert dm.hparams["partition"] == 0 and dm.hparams["attributes"] == "eval"
    dm.setup("fit")
    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, H, W) and targets.shape == (4, 35) and targets.dtype == torch.float32
    val = list(dm.val_dataloader())
    assert [b[0].shape[0] for b in val] == [4, 2]
    np.testing.assert_array_equal(
        torch.cat([b[1] for b in val]).numpy(), tiny.labels[tiny.rows(0, "test"), :35]
    )
    pickle.loads(pickle.dumps(dm))


def test_datamodule_partition_and_all(tiny):
    dm = _dm(tiny.root, partition=1, attributes="all")
    assert dm.num_attributes == 105
    assert np.allclose(dm.pos_ratios, tiny.labels[tiny.rows(1, "train")].mean(0))


def test_datamodule_explicit_paths(tiny, tmp_path):
    dm = _dm(tmp_path / "elsewhere", mat_path=str(tiny.mat_path), image_dir=str(tiny.image_dir))
    dm.setup("test")
    assert len(dm.datasets["test"]) == 6


def test_bad_constructor_args():
    with pytest.raises(ValueError, match=r"partition must be an integer >= 0"):
        PETADataModule(partition=-1)
    with pytest.raises(ValueError, match=r"attributes='al'"):
        PETADataModule(attributes="al")


def test_missing_root(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        _ = _dm(tmp_path / "nowhere").num_attributes
    message = str(info.value)
    assert "PETA root" in message and "does not exist" in message
    assert "PETA.mat" in message and "images/00001.png" in message


def test_missing_mat_file(tmp_path):
    tiny = write_peta(tmp_path / "p", write_images=False)
    tiny.mat_path.unlink()
    with pytest.raises(DatasetNotFoundError, match=r"PETA\.mat does not exist.*images/00001\.png"):
        _ = _dm(tiny.root).num_attributes


def test_missing_image_folder(tmp_path):
    tiny = write_peta(tmp_path / "p", write_images=False)
    with pytest.raises(DatasetNotFoundError, match=r"image folder .*images does not exist"):
        _ = _dm(tiny.root).num_attributes


def test_missing_image_fails_fast(tmp_path):
    tiny = write_peta(tmp_path / "p")
    absent = tiny.names(0, "train")[3]
    (tiny.image_dir / absent).unlink()
    with pytest.raises(MissingImageError) as info:
        _dm(tiny.root).setup("fit")
    message = str(info.value)
    assert "1 of 10" in message and absent in message and str(tiny.image_dir) in message


def test_pa100k_root_given_to_peta_module(tmp_path):
    pa = write_pa100k(tmp_path / "pa", (4, 2, 2))
    with pytest.raises(DatasetNotFoundError, match=r"looks like PA-100K.*PA100KDataModule"):
        _ = _dm(pa.root).num_attributes


def test_rap_root_given_to_peta_module(tmp_path):
    (tmp_path / "rap" / "RAP_annotation").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match=r"looks like RAP"):
        _ = _dm(tmp_path / "rap").num_attributes
