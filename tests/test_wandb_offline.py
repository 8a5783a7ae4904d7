"""W&B is offline unless configured: an offline run directory with the logged metrics, no login."""

from __future__ import annotations

from pathlib import Path

import pytest

from par_lightning.cli import build_cli
from par_lightning.loggers import wandb_configured
from tests.cli_helpers import tiny_config
from tests.wandb_reader import read_history


def test_wandb_configured_rules(tmp_path: Path) -> None:
    empty_netrc = tmp_path / "none"
    assert not wandb_configured({}, netrc_path=str(empty_netrc))
    assert wandb_configured({"WANDB_API_KEY": "x" * 40}, netrc_path=str(empty_netrc))
    assert wandb_configured({"WANDB_MODE": "online"}, netrc_path=str(empty_netrc))
    assert not wandb_configured({"WANDB_MODE": "offline", "WANDB_API_KEY": "k"}, netrc_path=str(empty_netrc))
    assert not wandb_configured({"WANDB_MODE": "disabled"}, netrc_path=str(empty_netrc))
    login = tmp_path / "netrc"
    login.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    login.chmod(0o600)
    assert wandb_configured({}, netrc_path=str(login))
    assert not wandb_configured({"WANDB_BASE_URL": "https://wandb.example.org"}, netrc_path=str(login))


def test_fit_writes_an_offline_run_with_the_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no ~/.netrc: W&B is not configured
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DIR", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    try:
        cli = build_cli(["fit", "--config", str(tiny_config(tmp_path, logger="wandb"))])
    finally:
        wandb.finish()
    runs = list((tmp_path / "wandb_logs" / "wandb").glob("*run-*"))
    assert len(runs) == 1 and runs[0].name.startswith("offline-run-"), runs
    (run_file,) = runs[0].glob("run-*.wandb")
    rows = read_history(run_file)
    val_rows = [r for r in rows if "val/mA" in r]
    assert val_rows, f"no val/mA in {len(rows)} history rows"
    assert val_rows[-1]["val/mA"] == pytest.approx(float(cli.trainer.callback_metrics["val/mA"]), abs=1e-6)
    assert "val/mA_attr/Skirt&Dress" in val_rows[-1]
    assert any("train/loss_step" in r for r in rows)
