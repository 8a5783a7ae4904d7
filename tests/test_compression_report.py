"""Compression report: rows and totals against hand arithmetic, the rich table text, the score-curve PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from par_lightning.compression.curves import Candidate, LayerCurve
from par_lightning.compression.report import LayerRow, curve_points, layer_rows, totals
from par_lightning.compression.report_render import plot_score_curves, render_text, rich_table, si
from tests.import_check import imported_packages

pytestmark = pytest.mark.usefixtures("one_thread")


def hand_curves() -> dict[str, LayerCurve]:
    """Three layers: a CP3 conv compressed to rank 4, an SVD linear to rank 3, a CP4 conv kept dense."""
    conv1 = LayerCurve(
        "backbone.conv1",
        "cp3",
        ref_rank=8,
        dense_params=1000,
        dense_macs=50_000,
        candidates=(
            Candidate(8, 0.5, 1000, 50_000, rel_error=0.05, kappa=3.0),
            Candidate(2, 0.3, 250, 12_500, rel_error=0.4, kappa=1.5),
            Candidate(4, 0.45, 500, 25_000, rel_error=0.2, kappa=2.0),
        ),
    )
    fc = LayerCurve(
        "head.fc",
        "svd",
        ref_rank=6,
        dense_params=600,
        dense_macs=600,
        candidates=(Candidate(6, 0.8, 600, 600, rel_error=0.0), Candidate(3, 0.6, 300, 300, rel_error=0.1)),
    )
    conv2 = LayerCurve(
        "backbone.conv2",
        "cp4",
        ref_rank=4,
        dense_params=2000,
        dense_macs=80_000,
        candidates=(Candidate(4, 0.2, 2000, 80_000), Candidate(2, 0.1, 1000, 40_000)),
    )
    return {c.name: c for c in (conv1, fc, conv2)}


RANKS = {"backbone.conv1": 4, "head.fc": 3, "backbone.conv2": None}
REASONS = {"backbone.conv1": "tau met", "head.fc": "budget", "backbone.conv2": "low ref score"}


def test_rows_match_hand_values() -> None:
    rows = layer_rows(hand_curves(), RANKS, REASONS)
    assert [r.layer for r in rows] == ["backbone.conv1", "head.fc", "backbone.conv2"]  # the curves' order
    conv1, fc, conv2 = rows
    assert conv1 == LayerRow(
        "backbone.conv1",
        "cp3",
        8,
        4,
        0.45,
        pytest.approx(0.9),
        0.2,
        2.0,
        1000,
        500,
        50_000,
        25_000,
        "tau met",
    )
    assert fc.rank == 3 and fc.score == 0.6 and fc.score_normalised == pytest.approx(0.75)
    assert fc.kappa is None and fc.rel_error == 0.1
    assert (fc.params_before, fc.params_after, fc.macs_before, fc.macs_after) == (600, 300, 600, 300)
    # dense row: nothing about a rank, costs unchanged
    assert conv2.rank is None and not conv2.compressed
    assert (conv2.score, conv2.score_normalised, conv2.rel_error, conv2.kappa) == (None, None, None, None)
    assert (
        (conv2.params_after, conv2.macs_after) == (2000, 80_000) == (conv2.params_before, conv2.macs_before)
    )
    assert conv2.reason == "low ref score"
    assert conv1.to_dict()["macs_after"] == 25_000 and list(conv1.to_dict())[0] == "layer"


def test_layer_missing_from_ranks_stays_dense() -> None:
    rows = layer_rows(hand_curves(), {"head.fc": 3}, {})
    assert [r.rank for r in rows] == [None, 3, None]
    assert [r.reason for r in rows] == ["", "", ""]


def test_totals_match_hand_values() -> None:
    t = totals(layer_rows(hand_curves(), RANKS, REASONS))
    assert (t.n_layers, t.n_compressed) == (3, 2)
    assert (t.params_before, t.params_after) == (1000 + 600 + 2000, 500 + 300 + 2000)
    assert (t.macs_before, t.macs_after) == (50_000 + 600 + 80_000, 25_000 + 300 + 80_000)
    assert t.params_ratio == pytest.approx(3600 / 2800)
    assert t.macs_ratio == pytest.approx(130_600 / 105_300)
    assert t.model_params_ratio is None and t.model_macs_ratio is None

    m = totals(layer_rows(hand_curves(), RANKS, REASONS), 5000, 4200, 200_000, 174_700)
    assert m.model_params_ratio == pytest.approx(5000 / 4200)
    assert m.model_macs_ratio == pytest.approx(200_000 / 174_700)
    assert m.to_dict()["model_params_after"] == 4200

    empty = totals([])
    assert (empty.n_layers, empty.params_ratio) == (0, 1.0)


def test_curve_points_are_ascending_and_normalised() -> None:
    pts = curve_points(hand_curves()["backbone.conv1"])
    assert [p[0] for p in pts] == [2, 4, 8]
    np.testing.assert_allclose([p[1] for p in pts], [0.3 / 0.5, 0.45 / 0.5, 1.0])


@pytest.mark.parametrize(
    ("ranks", "reasons", "match"),
    [
        ({"backbone.conv9": 4}, {}, r"ranks names layers \['backbone.conv9'\] that have no curve"),
        ({}, {"nope": "x"}, r"reasons names layers \['nope'\]"),
        ({"backbone.conv1": 5}, {}, r"ranks\['backbone.conv1'\] = 5 is not a scored rank"),
    ],
)
def test_layer_rows_bad_input(ranks: dict, reasons: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        layer_rows(hand_curves(), ranks, reasons)


def test_layer_rows_bad_curves() -> None:
    curves = hand_curves()
    with pytest.raises(ValueError, match="keyed by LayerCurve.name"):
        layer_rows({"wrong": curves["head.fc"]}, {}, {})
    no_ref = LayerCurve("l", "svd", 4, 100, 100, (Candidate(2, 0.5, 50, 50),))
    with pytest.raises(ValueError, match="reference rank 4 was not scored"):
        layer_rows({"l": no_ref}, {"l": 2}, {})


def test_totals_bad_model_counts() -> None:
    rows = layer_rows(hand_curves(), RANKS, REASONS)
    with pytest.raises(ValueError, match="model_params_after must be an int >= 0"):
        totals(rows, 5000, -1)
    with pytest.raises(ValueError, match=r"model_macs_before=100 is below the targeted layers' sum 130600"):
        totals(rows, model_macs_before=100, model_macs_after=50)


def test_si() -> None:
    assert [si(950), si(1000), si(12_345), si(4_560_000), si(1_234_000_000)] == [
        "950",
        "1k",
        "12.3k",
        "4.56M",
        "1.23G",
    ]


def test_rich_table_text_lists_every_layer_and_the_totals() -> None:
    rows = layer_rows(hand_curves(), RANKS, REASONS)
    text = render_text(rich_table(rows, totals(rows, 5000, 4200), title="Compression at step 7"))
    assert "Compression at step 7" in text
    lines = text.splitlines()
    for name, rank, s_norm in (("backbone.conv1", "4/8", "0.900"), ("head.fc", "3/6", "0.750")):
        (line,) = [ln for ln in lines if name in ln]
        assert rank in line and s_norm in line
    (dense,) = [ln for ln in lines if "backbone.conv2" in ln]
    assert "dense/4" in dense and "2k -> 2k" in dense
    (total,) = [ln for ln in lines if "total" in ln]
    # 3600/2800 = 1.2857, 130600/105300 = 1.2403
    assert "(2/3 compressed)" in total and "3.6k -> 2.8k x1.29" in total and "131k -> 105k x1.24" in total
    (model,) = [ln for ln in lines if ln.lstrip("│| ").startswith("model")]
    assert "5k -> 4.2k x1.19" in model  # 5000/4200 = 1.1905
    assert "\x1b[" not in text


def _hue_pixels(img: np.ndarray) -> tuple[int, int]:
    """Pixels of matplotlib's tab:red (chosen rank) and tab:orange (tau) lines, anti-aliased on white.

    Blending with white keeps red's G == B and orange's G - B ~ 113 (1 - t); the blue curve, black text
    and grey grid are neither.
    """
    r, g, b = (img[..., i].astype(int) for i in range(3))
    red = (r - g > 60) & (np.abs(g - b) < 15)
    orange = (r > 230) & (g - b > 40) & (r - g > 40)
    return int(red.sum()), int(orange.sum())


def test_plot_score_curves_writes_a_readable_png(tmp_path: Path) -> None:
    base = hand_curves()["backbone.conv1"]
    curves = {f"layer{i}": LayerCurve(f"layer{i}", "cp3", 8, 1000, 50_000, base.candidates) for i in range(8)}
    path = tmp_path / "plots" / "curves.png"
    out = plot_score_curves(curves, path, tau=0.85, chosen={"layer0": 4, "layer1": None})
    assert out == path and path.exists()
    assert [p.name for p in path.parent.iterdir()] == ["curves.png"]  # no temp file left behind
    with Image.open(path) as im:
        assert im.format == "PNG"
        width, height = im.size
        img = np.asarray(im.convert("RGB"))
    assert 800 <= width <= 2000 and 200 <= height <= 1000, im.size  # 6 columns x 2 rows of panels
    assert img.var() > 0
    red, orange = _hue_pixels(img)
    assert red > 0 and orange > 0

    # same curves, no tau and nothing chosen: neither colour, and the file is replaced in place
    plot_score_curves(curves, path, tau=None, chosen={})
    with Image.open(path) as im:
        img = np.asarray(im.convert("RGB"))
    assert _hue_pixels(img) == (0, 0)
    assert len(list(path.parent.iterdir())) == 1


def test_plot_failure_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "curves.png"
    path.write_bytes(b"old")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("par_lightning.atomic_io.os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        plot_score_curves({"head.fc": hand_curves()["head.fc"]}, path, tau=None, chosen={})
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["curves.png"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"curves": {}}, "curves is empty"),
        ({"chosen": {"ghost": 2}}, r"chosen names layers \['ghost'\]"),
        ({"chosen": {"head.fc": 5}}, r"chosen\['head.fc'\] = 5 is not a scored rank"),
        ({"tau": math.nan}, "tau must be a finite float"),
    ],
)
def test_plot_bad_input(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {"curves": hand_curves(), "path": tmp_path / "c.png", "tau": 0.9, "chosen": {}} | kwargs
    with pytest.raises(ValueError, match=match):
        plot_score_curves(**args)
    assert not list(tmp_path.iterdir())


def test_report_modules_import_no_heavy_dependency() -> None:
    modules = ["par_lightning.compression.report", "par_lightning.compression.report_render"]
    assert imported_packages(modules, ("lightning", "pytorch_lightning", "wandb", "rich", "matplotlib")) == []
