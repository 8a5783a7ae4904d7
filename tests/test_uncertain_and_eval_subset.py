"""RAP's ``uncertain: ignore`` masks label 2 out of loss and metrics; PETA ``attributes: all`` evaluates 35."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from data_modules import PETADataModule, RAPDataModule
from par_lightning.cli import build_cli
from par_lightning.module import PARModule
from tests.helpers_peta import write_peta
from tests.helpers_rap import write_rap_v1

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _numpy_masked_loss(logits: np.ndarray, y: np.ndarray, p: np.ndarray) -> float:
    """Spec §8 DeepMAR loss in float64 with entries equal to 2 weighted 0 (sum over attributes, mean over batch)."""
    mask = y <= 1
    pos = (y == 1).astype(np.float64)
    weight = np.exp(pos * (1 - p) + (1 - pos) * p)
    bce = np.maximum(logits, 0) - logits * pos + np.log1p(np.exp(-np.abs(logits)))
    return float((weight * bce * mask).sum() / len(y))


def _numpy_masked_ma(probs: np.ndarray, y: np.ndarray) -> float:
    """Spec §7.1 mA where entries equal to 2 count in neither P_j nor N_j (ε = 1e-20)."""
    pred = probs > 0.5
    pos, neg = y == 1, y == 0
    tpr = (pred & pos).sum(0) / (pos.sum(0) + 1e-20)
    tnr = (~pred & neg).sum(0) / (neg.sum(0) + 1e-20)
    return float(((tpr + tnr) / 2).mean())


@pytest.mark.parametrize("uncertain", ["ignore", "negative"])
def test_rap_uncertain_policy_in_loss_and_metrics(uncertain: str, tmp_path: Path) -> None:
    write_rap_v1(tmp_path / "rap")
    dm = RAPDataModule(
        root=str(tmp_path / "rap"), version=1, uncertain=uncertain, height=32, width=16, num_workers=0,
        batch_size=64, test_split="train",
    )  # fmt: skip
    dm.setup("test")
    images, targets = next(iter(dm.test_dataloader()))
    has_two = bool((targets == 2).any())
    assert has_two == (uncertain == "ignore"), "the helper writes 2s into column 0 (Female)"
    torch.manual_seed(0)
    module = PARModule(
        arch="tiny", backbone="test_resnet", num_attributes=51, pos_ratios=dm.pos_ratios
    ).eval()
    with torch.no_grad():
        logits = module(images)
        loss = module._shared_step((images, targets), "test")
    y, z = targets.numpy().astype(np.int64), logits.double().numpy()
    assert float(loss) == pytest.approx(_numpy_masked_loss(z, y, np.array(dm.pos_ratios)), rel=1e-5)
    result = module.test_metrics.compute()
    probs = 1 / (1 + np.exp(-z))
    assert float(result["mA"]) == pytest.approx(_numpy_masked_ma(probs, y), abs=1e-6)
    if uncertain == "ignore":  # masking really changes the figures compared with treating 2 as negative
        as_negative = np.where(y == 2, 0, y)
        assert _numpy_masked_loss(z, y, np.array(dm.pos_ratios)) != pytest.approx(
            _numpy_masked_loss(z, as_negative, np.array(dm.pos_ratios))
        )


def test_peta_all_attributes_train_on_105_evaluate_35(tmp_path: Path) -> None:
    write_peta(tmp_path / "peta")
    cli = build_cli(
        [
            "--config", str(EXPERIMENTS / "baseline_peta.yaml"),
            "--data.init_args.root", str(tmp_path / "peta"),
            "--data.init_args.attributes", "all",
            "--trainer.logger", "false",
            "--trainer.default_root_dir", str(tmp_path / "run"),
        ],
        run=False,
    )  # fmt: skip
    assert isinstance(cli.datamodule, PETADataModule)
    assert cli.model.hparams.num_attributes == 105 and cli.model.num_eval == 35
    module = PARModule(arch="tiny", backbone="test_resnet", num_attributes=105, num_eval_attributes=35).eval()
    targets = torch.randint(0, 2, (4, 105)).float()
    with torch.no_grad():
        module._shared_step((torch.randn(4, 3, 32, 16), targets), "val")
    assert module.val_metrics.tp.shape == (35,)
    with pytest.raises(ValueError, match="num_eval_attributes must be in"):
        PARModule(arch="tiny", backbone="test_resnet", num_attributes=4, num_eval_attributes=5)
