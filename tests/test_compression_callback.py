"""``GradientRankCompression`` in a single-process ``fit`` (CPU, tiny model, a few steps).

Two probe callbacks sit on either side of the compression callback in ``trainer.callbacks``, so they
see the model, optimizer and scheduler in the very hook that runs the swap: just before and just after
it. A shadow copy of the optimizer, stepped on the same gradients, gives the plain (un-warmed) update
that the warm-up must scale.
"""

from __future__ import annotations

import copy
import csv
import json
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, StochasticWeightAveraging
from lightning.pytorch.callbacks.weight_averaging import EMAWeightAveraging
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from callbacks import GradientRankCompression
from data_modules import PA100KDataModule
from par_lightning import PARModule
from par_lightning.compression.plan import CompressionPlan
from tests.helpers_pa100k import write_pa100k
from tests.scripts.compress_fit import FAST_COMPRESSION

pytestmark = pytest.mark.usefixtures("one_thread")

LAYERS = ["backbone.layer4.0.conv2", "backbone.layer3.0.conv3", "classifier"]
UNTOUCHED = "model.backbone.layer1.0.conv1.weight"  # a parameter no compression stage replaces
LR = 1e-3
HEAD_LR_SCALE = 10.0  # two param groups with different lrs: the transfer must match them by name
WARMUP = 3
FAST = {  # the smallest effort that still factorizes all three layers of the tiny net
    **FAST_COMPRESSION,
    "include": LAYERS,
    "bn_recalibration_batches": 1,  # != the training steps so far: num_batches_tracked tells them apart
    "warmup_steps": WARMUP,
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 train / 8 val / 8 test images: 3 optimizer steps per epoch at batch size 8."""
    return write_pa100k(tmp_path_factory.mktemp("pa100k"), sizes=(24, 8, 8)).root


def _datamodule(root: Path) -> PA100KDataModule:
    return PA100KDataModule(root=str(root), height=32, width=16, pad=2, batch_size=8, num_workers=0)


def _module(dm: PA100KDataModule, scheduler: Any, interval: str) -> PARModule:
    return PARModule(
        arch="tiny",
        backbone="test_resnet",
        num_attributes=dm.num_attributes,
        pos_ratios=dm.pos_ratios,
        optimizer=partial(torch.optim.Adam, lr=LR),
        lr_scheduler=scheduler,
        scheduler_interval=interval,
        head_lr_scale=HEAD_LR_SCALE,
    )


def _trainable(pl_module: L.LightningModule) -> dict[str, nn.Parameter]:
    return {n: p for n, p in pl_module.named_parameters() if p.requires_grad}


@dataclass
class Snapshot:
    """What a probe saw in the hook that runs the swap."""

    global_step: int
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scheduler_position: int
    lrs: list[float]
    params: dict[str, nn.Parameter]
    n_params: int
    layer_types: dict[str, type]
    bn_stats: dict[str, tuple[torch.Tensor, torch.Tensor, int]]
    untouched_state: dict[str, tuple[torch.Tensor, torch.Tensor]]
    with_state: set[str]  # parameters the optimizer holds state for


@dataclass(eq=False)
class Probe(Callback):
    """Snapshots the training state in the swap hook; placed before or after the compression callback."""

    hook: str  # "on_train_batch_end" or "on_train_epoch_start"
    at: int  # global step / epoch of the swap
    seen: Snapshot | None = None

    def _snap(self, trainer: L.Trainer, pl_module: Any, position: int) -> None:
        if position != self.at or self.seen is not None:
            return
        (opt,) = trainer.optimizers
        params = _trainable(pl_module)
        state = opt.state[params[UNTOUCHED]]
        self.seen = Snapshot(
            global_step=trainer.global_step,
            optimizer=opt,
            scheduler=trainer.lr_scheduler_configs[0].scheduler,
            scheduler_position=trainer.lr_scheduler_configs[0].scheduler.last_epoch,
            lrs=[g["lr"] for g in opt.param_groups],
            params=params,
            n_params=sum(p.numel() for p in pl_module.model.parameters()),
            layer_types={n: type(pl_module.model.get_submodule(n)) for n in LAYERS},
            bn_stats={
                n: (m.running_mean.clone(), m.running_var.clone(), int(m.num_batches_tracked))
                for n, m in pl_module.model.named_modules()
                if isinstance(m, _BatchNorm)
            },
            untouched_state={k: (v, v.clone()) for k, v in state.items()},  # the tensor and its value now
            with_state={n for n, p in params.items() if opt.state.get(p)},
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if self.hook == "on_train_batch_end":
            self._snap(trainer, pl_module, trainer.global_step)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self.hook == "on_train_epoch_start":
            self._snap(trainer, pl_module, trainer.current_epoch)


@dataclass(eq=False)
class StepProbe(Callback):
    """After the swap: every optimizer step's actual change vs the plain step of a shadow optimizer."""

    compression: GradientRankCompression
    steps: list[dict[str, Any]] = field(default_factory=list)
    _pending: dict[str, Any] | None = None

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if self.compression.done == 0:
            return
        params = _trainable(pl_module)
        (optimizer,) = trainer.optimizers  # the torch optimizer itself
        shadow = copy.deepcopy(optimizer)  # copies params and state, keyed consistently; not .grad
        for real, twin in zip(_flat(optimizer), _flat(shadow), strict=True):
            twin.grad = None if real.grad is None else real.grad.clone()
        shadow.step()
        plain = {n: p.detach().clone() for n, p in zip(_names(optimizer, params), _flat(shadow), strict=True)}
        self._pending = {
            "before": {n: p.detach().clone() for n, p in params.items()},
            "plain": plain,
            "missing_grad": sorted(n for n, p in params.items() if p.grad is None),
            "warmup_done": self.compression.warmup_done,
        }

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if self._pending is not None:
            self._pending["after"] = {n: p.detach().clone() for n, p in _trainable(pl_module).items()}
            self.steps.append(self._pending)
            self._pending = None


def _flat(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for g in optimizer.param_groups for p in g["params"]]


def _names(optimizer: torch.optim.Optimizer, params: dict[str, nn.Parameter]) -> list[str]:
    by_id = {id(p): n for n, p in params.items()}
    return [by_id[id(p)] for p in _flat(optimizer)]


@dataclass
class Run:
    module: PARModule
    trainer: L.Trainer
    compression: GradientRankCompression
    before: Snapshot
    after: Snapshot
    steps: list[dict[str, Any]]
    run_dir: Path
    metrics: list[dict[str, str]]


def _fit(tmp: Path, data_root: Path, *, unit: str, at: int, scheduler: Any, interval: str) -> Run:
    dm = _datamodule(data_root)
    module = _module(dm, scheduler, interval)
    compression = GradientRankCompression(**{f"compress_at_{unit}": at}, **FAST)
    hook = "on_train_batch_end" if unit == "step" else "on_train_epoch_start"
    before, after, steps = Probe(hook, at), Probe(hook, at), StepProbe(compression)
    logger = CSVLogger(str(tmp / "logs"))
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        default_root_dir=str(tmp / "run"),
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        logger=logger,
        callbacks=[before, compression, after, steps, ModelCheckpoint(dirpath=str(tmp / "ckpt"))],
    )
    threads = torch.get_num_threads()  # module fixtures run before the function-scoped ``one_thread``
    torch.set_num_threads(1)
    try:
        trainer.fit(module, datamodule=dm)
    finally:
        torch.set_num_threads(threads)
    assert before.seen is not None and after.seen is not None, "the swap hook never ran"
    with open(Path(logger.log_dir) / "metrics.csv", newline="") as f:
        metrics = list(csv.DictReader(f))
    return Run(module, trainer, compression, before.seen, after.seen, steps.steps, tmp / "ckpt", metrics)


