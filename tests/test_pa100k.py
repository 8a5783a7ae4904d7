"""PA-100K parser, PAR DataModule base and PA100KDataModule, on tiny real-format files in tmp_path."""

from __future__ import annotations

import logging
import pickle
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data_modules import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PA100K_ATTRIBUTES,
    CorruptImageError,
    DatasetFormatError,
    DatasetNotFoundError,
    MissingImageError,
    PA100KDataModule,
    build_transforms,
    parse_pa100k,
)

try:
    from helpers_pa100k import cell, write_pa100k
except ImportError:  # tests/ turned into a package
    from tests.helpers_pa100k import cell, write_pa100k

H, W = 64, 32


def _dm(root: Path, **kwargs) -> PA100KDataModule:
    defaults = {"batch_size": 4, "num_workers": 0, "height": H, "width": W, "pad": 4}
    return PA100KDataModule(root=str(root), **{**defaults, **kwargs})


@pytest.fixture
def tiny(tmp_path):
    return write_pa100k(tmp_path / "pa100k")


# --- parser -------------------------------------------------------------------------------------


def test_parse_valid_set(tiny):
    ann = parse_pa100k(tiny.annotation_path, tiny.image_dir)
    assert ann.attribute_names == PA100K_ATTRIBUTES
    assert ann.source == tiny.annotation_path.absolute()
    assert set(ann.image_paths) == {"train", "val", "test"}
    for split, n in [("train", 12), ("val", 4), ("test", 4)]:
        paths, labels = ann.split(split)
        assert len(paths) == ann.num_images(split) == n
        assert all(p.is_absolute() for p in paths)
        assert [p.name for p in paths] == tiny.names[split]
        assert {p.parent for p in paths} == {tiny.image_dir.absolute()}
        assert labels.dtype == np.int8 and labels.shape == (n, 26)
        np.testing.assert_array_equal(labels, tiny.labels[split])
    paths, labels = ann.split("trainval")
    assert [p.name for p in paths] == tiny.names["train"] + tiny.names["val"]
    np.testing.assert_array_equal(labels, np.vstack([tiny.labels["train"], tiny.labels["val"]]))


def test_positive_ratios_match_numpy(tiny):
    ann = parse_pa100k(tiny.annotation_path, tiny.image_dir)
    for split, ref in [
        ("train", tiny.labels["train"]),
        ("trainval", np.vstack([tiny.labels["train"], tiny.labels["val"]])),
    ]:
        np.testing.assert_allclose(
            ann.positive_ratios(split), (ref == 1).sum(0) / ref.shape[0], rtol=0, atol=1e-12
        )


def test_unknown_split_lists_valid_names(tiny):
    ann = parse_pa100k(tiny.annotation_path, tiny.image_dir)
    with pytest.raises(ValueError, match=r"'bogus'.*'train', 'val', 'test', 'trainval'"):
        ann.split("bogus")


def test_float_labels_and_char_matrix_names_are_tolerated(tmp_path):
    labels = np.zeros((12, 26))  # MATLAB default double
    val_names = np.array([f"{i:06d}.jpg" for i in range(13, 17)])  # saved as a 4x10 char matrix
    tiny = write_pa100k(tmp_path / "p", overrides={"train_label": labels, "val_images_name": val_names})
    ann = parse_pa100k(tiny.annotation_path, tiny.image_dir)
    assert ann.labels["train"].dtype == np.int8 and not ann.labels["train"].any()
    assert [p.name for p in ann.image_paths["val"]] == tiny.names["val"]


@pytest.mark.parametrize(
    ("overrides", "drop", "patterns"),
    [
        ({}, ("val_label",), ["val_label", "missing variable", "train_label"]),
        (
            {"train_label": cell(["1"] * 12)},
            (),
            ["'train_label'", "numeric", r"cell array of shape \(12, 1\)"],
        ),
        (
            {"train_images_name": np.arange(12.0).reshape(12, 1)},
            (),
            ["'train_images_name'", "cell array", "float64"],
        ),
        ({"attributes": np.ones((26, 1))}, (), ["'attributes'", "cell array of strings"]),
        ({"val_label": np.zeros((4, 25), np.uint8)}, (), ["'val_label'", "25 columns", "26"]),
        (
            {"test_label": np.full((4, 26), 3, np.uint8)},
            (),
            ["'test_label'", r"\[0, 1\]", r"\[3\]", "row 0, column 0"],
        ),
        ({"train_images_name": cell([f"{i:06d}.jpg" for i in range(1, 12)])}, (), ["11 images", "12 rows"]),
    ],
    ids=[
        "missing-field",
        "labels-as-cell",
        "names-numeric",
        "attributes-numeric",
        "columns",
        "values",
        "rows",
    ],
)
def test_bad_annotation_gives_clear_error(tmp_path, overrides, drop, patterns):
    tiny = write_pa100k(tmp_path / "p", (12, 4, 4), overrides=overrides, drop=drop)
    with pytest.raises(DatasetFormatError) as info:
        parse_pa100k(tiny.annotation_path, tiny.image_dir)
    message = str(info.value)
    assert str(tiny.annotation_path) in message
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)


