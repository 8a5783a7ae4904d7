"""Shared pieces for tests that drive the CLI on a tiny PA-100K-format set with the ``tiny`` model."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.helpers_pa100k import write_pa100k


def tiny_config(tmp_path: Path, *, logger: str = "csv", max_epochs: int = 1) -> Path:
    """Write a tiny dataset and a complete experiment YAML using it; return the YAML path."""
    data = write_pa100k(tmp_path / "pa100k", sizes=(24, 8, 8))
    logger_cfg = {
        "csv": {
            "class_path": "lightning.pytorch.loggers.CSVLogger",
            "init_args": {"save_dir": str(tmp_path / "logs")},
        },
        "wandb": {
            "class_path": "par_lightning.loggers.WandbLogger",
            "init_args": {"save_dir": str(tmp_path / "wandb_logs"), "name": "tiny", "project": "par-tests"},
        },
    }[logger]
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": max_epochs,
            "default_root_dir": str(tmp_path / "run"),
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "log_every_n_steps": 1,
            "logger": logger_cfg,
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {
                        "dirpath": str(tmp_path / "ckpt"),
                        "filename": "best",
                        "monitor": "val/mA",
                        "mode": "max",
                        "save_last": True,
                    },
                }
            ],
        },
        "model": {
            "class_path": "par_lightning.PARModule",
            "init_args": {
                "arch": "tiny",
                "backbone": "test_resnet",
                "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.01, "momentum": 0.9}},
            },
        },
        "data": {
            "class_path": "data_modules.PA100KDataModule",
            "init_args": {
                "root": str(data.root),
                "height": 32,
                "width": 16,
                "pad": 2,
                "batch_size": 8,
                "num_workers": 0,
            },
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