@pytest.fixture(scope="module")
def step_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Run:
    """Swap after global step 2 (mid-epoch 0); MultiStepLR per step: lr x0.1 after step 1 and after step 4."""
    scheduler = partial(torch.optim.lr_scheduler.MultiStepLR, milestones=[1, 4], gamma=0.1)
    return _fit(
        tmp_path_factory.mktemp("step"), data_root, unit="step", at=2, scheduler=scheduler, interval="step"
    )


@pytest.fixture(scope="module")
def epoch_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Run:
    """Swap at the start of epoch 1; cosine over 4 epochs, stepped per epoch (one step done at the swap)."""
    scheduler = partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=4)
    return _fit(
        tmp_path_factory.mktemp("epoch"), data_root, unit="epoch", at=1, scheduler=scheduler, interval="epoch"
    )


def _group_lrs(base: float) -> list[float]:
    return [base, base * HEAD_LR_SCALE]  # groups "backbone", "head"


@pytest.mark.parametrize("run_name", ["step_run", "epoch_run"])
def test_swap_rebuilds_the_optimizer_over_exactly_the_live_parameters(
    run_name: str, request: pytest.FixtureRequest
) -> None:
    run: Run = request.getfixturevalue(run_name)
    plan = run.module.compression_plan
    assert plan is not None and set(plan.layers) == set(LAYERS), "the test needs every target factorized"
    before, after = run.before, run.after
    assert all(t in (nn.Conv2d, nn.Linear) for t in before.layer_types.values())
    assert not any(t in (nn.Conv2d, nn.Linear) for t in after.layer_types.values())

    optimizer_ids = {id(p) for p in _flat(after.optimizer)}
    assert optimizer_ids == {id(p) for p in after.params.values()}
    assert len(optimizer_ids) == len(_flat(after.optimizer)), "a parameter is listed twice"
    assert after.optimizer is not before.optimizer
    assert after.scheduler.optimizer is after.optimizer

    old = {n: p for n, p in before.params.items() if any(n.startswith(f"model.{x}.") for x in LAYERS)}
    assert old, "the dense layers' parameters should have been seen before the swap"
    live = {id(p) for p in run.module.parameters()} | optimizer_ids
    assert not any(id(p) in live for p in old.values()), "a replaced dense parameter survived"
    assert after.n_params < before.n_params


