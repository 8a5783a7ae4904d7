"""Every YAML under experiments/ parses and instantiates (data pointed at a tiny PA-100K-format set)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lightning.pytorch import LightningDataModule, LightningModule

from par_lightning.cli import build_cli
from tests.helpers_pa100k import write_pa100k

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
OVERLAYS = {"predict.yaml"}  # applied on top of a training config; tested in tests/test_predict.py
MAIN_CONFIGS = sorted(p for p in EXPERIMENTS.glob("*.yaml") if p.name not in OVERLAYS)
OVERRIDES = sorted(p for p in EXPERIMENTS.glob("*/*.yaml") if p.parent.name != "cluster")


def write_dataset_for(config: Path, root: Path) -> None:
    """A tiny dataset in the format the config's DataModule reads (synthetic configs generate their own)."""
    from tests.helpers_peta import write_peta
    from tests.helpers_rap import write_rap_v1, write_rap_v2

    data = yaml.safe_load(config.read_text())["data"]
    name = data["class_path"].rsplit(".", 1)[-1]
    version = data.get("init_args", {}).get("version", 1)
    writers = {"PA100KDataModule": write_pa100k, "PETADataModule": write_peta}
    writer = writers.get(name) or (write_rap_v1 if version == 1 else write_rap_v2)
    writer(root)


@pytest.mark.parametrize("config", MAIN_CONFIGS, ids=lambda p: p.name)
def test_experiment_instantiates(config: Path, tmp_path: Path) -> None:
    args = [
        "--config",
        str(config),
        "--trainer.default_root_dir",
        str(tmp_path / "run"),
        "--trainer.logger",
        "false",
    ]
    if "synthetic" in config.name or config.name == "quickstart.yaml":
        args += ["--data.init_args.root", str(tmp_path / "synth"), "--data.init_args.synth_num_images", "40"]
    else:
        write_dataset_for(config, tmp_path / "dataset")
        args += ["--data.init_args.root", str(tmp_path / "dataset")]
    cli = build_cli(args, run=False)
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
