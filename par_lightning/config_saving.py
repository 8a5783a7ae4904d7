"""Config saving that survives reruns and SLURM requeues, and lands in the W&B run.

Lightning's default ``SaveConfigCallback`` refuses to overwrite ``config.yaml``, which kills every
rerun in the same directory and every requeued job. This one overwrites the file in the log dir and
also pushes the resolved config into each W&B run, where it belongs to exactly one run.
"""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger


class PARSaveConfigCallback(SaveConfigCallback):
    """Writes ``config.yaml`` (overwriting) and records the config in W&B runs, for ``fit`` only.

    ``validate``/``test``/``predict`` with a training config would otherwise overwrite the training
    run's ``config.yaml`` with their own.
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        config = str(self.parser.dump(self.config, skip_none=False, format="yaml"))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import yaml

                logger.experiment.config.update({"cli": yaml.safe_load(config)}, allow_val_change=True)
