"""The command users type: subcommands, links, omegaconf, config round trip, errors."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from par_lightning.cli import build_cli, main
from par_lightning.module import PARModule
from tests.cli_helpers import tiny_config


def test_console_scripts_resolve_to_this_project() -> None:
    for name in ("lightning", "par-lightning"):
        (ep,) = importlib.metadata.entry_points(group="console_scripts", name=name)
        assert ep.value == "par_lightning.cli:main"
        assert ep.load() is main


def test_installed_lightning_script_runs_our_cli() -> None:
    script = Path(sys.executable).parent / "lightning"
    exe = str(script) if script.exists() else shutil.which("lightning")
    assert exe, "the `lightning` console script is not installed"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "fit" in out.stdout and "synth" not in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "par_lightning", "fit", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "--test_after_fit" in out.stdout


def test_data_facts_are_linked_into_the_model(tmp_path: Path) -> None:
    cli = build_cli(["--config", str(tiny_config(tmp_path))], run=False)
    assert isinstance(cli.model, PARModule)
    assert cli.model.hparams.num_attributes == 26 == cli.datamodule.num_attributes
    assert cli.model.attribute_names == cli.datamodule.attribute_names
    assert cli.model.hparams.pos_ratios == pytest.approx(cli.datamodule.pos_ratios)
    assert cli.model.criterion.pos_ratios.tolist() == pytest.approx(cli.datamodule.pos_ratios)


def test_fit_then_validate_test_predict_from_checkpoint(tmp_path: Path) -> None:
    config = str(tiny_config(tmp_path))
    main(["fit", "--config", config])
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    assert ckpt.is_file()
    assert (tmp_path / "logs" / "lightning_logs" / "version_0" / "config.yaml").is_file()
    for sub in ("validate", "test", "predict"):
        cli = build_cli([sub, "--config", config, "--ckpt_path", str(ckpt)])
        if sub == "predict":
            assert cli.trainer.predict_loop.predictions
    validated = build_cli(["validate", "--config", config, "--ckpt_path", str(ckpt)]).trainer.callback_metrics
    assert 0.0 <= float(validated["val/mA"]) <= 1.0
    # only `fit` saves config.yaml: the others would overwrite a training run's (same log dir with W&B)
    logs = tmp_path / "logs" / "lightning_logs"
    assert sorted(logs.glob("*/config.yaml")) == [logs / "version_0" / "config.yaml"]
    # a rerun in the same directories must not trip over the saved config.yaml
    main(["fit", "--config", config, "--trainer.max_epochs", "1"])


def test_test_after_fit_reports_test_metrics(tmp_path: Path) -> None:
    cli = build_cli(["fit", "--config", str(tiny_config(tmp_path)), "--test_after_fit", "true"])
    assert "test/mA" in cli.trainer.callback_metrics
    assert "test/mA_attr/Female" in cli.trainer.callback_metrics


def test_print_config_round_trip_reproduces_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tiny_config(tmp_path)
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(config), "--print_config"])
    printed = capsys.readouterr().out
    assert "class_path: par_lightning.PARModule" in printed
    replay = tmp_path / "printed.yaml"
    replay.write_text(printed)
    first = build_cli(["fit", "--config", str(config)]).trainer.callback_metrics
    second = build_cli(["fit", "--config", str(replay)]).trainer.callback_metrics
    for key in ("val/mA", "val/loss", "train/loss_epoch"):
        torch.testing.assert_close(first[key], second[key])


def test_omegaconf_interpolation_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config(tmp_path)
    text = config.read_text().replace("max_epochs: 1", "max_epochs: ${oc.env:PAR_TEST_EPOCHS,1}")
    text = text.replace("batch_size: 8", "batch_size: ${trainer.max_epochs}")
    config.write_text(text)
    monkeypatch.setenv("PAR_TEST_EPOCHS", "3")
    cli = build_cli(["--config", str(config)], run=False)
    assert cli.trainer.max_epochs == 3
    assert cli.datamodule.hparams.get("batch_size", getattr(cli.datamodule, "batch_size", None)) == 3


def test_yaml_typo_in_a_key_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tiny_config(tmp_path)
    config.write_text(config.read_text().replace("max_epochs:", "max_epoch:"))
    with pytest.raises(SystemExit):
        build_cli(["fit", "--config", str(config)], run=False)
    assert "max_epoch" in capsys.readouterr().err


def test_unknown_model_lists_valid_names(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    config.write_text(config.read_text().replace("arch: tiny", "arch: tiny_typo"))
    with pytest.raises(ValueError, match=r"unknown model 'tiny_typo'; valid names: .*baseline.*tiny"):
        build_cli(["--config", str(config)], run=False)


def test_unknown_backbone_names_close_matches(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    config.write_text(config.read_text().replace("backbone: test_resnet", "backbone: resnet188"))
    with pytest.raises(ValueError, match=r"unknown timm backbone 'resnet188'.*resnet18"):
        build_cli(["--config", str(config)], run=False)
