"""Settings of the quality benchmark, read from YAML with ``yaml.safe_load`` (no omegaconf on GPU machines).

Every section is a plain dataclass so a typo in the file fails early with the file, the key and the
valid keys, instead of silently running the default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class DataConfig:
    """The synthetic PA-100K-format task (generated once under ``root`` with ``synth_seed``)."""

    root: str = "data/compression_quality_pa100k"
    num_images: int = 6000
    synth_seed: int = 0
    difficulty: float = 1.0
    synth_workers: int | None = None
    height: int = 128
    width: int = 64
    pad: int = 6
    batch_size: int = 64
    eval_batch_size: int = 128
    num_workers: int = 2


@dataclass
class ModelConfig:
    """``PARModule`` arguments of the dense model (``model_kwargs`` go to the registered model)."""

    arch: str = "baseline"
    backbone: str | None = "resnet10t"
    model_kwargs: dict[str, Any] = field(
        default_factory=lambda: {"backbone_kwargs": {"channels": [32, 64, 96, 128], "stem_width": 16}}
    )
    channels_last: bool = True
    loss: str = "deepmar"


@dataclass
class TrainConfig:
    """Dense training: AdamW, cosine schedule over the epochs."""

    epochs: int = 6
    lr: float = 0.002
    weight_decay: float = 0.0005
    gradient_clip_val: float = 10.0


@dataclass
class FinetuneConfig:
    """Fine-tuning after each swap: the same steps, optimizer, LR schedule and seed for every policy."""

    steps: int = 75
    lr: float = 0.0005
    weight_decay: float = 0.0005
    gradient_clip_val: float = 10.0


@dataclass
class BisectionConfig:
    """``accuracy_bisection_plan``: tolerance and CP effort of the trial decompositions."""

    eps: float = 0.002
    min_rank: int = 2
    als_iters: int = 50
    epc_sweeps: int = 10


@dataclass
class GradientConfig:
    """Calibration and rank-grid search of the gradient-aligned policies."""

    calibration_batches: int = 8
    calibration_batch_size: int = 32
    grid_steps: int = 9
    als_iters: int = 50
    epc_sweeps: int = 10
    warm_als_iters: int | None = None
    tau: float = 0.9
    min_saving: float = 0.1
    min_ref_score: float = 0.3


@dataclass
class QualityConfig:
    """The whole benchmark; see ``benchmarks/compression_quality.yaml`` for the commented default."""

    tag: str = "cpu"
    device: str = "cpu"
    threads: int = 1
    precision: str = "32-true"
    seeds: list[int] = field(default_factory=lambda: [0])
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    bisection: BisectionConfig = field(default_factory=BisectionConfig)
    gradient: GradientConfig = field(default_factory=GradientConfig)
    include: list[str] = field(default_factory=lambda: ["*"])
    exclude: list[str] = field(default_factory=list)
    min_params: int = 4096
    kxk_method: str = "cp3"
    final_als_iters: int = 500
    final_epc_sweeps: int = 300
    bn_recalibration_batches: int = 8
    budget_tolerance: float = 0.02
    curve_ratios: list[float] = field(default_factory=lambda: [2.0, 4.0])
    run_dir: str = "runs/compression_quality"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, values: Any, where: str, source: str) -> Any:
    """``cls(**values)`` with nested sections, failing on unknown keys or a section that is not a mapping."""
    if not isinstance(values, dict):
        raise ValueError(f"{source}: '{where}' must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown} in '{where}'; valid keys: {sorted(fields)}")
    kwargs = {}
    for name, value in values.items():
        factory: Any = fields[name].default_factory  # MISSING for plain fields
        default = factory() if factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{where}.{name}" if where else name, source)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def validate(cfg: QualityConfig, source: str) -> QualityConfig:
    """Range checks that would otherwise fail deep inside a 30-minute run."""
    checks = [
        ("seeds", bool(cfg.seeds) and all(isinstance(s, int) for s in cfg.seeds), "a non-empty list of ints"),
        ("budget_tolerance", 0 < cfg.budget_tolerance < 1, "in (0, 1), e.g. 0.02 = within 2%"),
        (
            "curve_ratios",
            all(r > 1 for r in cfg.curve_ratios),
            "compression ratios > 1 (dense params / params)",
        ),
        ("finetune.steps", cfg.finetune.steps >= 0, ">= 0"),
        ("train.epochs", cfg.train.epochs >= 1, ">= 1"),
        ("bn_recalibration_batches", cfg.bn_recalibration_batches >= 1, ">= 1"),
        ("gradient.tau", 0 < cfg.gradient.tau <= 1, "in (0, 1]"),
        ("bisection.eps", cfg.bisection.eps >= 0, ">= 0"),
        ("kxk_method", cfg.kxk_method in ("cp3", "cp4"), "'cp3' or 'cp4'"),
        ("data.num_images", cfg.data.num_images >= 10, ">= 10 (train/val/test all non-empty)"),
    ]
    for key, ok, expected in checks:
        if not ok:
            raise ValueError(f"{source}: '{key}' must be {expected}")
    return cfg


def load_config(path: str | Path | None) -> QualityConfig:
    """The defaults, overridden by the YAML file at ``path`` (``None``: defaults only)."""
    if path is None:
        return validate(QualityConfig(), "defaults")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {str(path)!r} does not exist")
    values = yaml.safe_load(path.read_text()) or {}
    return validate(_build(QualityConfig, values, "", str(path)), str(path))
