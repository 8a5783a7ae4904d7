"""The README's main job end to end, compression included (slow: about 5 minutes on 2 cores; `make test-all`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from par_lightning.cli import build_cli

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"


@pytest.mark.slow
def test_quickstart_reaches_the_documented_test_ma(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)  # runs/quickstart/... lands here
    cli = build_cli(["fit", "--config", str(QUICKSTART)])
    assert (tmp_path / "data" / "synthetic_pa100k" / "annotation.mat").is_file()
    assert float(cli.trainer.callback_metrics["test/mA"]) >= 0.75
    plan = cli.model.compression_plan  # compressed at epoch 5, fine-tuned, and the compressed model tested
    assert plan is not None and plan.layers
    assert (tmp_path / "runs" / "quickstart" / "checkpoints" / "compression_plan_stage1.json").is_file()
