"""PARModule's compression record: stages merge, bad checkpoints are refused, calibration data is unaugmented."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from data_modules import PA100KDataModule
from par_lightning.compression import CompressionPlan, LayerPlan, PlanError
from par_lightning.module import PARModule
from tests.helpers_pa100k import write_pa100k

pytestmark = pytest.mark.usefixtures("one_thread")


def _module() -> PARModule:
    torch.manual_seed(0)
    return PARModule(arch="tiny", backbone="test_resnet", num_attributes=26)


def _plan(name: str, method: str, rank: int) -> CompressionPlan:
    return CompressionPlan({name: LayerPlan(method, rank)}, {"stage": 1})  # type: ignore[arg-type]


def test_stages_merge_into_one_plan_and_a_layer_is_factorized_once() -> None:
    m = _module()
    m.apply_compression(_plan("classifier", "svd", 4))
    m.apply_compression(
        _plan("backbone.layer4.0.conv2", "cp3", 8), cp_kwargs={"als_iters": 5, "epc_sweeps": 0}
    )
    plan = m.compression_plan
    assert plan is not None and set(plan.layers) == {"classifier", "backbone.layer4.0.conv2"}
    assert [s["layers"] for s in plan.meta["stages"]] == [["classifier"], ["backbone.layer4.0.conv2"]]
    assert isinstance(m.model.classifier, torch.nn.Sequential)
    with pytest.raises(PlanError, match="already factorized"):
        m.apply_compression(_plan("classifier", "svd", 2))


def test_compressed_checkpoint_rebuilds_and_a_dense_one_is_refused_by_a_compressed_module() -> None:
    src = _module()
    src.apply_compression(_plan("classifier", "svd", 4))
    ckpt: dict = {}
    src.on_save_checkpoint(ckpt)
    assert ckpt["compression_plan"] == src.compression_plan.to_dict()  # type: ignore[union-attr]

    fresh = _module()
    fresh.on_load_checkpoint(ckpt)
    fresh.load_state_dict(src.state_dict())  # strict: the structure matches
    x = torch.randn(2, 3, 32, 16)
    src.eval(), fresh.eval()
    torch.testing.assert_close(fresh(x), src(x), rtol=0, atol=0)

    with pytest.raises(PlanError, match="holds a dense model"):
        fresh.on_load_checkpoint({})
    other = _module()
    other.apply_compression(_plan("classifier", "svd", 3))
    with pytest.raises(PlanError, match="differ from the checkpoint"):
        other.on_load_checkpoint(ckpt)


def test_calibration_loader_uses_the_evaluation_transform_in_a_seeded_order(tmp_path: Path) -> None:
    data = write_pa100k(tmp_path / "pa", sizes=(10, 4, 4))
    dm = PA100KDataModule(root=str(data.root), height=32, width=16, pad=4, batch_size=4, num_workers=0)
    with pytest.raises(RuntimeError, match="setup"):
        dm.calibration_dataloader()
    dm.setup("fit")
    a = [b for b in dm.calibration_dataloader(seed=3)]
    b = [b for b in dm.calibration_dataloader(seed=3)]
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)  # no random augmentation, same order
    val = dm.datasets["train"]
    # every calibration image equals the evaluation-transform image of some training sample
    evaluated = PA100KDataModule(root=str(data.root), height=32, width=16, pad=4, batch_size=4, num_workers=0)
    evaluated.setup("fit")
    evaluated.datasets["train"].transform = dm.calibration_dataloader().dataset.transform
    refs = torch.stack([evaluated.datasets["train"][i][0] for i in range(len(val))])
    for x in torch.cat([x for x, _ in a]):
        assert (refs - x).abs().flatten(1).amax(1).min() == 0
    assert sum(len(x) for x, _ in a) == len(val)