def test_lr_continues_from_its_position_with_step_scheduler(step_run: Run) -> None:
    # MultiStepLR(milestones=[1, 4]) stepped after each of the 2 steps before the swap: one decay so far
    assert step_run.before.lrs == pytest.approx(_group_lrs(LR * 0.1), rel=1e-12)
    assert step_run.after.lrs == step_run.before.lrs
    assert step_run.after.scheduler_position == step_run.before.scheduler_position == 2
    # 6 steps in all: the counter continued across the swap, so the step-4 milestone fired once more
    (final,) = step_run.trainer.optimizers
    assert step_run.trainer.lr_scheduler_configs[0].scheduler.last_epoch == 6
    assert [g["lr"] for g in final.param_groups] == pytest.approx(_group_lrs(LR * 0.01), rel=1e-6)


def test_lr_continues_from_its_position_with_cosine_per_epoch(epoch_run: Run) -> None:
    def cosine(epoch: int) -> list[float]:
        return _group_lrs(LR * (1 + math.cos(math.pi * epoch / 4)) / 2)

    assert epoch_run.before.lrs == pytest.approx(cosine(1), rel=1e-6)
    assert epoch_run.after.lrs == epoch_run.before.lrs
    assert epoch_run.after.scheduler_position == epoch_run.before.scheduler_position == 1
    (final,) = epoch_run.trainer.optimizers
    assert [g["lr"] for g in final.param_groups] == pytest.approx(cosine(2), rel=1e-6)


