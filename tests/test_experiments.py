"""Every YAML under experiments/ parses and instantiates (data pointed at a tiny PA-100K-format set)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning.pytorch import LightningDataModule, LightningModule

from par_lightning.cli import build_cli
from tests.helpers_pa100k import write_pa100k

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
MAIN_CONFIGS = sorted(p for p in EXPERIMENTS.glob("*.yaml"))
OVERRIDES = sorted(p for p in EXPERIMENTS.glob("*/*.yaml") if p.parent.name != "cluster")


@pytest.mark.parametrize("config", MAIN_CONFIGS, ids=lambda p: p.name)
def test_experiment_instantiates(config: Path, tmp_path: Path) -> None:
    data = write_pa100k(tmp_path / "pa100k", sizes=(8, 4, 4))
    cli = build_cli(
        [
            "--config", str(config),
            "--data.init_args.root", str(data.root),
            "--trainer.default_root_dir", str(tmp_path / "run"),
            "--trainer.logger", "false",
        ],
        run=False,
    )  # fmt: skip
    assert isinstance(cli.model, LightningModule) and isinstance(cli.datamodule, LightningDataModule)
    assert cli.model.hparams.num_attributes == cli.datamodule.num_attributes


@pytest.mark.parametrize("override", OVERRIDES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_override_files_compose_with_quickstart(override: Path, tmp_path: Path) -> None:
    data = write_pa100k(tmp_path / "pa100k", sizes=(8, 4, 4))
    cli = build_cli(
        [
            "--config", str(EXPERIMENTS / "quickstart.yaml"),
            "--config", str(override),
            "--data.init_args.root", str(data.root),
            "--trainer.default_root_dir", str(tmp_path / "run"),
        ],
        run=False,
    )  # fmt: skip
    assert cli.trainer is not None
