"""Checkpoints of a compressed run: every way of loading one rebuilds the factorized architecture.

One CLI ``fit`` (module fixture) compresses at the start of epoch 1 of 3 and keeps a checkpoint per
epoch: ``epoch=0`` (dense, before the swap), ``epoch=1`` (compressed, mid warm-up), ``epoch=2`` and
``last``. Each test loads one of them another way and compares the model's outputs on a fixed batch
with a reference: a fresh module, the checkpoint's plan applied without decomposing
(``apply_compression(decompose=False)``) and the checkpoint's own state dict loaded strictly.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from callbacks import GradientRankCompression
from par_lightning import PARModule
from par_lightning.cli import PARCLI, build_cli
from par_lightning.compression.plan import CompressionPlan
from tests.cli_helpers import tiny_config
from tests.scripts.compress_fit import FAST_COMPRESSION

pytestmark = pytest.mark.usefixtures("one_thread")

LAYERS = ["backbone.layer4.0.conv2", "backbone.layer3.0.conv3", "classifier"]
WARMUP = 5  # > the 3 steps of epoch 1: the epoch=1 checkpoint is saved mid warm-up
COMPRESSION = {
    "class_path": "callbacks.GradientRankCompression",
    "init_args": {**FAST_COMPRESSION, "compress_at_epoch": 1, "include": LAYERS, "warmup_steps": WARMUP},
}
PROBE = {"class_path": "tests.test_compression_checkpoints.OutputProbe"}
STEPS_PER_EPOCH = 3  # 24 training images, batch size 8


def fixed_batch() -> torch.Tensor:
    """Four normalised-looking images at the run's 32x16 resolution, the same on every call."""
    return torch.randn(4, 3, 32, 16, generator=torch.Generator().manual_seed(1234))


def outputs(module: L.LightningModule) -> torch.Tensor:
    """Eval-mode logits on the fixed batch; the module's train/eval mode is restored."""
    was_training = module.training
    module.eval()
    with torch.no_grad():
        out = module(fixed_batch().to(module.device)).cpu()
    module.train(was_training)
    return out


class OutputProbe(Callback):
    """Records, once everything is restored and before the first step, the outputs and the compression state."""

    def __init__(self) -> None:
        self.at_start: dict[str, Any] | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        (compression,) = [cb for cb in trainer.callbacks if isinstance(cb, GradientRankCompression)]
        plan = pl_module.compression_plan
        self.at_start = {
            "outputs": outputs(pl_module),
            "plan": None if plan is None else plan.to_dict(),
            "done": compression.done,
            "warmup_done": compression.warmup_done,
            "global_step": trainer.global_step,
        }


def reference(ckpt_path: Path) -> PARModule:
    """A fresh module rebuilt from the checkpoint's hyper-parameters, plan and state dict (strict)."""
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")}
    module = PARModule(**hparams)
    if "compression_plan" in ckpt:
        module.apply_compression(CompressionPlan.from_dict(ckpt["compression_plan"]), decompose=False)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()


