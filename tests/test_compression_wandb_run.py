"""A compressing fit with the offline W&B logger: the report is in the run, read back from its files.

Checked against independent sources: the table's rows against the plan file the callback saved, the
logged ``model/params`` against the parameters of the model the fit ends with.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from par_lightning.cli import build_cli
from tests.scripts.compress_fit import FAST_COMPRESSION, compress_config
from tests.wandb_reader import read_history, read_summary, read_table

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def offline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no ~/.netrc: W&B is not configured, the run is offline
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DIR", "NETRC", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path


def test_compressing_fit_writes_the_report_to_an_offline_run(offline_env: Path) -> None:
    import wandb

    config = compress_config(offline_env, logger="wandb", max_epochs=2, compression={"compress_at_epoch": 1})
    try:
        cli = build_cli(["fit", "--config", str(config)])
    finally:
        wandb.finish()
    (run_dir,) = (offline_env / "wandb_logs" / "wandb").glob("offline-run-*")
    (run_file,) = run_dir.glob("run-*.wandb")

    # the plan file and the score plot next to the checkpoints, the plot also in the W&B run
    ckpt_dir = offline_env / "ckpt"
    plan = json.loads((ckpt_dir / "compression_plan_stage1.json").read_text())
    assert plan["layers"], "nothing was factorized: the test would prove nothing"
    assert (ckpt_dir / "compression_scores_stage1.png").read_bytes().startswith(b"\x89PNG")
    saved_plan = run_dir / "files" / "compression_plan_stage1.json"
    assert json.loads(saved_plan.read_text()) == json.loads(
        (ckpt_dir / "compression_plan_stage1.json").read_text()
    )
    logged_pngs = list((run_dir / "files" / "media" / "images").rglob("*.png"))
    assert logged_pngs and all(p.read_bytes().startswith(b"\x89PNG") for p in logged_pngs), logged_pngs

    # one table row per targeted layer; the compressed rows carry the plan's ranks
    table = read_table(run_file, "compression/stage1/layers")
    rows = {r[0]: dict(zip(table["columns"], r, strict=True)) for r in table["data"]}
    assert len(table["data"]) == len(rows) == len(FAST_COMPRESSION["include"])
    assert set(rows) == set(FAST_COMPRESSION["include"])
    for name, row in rows.items():
        expected = plan["layers"][name]["rank"] if name in plan["layers"] else None
        assert row["rank"] == expected, (name, row, expected)
    summary = read_summary(run_file)
    assert summary["compression/stage1/n_compressed"] == len(plan["layers"])

    # the metrics right after the swap and the model size, in the history
    history = read_history(run_file)
    after = [r for r in history if "compression/after_swap/val_mA" in r]
    assert len(after) == 1 and 0.0 <= after[0]["compression/after_swap/val_mA"] <= 1.0
    assert any("compression/before_swap/val_mA" in r for r in history)
    sizes = [r["model/params"] for r in history if "model/params" in r]
    assert sizes and sizes[-1] == sum(p.numel() for p in cli.model.model.parameters())