@pytest.mark.parametrize("run_name", ["step_run", "epoch_run"])
def test_adam_state_of_untouched_layers_survives_the_swap(
    run_name: str, request: pytest.FixtureRequest
) -> None:
    run: Run = request.getfixturevalue(run_name)
    before, after = run.before, run.after
    param = after.params[UNTOUCHED]
    assert param is before.params[UNTOUCHED]
    old_state, new_state = before.untouched_state, after.untouched_state
    assert set(new_state) == {"step", "exp_avg", "exp_avg_sq"}
    for key in ("step", "exp_avg", "exp_avg_sq"):
        (old_tensor, old_value), (new_tensor, new_value) = old_state[key], new_state[key]
        assert new_tensor is old_tensor, f"{key} was replaced instead of carried over"
        assert torch.equal(new_value, old_value), f"{key} changed during the swap"
    assert int(new_state["step"][1]) == before.global_step > 0
    new = [n for n in after.params if n not in before.params]
    assert new and all(n.startswith(tuple(f"model.{x}." for x in LAYERS)) for n in new)
    assert after.with_state == set(before.params) & set(after.params), "only survivors carry state"


def test_batchnorm_statistics_are_recalibrated(epoch_run: Run) -> None:
    before, after = epoch_run.before.bn_stats, epoch_run.after.bn_stats
    assert before.keys() == after.keys() and before
    for name, (mean, var, tracked) in after.items():
        old_mean, old_var, old_tracked = before[name]
        assert (old_tracked, tracked) == (3, FAST["bn_recalibration_batches"]), name  # reset, then 1 batch
        assert not torch.equal(mean, old_mean) and not torch.equal(var, old_var), name


def test_swap_happens_after_the_optimizer_step_it_follows(step_run: Run) -> None:
    assert step_run.after.global_step == 2
    (stage,) = step_run.module.compression_plan.meta["stages"]
    assert (stage["global_step"], stage["at"]) == (2, {"step": 2})


def test_new_factors_train_with_a_linear_warmup(step_run: Run) -> None:
    """Post-swap steps 3..6: the factors move by factor * (plain step), factor = 1/3, 2/3, 1, then 1."""
    steps = step_run.steps
    assert len(steps) == 4
    new = [n for n in step_run.after.params if n not in step_run.before.params]
    for k, step in enumerate(steps):
        assert step["missing_grad"] == [], "an unused parameter (no gradient) after the swap"
        assert step["warmup_done"] == min(k, WARMUP)
        factor = min(1.0, (k + 1) / WARMUP)
        for name in new:
            b, plain, actual = (step[key][name].double() for key in ("before", "plain", "after"))
            assert not torch.equal(plain, b), f"{name}: the plain step did not move it"
            torch.testing.assert_close(actual - b, factor * (plain - b), rtol=0, atol=1e-7)
        untouched = step["after"][UNTOUCHED], step["plain"][UNTOUCHED]
        torch.testing.assert_close(*untouched, rtol=0, atol=0)  # dense survivors step at full lr
    assert step_run.compression.warmup_done == WARMUP


def test_factors_change_after_the_next_step(step_run: Run) -> None:
    first = step_run.steps[0]
    new = [n for n in step_run.after.params if n not in step_run.before.params]
    moved = [n for n in new if not torch.equal(first["before"][n], first["after"][n])]
    assert moved == new


def _rows_with(metrics: list[dict[str, str]], key: str) -> list[dict[str, str]]:
    return [row for row in metrics if row.get(key)]


