"""W&B is offline unless configured: an offline run directory with the logged metrics, no login."""

from __future__ import annotations

from pathlib import Path

import pytest

from par_lightning.cli import build_cli
from par_lightning.loggers import WandbLogger, slurm_run_id, wandb_configured
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


def test_slurm_run_id_rules() -> None:
    assert slurm_run_id({}) is None
    assert slurm_run_id({"SLURM_JOB_ID": "123"}) == "slurm-123"
    assert slurm_run_id({"SLURM_JOB_ID": "123", "SLURM_CLUSTER_NAME": "juwels"}) == "slurm-juwels-123"
    array = {"SLURM_JOB_ID": "130", "SLURM_ARRAY_JOB_ID": "123", "SLURM_ARRAY_TASK_ID": "7"}
    assert slurm_run_id(array) == "slurm-123_7"  # the array task, not the per-task job id
    assert slurm_run_id({"SLURM_JOB_ID": "123", "SLURM_JOB_NAME": "interactive"}) is None
    assert slurm_run_id({"SLURM_JOB_ID": "123", "SLURM_JOB_NAME": "bash"}) is None


def test_wandb_run_id_follows_the_slurm_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A requeued job (same job id) resumes its W&B run; an explicit ``version`` still wins."""
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_JOB_NAME", "par-lightning")
    for var in ("SLURM_CLUSTER_NAME", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(var, raising=False)
    logger = WandbLogger(save_dir=str(tmp_path), offline=True)
    assert logger._wandb_init["id"] == "slurm-4242" and logger._wandb_init["resume"] == "allow"
    assert WandbLogger(save_dir=str(tmp_path), offline=True, version="mine")._wandb_init["id"] == "mine"
    monkeypatch.delenv("SLURM_JOB_ID")
    assert WandbLogger(save_dir=str(tmp_path), offline=True)._wandb_init["id"] is None
