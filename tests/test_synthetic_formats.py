"""Synthetic PETA / RAP v1 / RAP v2 writers: files load through the real parsers; label mapping; lists."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from data_modules.attributes import PA100K_ATTRIBUTES, PETA_EVAL_ATTRIBUTES
from data_modules.peta import parse_peta
from data_modules.rap import RAP1_EVAL_ATTRIBUTES, RAP2_EVAL_ATTRIBUTES, parse_rap_v1, parse_rap_v2
from data_modules.synthetic import (
    peta_labels_from_pa100k,
    rap1_labels_from_pa100k,
    rap2_labels_from_pa100k,
    sample_pa100k_labels,
    synthesize_peta,
    synthesize_rap,
    write_label_list,
)
from data_modules.synthetic.vocab import PETA_ALL_ATTRIBUTES, RAP2_ATTRIBUTES

N = 40
PA = {name: j for j, name in enumerate(PA100K_ATTRIBUTES)}
RAP_MAT = "RAP_annotation/RAP_annotation.mat"


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("formats")
    return {
        "peta": synthesize_peta(base / "peta", N, seed=2, workers=2),
        "rap1": synthesize_rap(base / "rap1", 1, N, seed=2, workers=2),
        "rap2": synthesize_rap(base / "rap2", 2, N, seed=2, workers=2),
    }


@pytest.fixture(scope="module")
def y26() -> np.ndarray:
    return sample_pa100k_labels(3000, np.random.default_rng(0))


def test_peta_parses(sets: dict[str, Path]) -> None:
    root = sets["peta"]
    ann = parse_peta(root / "PETA.mat", root / "images")
    assert ann.attribute_names == PETA_EVAL_ATTRIBUTES
    assert {k: len(v) for k, v in ann.image_paths.items()} == {"train": 20, "val": 4, "test": 16}
    assert all(p.is_file() for paths in ann.image_paths.values() for p in paths)
    all_ = parse_peta(root / "PETA.mat", root / "images", attributes="all")
    assert all_.attribute_names == PETA_ALL_ATTRIBUTES and len(PETA_ALL_ATTRIBUTES) == 105
    for parsed in (ann, all_):
        assert all(set(np.unique(v)) <= {0, 1} for v in parsed.labels.values())
    # partitions differ; each is a permutation of all rows
    p1 = parse_peta(root / "PETA.mat", root / "images", partition=4)
    assert p1.image_paths["train"] != all_.image_paths["train"]
    assert len(set(sum((list(v) for v in p1.image_paths.values()), []))) == N
    peta = scipy.io.loadmat(root / "PETA.mat")["peta"]
    assert peta["data"][0, 0].shape == (N, 109) and peta["partition_attribute"][0, 0].shape == (5, 1)


def test_rap1_parses(sets: dict[str, Path]) -> None:
    root = sets["rap1"]
    ann = parse_rap_v1(root / RAP_MAT, root / "RAP_dataset", uncertain="ignore")
    assert ann.attribute_names == RAP1_EVAL_ATTRIBUTES
    assert {k: len(v) for k, v in ann.image_paths.items()} == {"train": 32, "test": 8}
    assert all(p.is_file() and p.name.startswith("CAM") for paths in ann.image_paths.values() for p in paths)
    labels = np.concatenate(list(ann.labels.values()))
    assert (labels[:, 0] == 2).any() and (labels[:, 1:] != 2).all() and set(np.unique(labels)) <= {0, 1, 2}
    struct = scipy.io.loadmat(root / RAP_MAT)["RAP_annotation"]
    assert struct.dtype.names == ("partion", "label", "attribute_chinese", "attribute_eng", "position",
                                  "imagesname", "attribute_exp")  # fmt: skip
    assert struct["label"][0, 0].shape == (N, 92) and struct["partion"][0, 0].shape == (5, 1)


def test_rap2_parses(sets: dict[str, Path]) -> None:
    root = sets["rap2"]
    ann = parse_rap_v2(root / RAP_MAT, root / "RAP_dataset", uncertain="ignore")
    assert ann.attribute_names == RAP2_EVAL_ATTRIBUTES
    assert {k: len(v) for k, v in ann.image_paths.items()} == {"train": 24, "val": 8, "test": 8}
    assert all(p.is_file() for paths in ann.image_paths.values() for p in paths)
    labels = np.concatenate(list(ann.labels.values()))
    assert (labels == 2).any() and set(np.unique(labels)) <= {0, 1, 2}
    struct = scipy.io.loadmat(root / RAP_MAT)["RAP_annotation"]
    data = struct["data"][0, 0]
    assert data.shape == (N, 152) and set(np.unique(data[:, 111])) <= {1, 2, 3, 4}
    assert struct["selected_attribute"][0, 0].shape == (1, 54)
    assert struct["partition_attribute"][0, 0].shape == (1, 5)
    assert [struct["attribute"][0, 0][i, 0][0] for i in range(152)] == list(RAP2_ATTRIBUTES)


def test_deterministic_per_seed(sets: dict[str, Path], tmp_path: Path) -> None:
    again = synthesize_rap(tmp_path / "rap2", 2, N, seed=2, workers=1)
    assert _digest(again) == _digest(sets["rap2"])
    assert _digest(synthesize_peta(tmp_path / "peta", N, seed=2, workers=1)) == _digest(sets["peta"])
    other = synthesize_peta(tmp_path / "peta3", N, seed=3, workers=1)
    assert _digest(other) != _digest(sets["peta"])
    assert synthesize_peta(sets["peta"], N, seed=2) == sets["peta"]  # already there: no-op


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        synthesize_rap(tmp_path / "r", version=3, num_images=4)
    with pytest.raises(ValueError):
        synthesize_peta(tmp_path / "p", num_images=2)


def _pa(y: np.ndarray, name: str) -> np.ndarray:
    return y[:, PA[name]]


def test_peta_mapping(y26: np.ndarray) -> None:
    out = peta_labels_from_pa100k(y26, np.random.default_rng(1))
    c = {name: out[:, j] for j, name in enumerate(PETA_ALL_ATTRIBUTES)}
    assert out.shape == (len(y26), 105) and out.dtype == np.uint8
    exact = {
        "personalMale": 1 - _pa(y26, "Female"), "personalFemale": _pa(y26, "Female"),
        "accessoryHat": _pa(y26, "Hat"), "carryingBackpack": _pa(y26, "Backpack"),
        "upperBodyShortSleeve": _pa(y26, "ShortSleeve"), "lowerBodyTrousers": _pa(y26, "Trousers"),
        "lowerBodyShorts": _pa(y26, "Shorts"), "lowerBodyShortSkirt": _pa(y26, "Skirt&Dress"),
        "upperBodyThinStripes": _pa(y26, "UpperStride"), "upperBodyLogo": _pa(y26, "UpperLogo"),
        "upperBodyPlaid": _pa(y26, "UpperPlaid"), "footwearBoots": _pa(y26, "boots"),
        "personalLarger60": _pa(y26, "AgeOver60"), "carryingMessengerBag": _pa(y26, "ShoulderBag"),
        "accessorySunglasses": _pa(y26, "Glasses"), "upperBodyLongSleeve": _pa(y26, "LongSleeve"),
        "upperBodyJacket": _pa(y26, "LongCoat"),
    }  # fmt: skip
    for name, expected in exact.items():
        assert np.array_equal(c[name], expected), name
    ages = out[:, :4]
    assert (ages.sum(1) == 1).all()
    assert (c["personalLess30"][_pa(y26, "AgeLess18") == 1] == 1).all()
    assert (c["hairLong"] + c["hairShort"] == 1).all() and (
        c["lowerBodyCasual"] + c["lowerBodyFormal"] == 1
    ).all()
    for region in ("upperBody", "lowerBody", "hair", "footwear"):
        cols = [j for j, n in enumerate(PETA_ALL_ATTRIBUTES[35:79], 35) if n.startswith(region)]
        assert (out[:, cols].sum(1) == 1).all()
    assert np.corrcoef(c["hairLong"], _pa(y26, "Female"))[0, 1] > 0.5


def test_rap_mapping(y26: np.ndarray) -> None:
    from data_modules.rap import RAP1_ATTRIBUTES

    v1 = rap1_labels_from_pa100k(y26, np.random.default_rng(1))
    c1 = {name: v1[:, j] for j, name in enumerate(RAP1_ATTRIBUTES)}
    assert v1.shape == (len(y26), 92) and set(np.unique(v1)) <= {0, 1}
    for name, pa in (("Female", "Female"), ("AgeLess16", "AgeLess18"), ("hs-Hat", "Hat"),
                     ("hs-Glasses", "Glasses"), ("ub-ShortSleeve", "ShortSleeve"), ("lb-LongTrousers", "Trousers"),
                     ("shoes-Boots", "boots"), ("attach-Backpack", "Backpack"),
                     ("attach-SingleShoulderBag", "ShoulderBag"), ("attach-HandBag", "HandBag"),
                     ("attach-Box", "HoldObjectsInFront"), ("faceFront", "Front"), ("faceBack", "Back")):  # fmt: skip
        assert np.array_equal(c1[name], _pa(y26, pa)), name
    assert np.array_equal(c1["lb-Skirt"] + c1["lb-ShortSkirt"] + c1["lb-Dress"], _pa(y26, "Skirt&Dress"))
    assert np.array_equal(c1["faceLeft"] + c1["faceRight"], _pa(y26, "Side"))
    assert (v1[:, 1:4].sum(1) <= 1).all()

    v2 = rap2_labels_from_pa100k(y26, np.random.default_rng(1))
    c2 = {name: v2[:, j] for j, name in enumerate(RAP2_ATTRIBUTES)}
    assert v2.shape == (len(y26), 152)
    for name, pa in (("Femal", "Female"), ("AgeLess16", "AgeLess18"), ("AgeBiger60", "AgeOver60"),
                     ("hs-Hat", "Hat"), ("lb-Shorts", "Shorts"), ("attachment-ShoulderBag", "ShoulderBag"),
                     ("shoes-Boots", "boots")):  # fmt: skip
        assert np.array_equal(c2[name], _pa(y26, pa)), name
    assert (v2[:, 1:6].sum(1) == 1).all()
    view = c2["viewpoint"]
    assert set(np.unique(view)) == {1, 2, 3, 4}
    assert np.array_equal(view == 1, _pa(y26, "Front") == 1) and np.array_equal(
        view == 2, _pa(y26, "Back") == 1
    )
    binary = np.delete(v2[:, :120], 111, axis=1)
    assert set(np.unique(binary)) <= {0, 1} and (v2[:, 120:] == 0).all()
    # deterministic in the rng
    assert np.array_equal(v2, rap2_labels_from_pa100k(y26, np.random.default_rng(1)))


def test_label_list_round_trip(tmp_path: Path) -> None:
    names = [f"CAM01_x_tarid{i}.png" for i in range(5)]
    labels = np.random.default_rng(0).integers(0, 3, size=(5, 51)).astype(np.int32)
    path = write_label_list(tmp_path / "lists" / "test.txt", names, labels)
    raw = path.read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n") and b" \n" not in raw
    got_names, got = [], []
    for line in raw.decode("ascii").splitlines():
        first, *rest = line.split()
        got_names.append(first)
        got.append([int(v) for v in rest])
    assert got_names == names and np.array_equal(np.array(got), labels)
    with pytest.raises(ValueError):
        write_label_list(tmp_path / "bad.txt", ["a b.png"], np.zeros((1, 2), int))


def test_written_label_lists_load_through_the_list_parser(tmp_path: Path) -> None:
    """Lists from ``write_label_list`` are read by the same ``parse_label_lists`` a real ALM list takes."""
    from data_modules.attributes import PA100K_ATTRIBUTES
    from data_modules.label_list import parse_label_lists
    from data_modules.synthetic import write_label_list

    rng = np.random.default_rng(0)
    names = {"train": [f"{i:06d}.jpg" for i in range(1, 7)], "test": [f"{i:06d}.jpg" for i in range(7, 10)]}
    labels = {k: rng.integers(0, 2, (len(v), 26)).astype(np.uint8) for k, v in names.items()}
    lists = {}
    for split in names:
        for name in names[split]:
            (tmp_path / name).write_bytes(b"")  # existence is all the list parser checks
        lists[split] = write_label_list(tmp_path / f"{split}.txt", names[split], labels[split])
    ann = parse_label_lists(lists, image_root=tmp_path, attribute_names=PA100K_ATTRIBUTES)
    for split in names:
        data = ann.split(split)
        assert [p.name for p in data.paths] == names[split]
        np.testing.assert_array_equal(data.labels, labels[split])
