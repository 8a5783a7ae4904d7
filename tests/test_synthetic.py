"""Synthetic PA-100K generator: label statistics, file format, determinism, locking, attribute rendering."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from data_modules.attributes import PA100K_ATTRIBUTES, PA100K_EXCLUSIVE_GROUPS, PA100K_POSITIVE_RATIOS
from data_modules.synthetic import render_pedestrian, sample_pa100k_labels, synthesize_pa100k
from data_modules.synthetic.pa100k import split_counts
from data_modules.synthetic.render import FigureLayout, render_pedestrian_with_layout

IDX = {name: j for j, name in enumerate(PA100K_ATTRIBUTES)}
VARIABLES = ["attributes", "train_images_name", "val_images_name", "test_images_name",
             "train_label", "val_label", "test_label"]  # fmt: skip
N_SMALL, FRACTIONS = 60, (0.7, 0.2, 0.1)


# ------------------------------------------------------------------------------------------ labels
def test_labels_exclusive_and_marginals() -> None:
    labels = sample_pa100k_labels(20_000, np.random.default_rng(0))
    assert labels.shape == (20_000, 26) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1}
    for group in PA100K_EXCLUSIVE_GROUPS:
        assert labels[:, list(group)].sum(1).max() <= 1
    for group in PA100K_EXCLUSIVE_GROUPS[:2]:  # age and view: exactly one
        assert (labels[:, list(group)].sum(1) == 1).all()
    for name, target, got in zip(PA100K_ATTRIBUTES, PA100K_POSITIVE_RATIOS, labels.mean(0), strict=True):
        ok = abs(got - target) <= 0.02 if target >= 0.05 else abs(got - target) <= 0.3 * target
        assert ok, f"{name}: ratio {got:.4f}, target {target:.4f}"
    # a mild correlation is there but does not break the marginals
    assert labels[labels[:, IDX["Skirt&Dress"]] == 1, IDX["Female"]].mean() > 0.8


def test_labels_deterministic_and_empty() -> None:
    a = sample_pa100k_labels(100, np.random.default_rng(5))
    assert np.array_equal(a, sample_pa100k_labels(100, np.random.default_rng(5)))
    assert sample_pa100k_labels(0, np.random.default_rng(0)).shape == (0, 26)


def test_split_counts() -> None:
    assert split_counts(100_000, (0.8, 0.1, 0.1)) == (80_000, 10_000, 10_000)
    assert split_counts(60, FRACTIONS) == (42, 12, 6)
    assert sum(split_counts(7, (0.5, 0.3, 0.2))) == 7
    with pytest.raises(ValueError):
        split_counts(10, (0.5, 0.5, 0.5))


# ------------------------------------------------------------------------------------------ files
@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize_pa100k(tmp_path_factory.mktemp("w1") / "pa100k", N_SMALL, seed=3, split_fractions=FRACTIONS,
                             workers=1)  # fmt: skip


def test_annotation_matches_spec(generated: Path) -> None:
    assert [name for name, _, _ in scipy.io.whosmat(generated / "annotation.mat")] == VARIABLES
    mat = scipy.io.loadmat(generated / "annotation.mat")
    assert b"synthetic PA-100K" in mat["__header__"] and b"seed 3" in mat["__header__"]
    assert mat["attributes"].shape == (26, 1)
    assert [mat["attributes"][j][0][0] for j in range(26)] == list(PA100K_ATTRIBUTES)
    names: list[str] = []
    for split, n in zip(("train", "val", "test"), split_counts(N_SMALL, FRACTIONS), strict=True):
        cell, lab = mat[f"{split}_images_name"], mat[f"{split}_label"]
        assert cell.shape == (n, 1) and cell.dtype == object
        assert all(isinstance(cell[i][0][0], str) for i in range(n))
        assert lab.shape == (n, 26) and lab.dtype == np.uint8 and set(np.unique(lab)) <= {0, 1}
        names += [cell[i][0][0] for i in range(n)]
    assert names == [f"{i:06d}.jpg" for i in range(1, N_SMALL + 1)]
    for name in names:
        with Image.open(generated / "data" / name) as img:
            assert img.format == "JPEG" and img.convert("RGB").mode == "RGB"
            assert 110 <= img.height <= 220 and 0.35 <= img.width / img.height <= 0.65
    assert sorted(p.name for p in (generated / "data").iterdir()) == names
    assert not list(generated.parent.glob(".pa100k.partial-*"))


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_across_workers_and_seed_sensitive(generated: Path, tmp_path: Path) -> None:
    two = synthesize_pa100k(tmp_path / "w2", N_SMALL, seed=3, split_fractions=FRACTIONS, workers=2)
    assert _snapshot(two) == _snapshot(generated)  # byte-identical, annotation.mat included
    other = synthesize_pa100k(tmp_path / "s4", 8, seed=4, split_fractions=FRACTIONS, workers=1)
    a, b = _snapshot(generated), _snapshot(other)
    assert a["data/000001.jpg"] != b["data/000001.jpg"]
    assert not np.array_equal(scipy.io.loadmat(generated / "annotation.mat")["train_label"][:5],
                              scipy.io.loadmat(other / "annotation.mat")["train_label"][:5])  # fmt: skip


def test_second_call_does_not_regenerate(generated: Path, caplog: pytest.LogCaptureFixture) -> None:
    before = (generated / "annotation.mat").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        assert synthesize_pa100k(generated, N_SMALL, seed=3) == generated
    assert (generated / "annotation.mat").stat().st_mtime_ns == before
    assert "already present" in caplog.text


def test_refuses_non_empty_root_and_accepts_empty_one(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something.txt").write_text("x")
    with pytest.raises(FileExistsError, match=str(busy)):
        synthesize_pa100k(busy, 4)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (synthesize_pa100k(empty, 4, workers=1) / "annotation.mat").is_file()


def test_concurrent_callers_generate_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two threads (stand-ins for DDP ranks; flock excludes across open files) ask for the same root."""
    root, results, errors = tmp_path / "shared", [], []

    def call() -> None:
        try:
            results.append(synthesize_pa100k(root, 24, seed=1, workers=2))
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    with caplog.at_level(logging.DEBUG, logger="data_modules.synthetic.pa100k"):
        threads = [threading.Thread(target=call) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not errors and results == [root, root]
    assert caplog.text.count("Synthesizing 24") == 1
    assert "pool of 2" in caplog.text  # the pool really ran, from a non-main thread
    assert len(list((root / "data").iterdir())) == 24


# ------------------------------------------------------------------------------------------ rendering
def _labels(*names: str) -> np.ndarray:
    v = np.zeros(26, dtype=np.uint8)
    v[[IDX[n] for n in names]] = 1
    return v


BASE = ("Age18-60", "Front", "LongSleeve", "Trousers")
WHOLE = (-0.1, 1.02)


# (attribute switched on, base labels, base label it replaces (exclusive groups), band in figure heights)
CASES = [
    ("Female", BASE, None, WHOLE),
    ("AgeOver60", BASE, "Age18-60", WHOLE),
    ("AgeLess18", BASE, "Age18-60", WHOLE),
    ("Age18-60", ("AgeLess18", "Front", "LongSleeve", "Trousers"), "AgeLess18", WHOLE),
    ("Front", ("Age18-60", "Side", "LongSleeve", "Trousers"), "Side", WHOLE),
    ("Side", BASE, "Front", WHOLE),
    ("Back", BASE, "Front", WHOLE),
    ("Hat", BASE, None, (-0.1, 0.25)),
    ("Glasses", BASE, None, (0.0, 0.2)),
    ("Glasses", ("Age18-60", "Side", "LongSleeve", "Trousers"), None, (0.0, 0.2)),
    ("HandBag", BASE, None, (0.3, 0.8)),
    ("ShoulderBag", BASE, None, (0.1, 0.7)),
    ("Backpack", BASE, None, (0.1, 0.45)),
    ("Backpack", ("Age18-60", "Side", "LongSleeve", "Trousers"), None, (0.1, 0.55)),
    ("Backpack", ("Age18-60", "Back", "LongSleeve", "Trousers"), None, (0.1, 0.55)),
    ("HoldObjectsInFront", BASE, None, (0.1, 0.65)),
    ("HoldObjectsInFront", ("Age18-60", "Back", "LongSleeve", "Trousers"), None, (0.1, 0.65)),
    ("ShortSleeve", BASE, "LongSleeve", (0.1, 0.65)),
    ("LongSleeve", ("Age18-60", "Front", "Trousers"), None, (0.1, 0.65)),
    ("UpperStride", BASE, None, (0.1, 0.55)),
    ("UpperLogo", BASE, None, (0.1, 0.55)),
    ("UpperLogo", ("Age18-60", "Back", "LongSleeve", "Trousers"), None, (0.1, 0.55)),
    ("UpperPlaid", BASE, None, (0.1, 0.55)),
    ("UpperSplice", BASE, None, (0.1, 0.55)),
    ("LowerStripe", BASE, None, (0.38, 1.0)),
    ("LowerPattern", BASE, None, (0.38, 1.0)),
    ("LongCoat", BASE, None, (0.15, 0.85)),
    ("Trousers", ("Age18-60", "Front", "LongSleeve"), None, (0.38, 1.0)),
    ("Shorts", BASE, "Trousers", (0.38, 1.0)),
    ("Skirt&Dress", BASE, "Trousers", (0.38, 1.0)),
    ("boots", BASE, None, (0.8, 1.0)),
]


def test_every_attribute_is_covered() -> None:
    assert {case[0] for case in CASES} == set(PA100K_ATTRIBUTES)


@pytest.mark.parametrize(("attr", "base", "old", "band"), CASES, ids=[f"{c[0]}-{c[1][1]}" for c in CASES])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_attribute_changes_its_region(
    attr: str, base: tuple, old: str | None, band: tuple, seed: int
) -> None:
    """Same generator state, one attribute flipped: pixels change, and mostly where the attribute lives."""
    before, after = base, (*(n for n in base if n != old), attr)
    img0, lay0 = render_pedestrian_with_layout(_labels(*before), np.random.default_rng(seed), difficulty=0)
    img1, lay1 = render_pedestrian_with_layout(_labels(*after), np.random.default_rng(seed), difficulty=0)
    assert img0.size == img1.size
    diff = np.abs(np.asarray(img0, np.int16) - np.asarray(img1, np.int16)).sum(2) > 0
    rows = np.nonzero(diff)[0]
    assert rows.size >= 8, f"{attr}: only {rows.size} pixels changed"
    lay: FigureLayout = lay1
    top = min(lay0.y(band[0]), lay1.y(band[0])) - 1
    bottom = max(lay0.y(band[1]), lay1.y(band[1])) + 1
    inside = ((rows >= top) & (rows <= bottom)).mean()
    assert inside >= 0.9, f"{attr}: {inside:.0%} of changed pixels in rows {top:.0f}..{bottom:.0f} of {lay}"


def test_render_shapes_and_clean_mode() -> None:
    labels = sample_pa100k_labels(1, np.random.default_rng(0))[0]
    img = render_pedestrian(labels, np.random.default_rng(0))
    assert img.mode == "RGB" and 110 <= img.height <= 220 and 0.38 <= img.width / img.height <= 0.62
    clean = render_pedestrian(labels, np.random.default_rng(0), difficulty=0)
    assert clean.size == img.size and clean.tobytes() != img.tobytes()
    with pytest.raises(ValueError):
        render_pedestrian(np.zeros(5), np.random.default_rng(0))