def _write_config(base: dict[str, Any], run_dir: Path, *, max_epochs: int, probe: bool) -> Path:
    """The base experiment with its own checkpoint/log/root dirs (runs must not overwrite each other)."""
    config = copy.deepcopy(base)
    trainer = config["trainer"]
    trainer["max_epochs"] = max_epochs
    trainer["default_root_dir"] = str(run_dir / "root")
    trainer["logger"]["init_args"]["save_dir"] = str(run_dir / "logs")
    trainer["callbacks"] = [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {
                "dirpath": str(run_dir / "ckpt"),
                "filename": "{epoch}",
                "save_top_k": -1,
                "save_last": True,
            },
        },
        COMPRESSION,
        *([PROBE] if probe else []),
    ]
    path = run_dir / "config.yaml"
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Experiment:
    """The base config and the finished 3-epoch run that compressed at epoch 1."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = yaml.safe_load(tiny_config(root / "data").read_text())
        self.run_dir = root / "base"
        self.cli = build_cli(["fit", "--config", str(self.config(self.run_dir, max_epochs=3, probe=False))])
        self.ckpt_dir = self.run_dir / "ckpt"

    def config(self, run_dir: Path, *, max_epochs: int = 3, probe: bool = True) -> Path:
        return _write_config(self.base, run_dir, max_epochs=max_epochs, probe=probe)

    def ckpt(self, name: str) -> Path:
        path = self.ckpt_dir / f"{name}.ckpt"
        assert path.is_file(), sorted(p.name for p in self.ckpt_dir.iterdir())
        return path


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    threads = torch.get_num_threads()  # module fixtures run before the function-scoped ``one_thread``
    torch.set_num_threads(1)
    try:
        exp = Experiment(tmp_path_factory.mktemp("compression_ckpt"))
    finally:
        torch.set_num_threads(threads)
    plan = exp.cli.model.compression_plan
    assert plan is not None and set(plan.layers) == set(LAYERS), "the test needs every target factorized"
    return exp


def _probe(cli: PARCLI) -> dict[str, Any]:
    (probe,) = [cb for cb in cli.trainer.callbacks if type(cb).__name__ == "OutputProbe"]
    assert probe.at_start is not None, "training never started"
    return probe.at_start


def _assert_same_outputs(actual: torch.Tensor, ckpt_path: Path) -> None:
    expected = outputs(reference(ckpt_path))
    assert torch.equal(actual, expected), (actual - expected).abs().max()


def test_checkpoints_hold_the_plan_from_the_swap_on(experiment: Experiment) -> None:
    dense = torch.load(experiment.ckpt("epoch=0"), map_location="cpu", weights_only=True)
    assert "compression_plan" not in dense
    assert dense["callbacks"]["GradientRankCompression"] == {"done": 0, "warmup_done": 0}
    plan = experiment.cli.model.compression_plan.to_dict()
    for name, warmup_done in (("epoch=1", STEPS_PER_EPOCH), ("epoch=2", WARMUP), ("last", WARMUP)):
        ckpt = torch.load(experiment.ckpt(name), map_location="cpu", weights_only=True)  # plain types only
        assert ckpt["compression_plan"] == plan, name
        assert ckpt["callbacks"]["GradientRankCompression"] == {"done": 1, "warmup_done": warmup_done}, name
    (stage,) = plan["meta"]["stages"]
    assert stage["epoch"] == 1 and sorted(stage["layers"]) == sorted(LAYERS)


def test_weights_only_load_rebuilds_the_trained_model(experiment: Experiment) -> None:
    """The reference (built from a ``weights_only`` load) reproduces the model the fit ended with."""
    assert torch.equal(outputs(experiment.cli.model), outputs(reference(experiment.ckpt("last"))))


def test_load_from_checkpoint_without_the_callback(experiment: Experiment) -> None:
    path = experiment.ckpt("last")
    module = PARModule.load_from_checkpoint(path, map_location="cpu")
    assert set(module.compression_plan.layers) == set(LAYERS)
    assert not isinstance(module.model.get_submodule("classifier"), torch.nn.Linear)
    _assert_same_outputs(outputs(module), path)


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_evaluation_subcommands_load_the_compressed_checkpoint(
    experiment: Experiment, tmp_path: Path, subcommand: str
) -> None:
    path = experiment.ckpt("last")
    config = experiment.config(tmp_path, probe=False)
    cli = build_cli([subcommand, "--config", str(config), "--ckpt_path", str(path)])
    assert set(cli.model.compression_plan.layers) == set(LAYERS)
    _assert_same_outputs(outputs(cli.model), path)
    ref = reference(path)
    dm = cli.datamodule
    if subcommand == "predict":
        predictions = torch.cat(cli.trainer.predict_loop.predictions)
        with torch.no_grad():
            expected = torch.cat([torch.sigmoid(ref(images)) for images, _ in dm.predict_dataloader()])
        assert torch.equal(predictions, expected)
    else:
        stage = "val" if subcommand == "validate" else "test"
        loader = dm.val_dataloader() if stage == "val" else dm.test_dataloader()
        (batch,) = list(loader)  # 8 images, batch size 8
        with torch.no_grad():
            expected_loss = ref.compute_loss(batch)
        assert cli.trainer.callback_metrics[f"{stage}/loss"].item() == pytest.approx(
            expected_loss.item(), rel=1e-6
        )


def test_fit_resumes_mid_fine_tune_without_compressing_again(experiment: Experiment, tmp_path: Path) -> None:
    path = experiment.ckpt("epoch=1")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    cli = build_cli(["fit", "--config", str(experiment.config(tmp_path)), "--ckpt_path", str(path)])
    start = _probe(cli)
    assert start["plan"] == saved["compression_plan"]
    assert (start["done"], start["warmup_done"]) == (1, STEPS_PER_EPOCH)  # callback state restored
    assert start["global_step"] == 2 * STEPS_PER_EPOCH
    _assert_same_outputs(start["outputs"], path)
    _assert_finished_compressed(cli, tmp_path, saved["compression_plan"])


def _assert_finished_compressed(cli: PARCLI, run_dir: Path, plan: dict[str, Any]) -> None:
    assert cli.trainer.current_epoch == 3 and cli.trainer.global_step == 3 * STEPS_PER_EPOCH
    assert cli.model.compression_plan.to_dict() == plan, "the model was compressed again"
    (compression,) = [cb for cb in cli.trainer.callbacks if isinstance(cb, GradientRankCompression)]
    assert (compression.done, compression.warmup_done) == (1, WARMUP)
    assert not list((run_dir / "ckpt").glob("compression_plan_stage*.json")), "a compression stage ran"
    last = torch.load(run_dir / "ckpt" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["compression_plan"] == plan
    assert torch.equal(outputs(cli.model), outputs(reference(run_dir / "ckpt" / "last.ckpt")))


def test_requeued_job_restarts_from_the_hpc_checkpoint(
    experiment: Experiment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A requeued SLURM job: same command, no ckpt_path; Lightning picks ``hpc_ckpt_N`` in default_root_dir."""
    for var, value in {
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_NNODES": "1",
        "SLURM_JOB_NAME": "par-requeue-test",  # not "bash"/"interactive": SLURM is detected
        "SLURM_JOB_ID": "4242",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_RESTART_COUNT": "1",
        "MASTER_ADDR": "127.0.0.1",  # set here so the environment plugin cannot leak its own values
        "MASTER_PORT": "19242",
    }.items():
        monkeypatch.setenv(var, value)
    config = experiment.config(tmp_path)
    hpc = tmp_path / "root" / "hpc_ckpt_1.ckpt"
    hpc.parent.mkdir(parents=True)
    shutil.copy(experiment.ckpt("epoch=1"), hpc)
    saved = torch.load(hpc, map_location="cpu", weights_only=True)
    cli = build_cli(["fit", "--config", str(config)])
    assert Path(cli.trainer.ckpt_path) == hpc
    start = _probe(cli)
    assert start["plan"] == saved["compression_plan"] and start["global_step"] == 2 * STEPS_PER_EPOCH
    _assert_same_outputs(start["outputs"], hpc)
    _assert_finished_compressed(cli, tmp_path, saved["compression_plan"])


def test_checkpoint_from_before_the_swap_resumes_then_compresses(
    experiment: Experiment, tmp_path: Path
) -> None:
    path = experiment.ckpt("epoch=0")
    cli = build_cli(["fit", "--config", str(experiment.config(tmp_path)), "--ckpt_path", str(path)])
    start = _probe(cli)
    assert (start["plan"], start["done"], start["global_step"]) == (None, 0, STEPS_PER_EPOCH)
    _assert_same_outputs(start["outputs"], path)
    assert cli.trainer.current_epoch == 3
    plan = cli.model.compression_plan
    assert plan is not None and set(plan.layers) == set(LAYERS)
    (stage,) = plan.meta["stages"]
    assert (stage["epoch"], stage["global_step"]) == (1, STEPS_PER_EPOCH)
    assert (tmp_path / "ckpt" / "compression_plan_stage1.json").is_file()
    last = tmp_path / "ckpt" / "last.ckpt"
    assert torch.equal(outputs(cli.model), outputs(reference(last)))
