"""The command users type: ``lightning fit --config experiments/<name>.yaml`` (alias ``par-lightning``).

Lightning 2.6 ships no ``lightning`` console script, so this package provides it. Besides the
LightningCLI subcommands (``fit``, ``validate``, ``test``, ``predict``) it offers ``synth`` to write
a synthetic dataset in PA-100K's distribution format.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info

from par_lightning.config_saving import PARSaveConfigCallback
from par_lightning.resume import AUTO, resolve_auto

SYNTH_COMMAND = "synth"
DESCRIPTION = (
    "par-lightning: pedestrian attribute recognition with Lightning. Subcommands fit/validate/test/predict "
    "take --config experiments/<name>.yaml. Also: `par-lightning synth pa100k --root DIR` writes a synthetic "
    "dataset in PA-100K's format (see `par-lightning synth --help`); `par-lightning export --ckpt_path X "
    "--format onnx` writes a checked ONNX model (see `par-lightning export --help`)."
)


class PARCLI(LightningCLI):
    """LightningCLI with the DataModule's dataset facts linked into the model.

    ``num_attributes``, ``attribute_names`` and ``pos_ratios`` are read from the *instantiated*
    DataModule (they come from the annotation file), so YAML never repeats them.
    ``--test_after_fit true`` tests the best checkpoint right after ``fit``; ``fit --ckpt_path auto``
    resumes from the newest checkpoint of the run (requeued SLURM jobs, crashes) or starts fresh.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for field in ("num_attributes", "num_eval_attributes", "attribute_names", "pos_ratios"):
            parser.link_arguments(f"data.{field}", f"model.init_args.{field}", apply_on="instantiate")
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="After `fit`, run `test` on the best checkpoint (or the last weights without a checkpoint).",
        )

    def before_fit(self) -> None:
        """``--ckpt_path auto``: resume from the run's newest checkpoint, or start fresh (see ``resume.py``)."""
        config = self.config_init["fit"]
        if config.get("ckpt_path") != AUTO:
            return
        config["ckpt_path"] = resolve_auto(self.trainer)
        where = config["ckpt_path"] or "no checkpoint yet, starting from scratch"
        rank_zero_info(f"--ckpt_path auto: {where}")

    def after_fit(self) -> None:
        if not self.config[self.subcommand].get("test_after_fit"):
            return
        checkpoint = self.trainer.checkpoint_callback
        has_best = isinstance(checkpoint, ModelCheckpoint) and bool(checkpoint.best_model_path)
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if has_best else None)


def build_cli(args: Sequence[str] | None = None, run: bool = True) -> PARCLI:
    """Construct the CLI (``run=False`` only instantiates: used by tests and notebooks)."""
    return PARCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_kwargs={"parser_mode": "omegaconf", "description": DESCRIPTION},
        save_config_callback=PARSaveConfigCallback,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        args=list(args) if args is not None else None,
        run=run,
    )


def main(args: Sequence[str] | None = None) -> None:
    """Console-script entry point of ``lightning`` / ``par-lightning`` / ``python -m par_lightning``."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] == SYNTH_COMMAND:
        from par_lightning.synth_cli import synth_main

        synth_main(argv[1:])
        return
    if argv and argv[0] == "export":
        from par_lightning.export_cli import export_main

        status = export_main(argv[1:])
        if status:
            raise SystemExit(status)
        return
    build_cli(args)  # None: LightningCLI reads sys.argv itself (and warns if given both)


if __name__ == "__main__":  # pragma: no cover
    main()