def test_label_value_error_reports_first_offender(tmp_path):
    labels = np.zeros((12, 26), np.uint8)
    labels[5, 7] = 2
    tiny = write_pa100k(tmp_path / "p", overrides={"train_label": labels})
    with pytest.raises(DatasetFormatError, match=r"values \[2\] \(first at row 5, column 7\)"):
        parse_pa100k(tiny.annotation_path, tiny.image_dir)


def test_not_a_mat_file_and_v73(tmp_path):
    bad = tmp_path / "annotation.mat"
    bad.write_bytes(b"definitely not a mat file" * 20)
    with pytest.raises(DatasetFormatError, match="not a readable MATLAB"):
        parse_pa100k(bad, tmp_path)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan 1 00:00:00 2024 HDF5 schema 1.00 ."
    bad.write_bytes(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM" + b"\x00" * 512)
    with pytest.raises(DatasetFormatError, match=r"v7\.3.*-v7"):
        parse_pa100k(bad, tmp_path)


# --- DataModule ---------------------------------------------------------------------------------


def test_properties_before_setup(tiny):
    dm = _dm(tiny.root, train_split="trainval")
    assert not dm.datasets
    assert dm.num_attributes == 26
    assert dm.attribute_names == list(PA100K_ATTRIBUTES)
    ref = np.vstack([tiny.labels["train"], tiny.labels["val"]]).mean(0)
    assert isinstance(dm.pos_ratios, list) and np.allclose(dm.pos_ratios, ref)
    assert dm.hparams["root"] == str(tiny.root) and dm.hparams["batch_size"] == 4


def test_dataloaders_yield_normalised_batches(tiny):
    dm = _dm(tiny.root, eval_batch_size=3)
    dm.setup("fit")
    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, H, W) and images.dtype == torch.float32
    assert targets.shape == (4, 26) and targets.dtype == torch.float32
    assert images.min() < 0  # normalised, not [0, 1]
    train_loader = dm.train_dataloader()
    assert (
        len(train_loader.dataset) == 12 and train_loader.drop_last
    )  # a last batch of 1 would break BatchNorm
    val = list(dm.val_dataloader())
    assert [b[0].shape[0] for b in val] == [3, 1]
    np.testing.assert_array_equal(torch.cat([b[1] for b in val]).numpy(), tiny.labels["val"])
    # eval images are exactly resize → tensor → normalise
    with Image.open(tiny.image_dir / tiny.names["val"][0]) as img:
        expected = build_transforms(H, W, train=False)(img.convert("RGB"))
    torch.testing.assert_close(val[0][0][0], expected)
    dm.setup("predict")
    images, targets = next(iter(dm.predict_dataloader()))
    np.testing.assert_array_equal(targets.numpy(), tiny.labels["test"][:3])
    pickle.loads(pickle.dumps(dm))  # spawn-based DDP pickles the DataModule


def test_dataloader_before_setup_explains(tiny):
    with pytest.raises(RuntimeError, match=r"setup\('test'\)"):
        _dm(tiny.root).test_dataloader()


def test_transforms_shapes_and_normalisation():
    img = Image.new("RGB", (40, 150), tuple(round(m * 255) for m in IMAGENET_MEAN))
    train = build_transforms(256, 128, train=True, pad=10)(img)
    assert train.shape == (3, 256, 128)
    evaluated = build_transforms(256, 128, train=False)(img)
    assert evaluated.shape == (3, 256, 128) and evaluated.abs().max() < 0.01
    # pad + crop: padding fills with 0 → after normalising, a padded strip is -mean/std
    torch.manual_seed(0)
    crops = [build_transforms(32, 16, train=True, pad=10, hflip=False)(img) for _ in range(20)]
    pad_value = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)])
    assert any(torch.allclose(c[:, 0, 0], pad_value, atol=1e-4) for c in crops)


def test_bad_constructor_args():
    with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1"):
        PA100KDataModule(batch_size=0)
    with pytest.raises(ValueError, match=r"train_split='trian'.*'trainval'"):
        PA100KDataModule(train_split="trian")


def test_missing_root(tmp_path):
    dm = _dm(tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError) as info:
        _ = dm.num_attributes
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message and "does not exist" in message
    assert "synthesize: true" in message and "release_data/release_data" in message


def test_missing_annotation_file(tiny):
    tiny.annotation_path.unlink()
    with pytest.raises(
        DatasetNotFoundError, match=r"No PA-100K annotation file.*annotation\.mat.*synthesize"
    ):
        _ = _dm(tiny.root).num_attributes
    with pytest.raises(DatasetNotFoundError, match=r"explicit\.mat does not exist"):
        _ = _dm(tiny.root, annotation_path=str(tiny.root / "explicit.mat")).num_attributes