@pytest.mark.parametrize("run_name", ["step_run", "epoch_run"])
def test_swap_metrics_reach_the_logger(run_name: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(run_name)
    (row,) = _rows_with(run.metrics, "compression/after_swap/val_mA")
    assert int(row["step"]) == run.after.global_step
    for key in ("compression/before_swap/val_mA", "compression/after_swap/val_mA"):
        assert 0.0 <= float(row[key]) <= 1.0, key
    assert float(row["compression/stage"]) == 1
    # logged at every epoch end from the start: the dense count up to the swap, the compressed one after
    # (in file order: an epoch-end row and the swap row can share a step)
    rows = _rows_with(run.metrics, "model/params")
    swap_at = next(i for i, r in enumerate(rows) if r.get("compression/after_swap/val_mA"))
    logged = [float(r["model/params"]) for r in rows]
    assert logged[:swap_at] == [run.before.n_params] * swap_at
    assert logged[swap_at:] == [run.after.n_params] * (len(rows) - swap_at)
    assert run.after.n_params < run.before.n_params


def test_reports_are_written_to_the_run_dir(step_run: Run) -> None:
    run_dir = step_run.run_dir
    plan = CompressionPlan.load(run_dir / "compression_plan_stage1.json")
    assert plan.layers == step_run.module.compression_plan.layers
    rows = json.loads((run_dir / "compression_layers_stage1.json").read_text())
    assert sorted(r["layer"] for r in rows) == sorted(LAYERS)
    assert (run_dir / "compression_scores_stage1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of compress_at_epoch or compress_at_step"),
        (
            {"compress_at_epoch": 1, "compress_at_step": 5},
            "exactly one of compress_at_epoch or compress_at_step",
        ),
        ({"compress_at_epoch": [3, 2]}, "compress_at_epoch must be strictly increasing"),
        ({"compress_at_step": -1}, "compress_at_step must be a non-negative int"),
        (
            {"compress_at_epoch": 1, "selection": "topk"},
            r"selection must be one of \('threshold', 'budget'\)",
        ),
        ({"compress_at_epoch": 1, "kxk_method": "tucker"}, r"kxk_method must be one of \('cp3', 'cp4'\)"),
        (
            {"compress_at_epoch": 1, "budget_metric": "flops"},
            r"budget_metric must be one of \('params', 'macs'\)",
        ),
        ({"compress_at_epoch": 1, "layer_types": ["Conv1d"]}, r"subset of \['Conv2d', 'Linear'\]"),
        ({"compress_at_epoch": 1, "tau": 0.0}, r"tau must be in \(0, 1\]"),
        ({"compress_at_epoch": 1, "budget_ratio": 1.0}, "budget_ratio must be > 1"),
        ({"compress_at_epoch": 1, "calibration_batches": 0}, "calibration_batches must be an int >= 1"),
        ({"compress_at_epoch": 1, "warmup_steps": -1}, "warmup_steps must be an int >= 0"),
        ({"compress_at_epoch": 1, "eval_batches": -2}, "eval_batches must be None or an int >= 0"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GradientRankCompression(**kwargs)


def _trainer(tmp_path: Path, callbacks: list[Callback]) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        default_root_dir=str(tmp_path),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
        callbacks=callbacks,
    )


@pytest.mark.parametrize(
    "averaging",
    [partial(StochasticWeightAveraging, swa_lrs=0.01), EMAWeightAveraging],
    ids=["swa", "ema"],
)
def test_weight_averaging_is_refused_at_fit_start(tmp_path: Path, data_root: Path, averaging: Any) -> None:
    dm = _datamodule(data_root)
    module = _module(dm, None, "epoch")
    callback = averaging()
    trainer = _trainer(tmp_path, [callback, GradientRankCompression(compress_at_epoch=1, **FAST)])
    with pytest.raises(ValueError, match=f"cannot run with {type(callback).__name__}"):
        trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 0


def test_compiled_model_is_refused_at_fit_start(tmp_path: Path, data_root: Path) -> None:
    dm = _datamodule(data_root)
    module = _module(dm, None, "epoch")
    module.model = torch.compile(module.model)  # lazy: nothing compiles before the first call
    trainer = _trainer(tmp_path, [GradientRankCompression(compress_at_epoch=1, **FAST)])
    with pytest.raises(ValueError, match="torch.compile"):
        trainer.fit(module, datamodule=dm)


def test_a_module_without_the_compression_hooks_is_refused(tmp_path: Path) -> None:
    from lightning.pytorch.demos.boring_classes import BoringModel

    trainer = _trainer(tmp_path, [GradientRankCompression(compress_at_epoch=1, **FAST)])
    with pytest.raises(TypeError, match="PARModule-like LightningModule with `model`"):
        trainer.fit(BoringModel())
