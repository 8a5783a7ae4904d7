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


@pytest.mark.parametrize(
    ("data_class", "extra", "num_attributes"),
    [
        ("data_modules.PETADataModule", [], 35),
        ("data_modules.RAPDataModule", ["--data.init_args.version", "1"], 51),
        ("data_modules.RAPDataModule", ["--data.init_args.version", "2"], 54),
    ],
    ids=["peta", "rap1", "rap2"],
)
def test_baseline_config_runs_on_other_datasets(
    data_class: str, extra: list[str], num_attributes: int, tmp_path: Path
) -> None:
    """The README's recipe: the PA-100K baseline config with ``--data`` pointing at another dataset."""
    from tests.helpers_peta import write_peta
    from tests.helpers_rap import write_rap_v1, write_rap_v2

    root = tmp_path / "dataset"
    writer = {"PETADataModule": write_peta, "1": write_rap_v1, "2": write_rap_v2}[
        extra[-1] if extra else "PETADataModule"
    ]
    writer(root)
    cli = build_cli(
        [
            "--config", str(EXPERIMENTS / "baseline_pa100k.yaml"),
            "--data", data_class,
            "--data.init_args.root", str(root),
            *extra,
            "--trainer.default_root_dir", str(tmp_path / "run"),
            "--trainer.logger", "false",
        ],
        run=False,
    )  # fmt: skip
    assert type(cli.datamodule).__name__ == data_class.split(".")[-1]
    assert cli.model.hparams.num_attributes == num_attributes == len(cli.model.attribute_names)