def test_alternative_layout_is_found(tmp_path):
    tiny = write_pa100k(tmp_path / "raw", (4, 2, 2), raw_layout=True)
    dm = _dm(tiny.root)
    assert dm.annotation.source == tiny.annotation_path.absolute()
    dm.setup("test")
    assert dm.datasets["test"].paths[0].startswith(str(tiny.image_dir.absolute()))
    assert next(iter(dm.test_dataloader()))[0].shape == (2, 3, H, W)


def test_missing_image_fails_fast(tiny):
    (tiny.image_dir / tiny.names["train"][3]).unlink()
    with pytest.raises(MissingImageError) as info:
        _dm(tiny.root).setup("fit")
    message = str(info.value)
    assert "1 of 12" in message and tiny.names["train"][3] in message and str(tiny.image_dir) in message


def test_corrupt_image_fails_fast_or_is_dropped(tiny, caplog):
    bad = tiny.image_dir / tiny.names["train"][2]
    bad.write_bytes(b"\x00garbage, not a jpeg" * 10)
    with pytest.raises(CorruptImageError, match=tiny.names["train"][2]):
        _dm(tiny.root).setup("fit")
    dm = _dm(tiny.root, skip_corrupt=True)
    with caplog.at_level(logging.WARNING, logger="data_modules"):
        dm.setup("fit")
    assert "Dropping 1 undecodable" in caplog.text and tiny.names["train"][2] in caplog.text
    assert len(dm.datasets["train"]) == 11 and str(bad) not in dm.datasets["train"].paths
    full_batches = 11 // dm.batch_size * dm.batch_size  # training drops its last partial batch
    assert sum(b[0].shape[0] for b in dm.train_dataloader()) == full_batches


def test_corrupt_image_without_checks_is_skipped_at_load_time(tiny):
    (tiny.image_dir / tiny.names["val"][0]).write_bytes(b"garbage")
    dm = _dm(tiny.root, check_images=False, skip_corrupt=True)
    dm.setup("validate")
    images, targets = next(iter(dm.val_dataloader()))
    assert images.shape[0] == 3 and targets.shape == (3, 26)


def test_synthesize_calls_generator_and_logs(tmp_path, monkeypatch, caplog):
    calls = []

    def fake_synthesize_pa100k(root, num_images=10_000, seed=0, split_fractions=(0.8, 0.1, 0.1), workers=None,
                               difficulty=1.0):  # fmt: skip
        calls.append((Path(root), num_images, seed, difficulty))
        write_pa100k(root, (6, 2, 2), seed=seed)
        return Path(root)

    fake = types.ModuleType("data_modules.synthetic")
    fake.synthesize_pa100k = fake_synthesize_pa100k
    monkeypatch.setitem(sys.modules, "data_modules.synthetic", fake)
    root = tmp_path / "synth"
    dm = _dm(root, synthesize=True, synth_num_images=10, synth_seed=3, synth_difficulty=0.5)
    with caplog.at_level(logging.INFO, logger="data_modules"):
        assert dm.num_attributes == 26
    assert calls == [(root, 10, 3, 0.5)]
    assert "synthesizing a SYNTHETIC" in caplog.text
    _dm(root, synthesize=True).prepare_data()  # already present → no second call
    assert len(calls) == 1


def test_real_generator_end_to_end(tmp_path):
    synthetic = pytest.importorskip("data_modules.synthetic")
    if not hasattr(synthetic, "synthesize_pa100k"):
        pytest.skip("data_modules.synthetic.synthesize_pa100k not available yet")
    dm = _dm(tmp_path / "gen", synthesize=True, synth_num_images=40, train_split="trainval", val_split="test")
    assert dm.num_attributes == 26 and len(dm.pos_ratios) == 26
    dm.setup("fit")
    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, H, W) and set(targets.unique().tolist()) <= {0.0, 1.0}


def test_package_import_does_not_import_generator():
    source = (Path(__file__).parents[1] / "data_modules" / "__init__.py").read_text()
    assert "synthetic import" not in source and "import data_modules.synthetic" not in source


def test_pa100k_module_given_another_dataset_names_it(tmp_path):
    """A PETA or RAP folder handed to the PA-100K module: the error says which dataset it looks like."""
    from data_modules import PA100KDataModule
    from data_modules.errors import DatasetNotFoundError
    from tests.helpers_peta import write_peta
    from tests.helpers_rap import write_rap_v1

    write_peta(tmp_path / "peta")
    with pytest.raises(
        DatasetNotFoundError, match=r"looks like PETA \(it has PETA\.mat; use PETADataModule\)"
    ):
        _ = PA100KDataModule(root=str(tmp_path / "peta")).num_attributes
    write_rap_v1(tmp_path / "rap")
    with pytest.raises(DatasetNotFoundError, match=r"looks like RAP .*use RAPDataModule"):
        _ = PA100KDataModule(root=str(tmp_path / "rap")).num_attributes
