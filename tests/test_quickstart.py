"""The README's main job end to end (slow: about 4 minutes on 2 cores; run with `make test-all`)."""

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
