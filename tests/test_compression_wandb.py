"""The compression report in an offline W&B run, read back from the run files (never the network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callbacks.compression_wandb import log_compression_to_wandb
from par_lightning.compression.report import LayerRow, layer_rows, totals
from tests.test_compression_report import RANKS, REASONS, hand_curves
from tests.wandb_reader import read_config, read_history, read_summary, read_table

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def offline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no ~/.netrc: no login
    for var in ("WANDB_API_KEY", "WANDB_DIR", "NETRC", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path


def test_report_lands_in_an_offline_run(offline_env: Path) -> None:
    import wandb

    from par_lightning.loggers import WandbLogger

    curves = hand_curves()
    rows = layer_rows(curves, RANKS, REASONS)
    logger = WandbLogger(save_dir=str(offline_env / "logs"), offline=True, project="report-test")
    try:
        run = logger.experiment
        log_compression_to_wandb(run, rows, totals(rows), curves, step=7)
    finally:
        wandb.finish()
    (run_file,) = (offline_env / "logs" / "wandb").glob("offline-run-*/run-*.wandb")

    layers = read_table(run_file, "compression/layers")
    assert layers["columns"] == [
        "layer",
        "method",
        "ref_rank",
        "rank",
        "score",
        "score_normalised",
        "rel_error",
        "kappa",
        "params_before",
        "params_after",
        "macs_before",
        "macs_after",
        "reason",
    ]
    by_layer = {row[0]: dict(zip(layers["columns"], row, strict=True)) for row in layers["data"]}
    assert list(by_layer) == ["backbone.conv1", "head.fc", "backbone.conv2"]
    assert by_layer["backbone.conv1"]["rank"] == 4
    assert by_layer["backbone.conv1"]["score_normalised"] == pytest.approx(0.45 / 0.5)
    assert (by_layer["head.fc"]["params_after"], by_layer["head.fc"]["kappa"]) == (300, None)
    dense = by_layer["backbone.conv2"]
    assert (dense["rank"], dense["params_after"], dense["macs_after"], dense["reason"]) == (
        None,
        2000,
        80_000,
        "low ref score",
    )
    assert LayerRow(**dense) == rows[2]

    # line_series stores (x, line, y) triples: the scored ranks ascending, s(r)/s(r_ref), per layer
    curve_table = read_table(run_file, "compression/score_curves_table")
    triples = [(x, key, pytest.approx(y)) for x, key, y in curve_table["data"]]
    assert triples == [
        (2, "backbone.conv1", 0.3 / 0.5),
        (4, "backbone.conv1", 0.45 / 0.5),
        (8, "backbone.conv1", 1.0),
        (3, "head.fc", 0.6 / 0.8),
        (6, "head.fc", 1.0),
        (2, "backbone.conv2", 0.1 / 0.2),
        (4, "backbone.conv2", 1.0),
    ]
    chart = read_config(run_file)["_wandb"]["visualize"]["compression/score_curves"]
    assert chart["panel_config"]["panelDefId"] == "wandb/lineseries/v0"

    summary = read_summary(run_file)
    assert summary["compression/params_ratio"] == pytest.approx((1000 + 600 + 2000) / (500 + 300 + 2000))
    assert summary["compression/macs_ratio"] == pytest.approx(
        (50_000 + 600 + 80_000) / (25_000 + 300 + 80_000)
    )
    assert (summary["compression/n_compressed"], summary["compression/n_layers"]) == (2, 3)
    assert "compression/model_params_ratio" not in summary  # None fields are left out

    (logged,) = [r for r in read_history(run_file) if "compression/layers/path" in r]
    assert logged["trainer/global_step"] == 7


def test_bad_arguments_fail_before_logging() -> None:
    class NoRun:
        def log(self, data: dict) -> None:
            raise AssertionError("nothing may be logged")

    curves = hand_curves()
    rows = layer_rows(curves, RANKS, REASONS)
    with pytest.raises(ValueError, match="rows is empty"):
        log_compression_to_wandb(NoRun(), [], totals([]), curves, step=None)
    with pytest.raises(ValueError, match="prefix must be non-empty without a trailing '/'"):
        log_compression_to_wandb(NoRun(), rows, totals(rows), curves, step=None, prefix="c/")
