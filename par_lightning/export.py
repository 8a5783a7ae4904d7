"""Export a trained PAR model to ONNX, with the facts a deployment needs stored in the file itself.

The exported graph is ``PARModule.forward`` in eval mode: images ``(N, 3, H, W)`` float32 after the
evaluation preprocessing (resize, ``[0, 1]`` RGB, ImageNet normalisation) -> ``logits`` ``(N, A)``, the
outputs of several heads (ALM) already merged by max voting. The batch axis is dynamic; H and W are
fixed at export time, so the spatial sizes the model derives from them become constants.

Every export is checked against PyTorch with ONNX Runtime on random input at two batch sizes that differ
from the traced one, so a graph that baked in the batch size or mistranslated an operator is refused
before it is written.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import nn

from data_modules.transforms import IMAGENET_MEAN, IMAGENET_STD
from par_lightning import __version__
from par_lightning.atomic_io import atomic_writer

__all__ = [
    "FORMATS",
    "ExportError",
    "ExportResult",
    "ParityError",
    "checkpoint_input_size",
    "export_checkpoint",
    "export_metadata",
    "export_onnx",
    "load_checkpoint_module",
    "onnx_max_abs_diff",
    "read_metadata",
]

FORMATS: tuple[str, ...] = ("onnx",)
Exporter = Literal["torchscript", "dynamo"]
EXPORTERS: tuple[str, ...] = get_args(Exporter)
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
TRACE_BATCH = 2  # the example batch; the parity check runs other sizes, which proves the axis is dynamic


class ExportError(ValueError):
    """A checkpoint, an argument or a model cannot be exported; the message names what to fix."""


class ParityError(ExportError):
    """ONNX Runtime's outputs differ from PyTorch's by more than the tolerance (nothing was written)."""

    def __init__(self, message: str, max_abs_diff: dict[int, float]) -> None:
        super().__init__(message)
        self.max_abs_diff = max_abs_diff


@dataclass(frozen=True)
class ExportResult:
    """Where the model went and how closely ONNX Runtime reproduced PyTorch (batch size -> max abs diff)."""

    path: Path
    height: int
    width: int
    max_abs_diff: dict[int, float]
    metadata: dict[str, str]


def load_checkpoint_module(ckpt_path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """The eval-mode ``PARModule`` of a dense or compressed checkpoint, and the raw checkpoint dict.

    ``load_from_checkpoint`` rebuilds factorized layers from the checkpoint's plan (``on_load_checkpoint``);
    the raw dict is read as well for what the module does not keep (the DataModule's input size).
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise ExportError(f"checkpoint {str(path)!r} does not exist (expected a .ckpt file written by fit)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated file or not a torch file at all
        raise ExportError(f"checkpoint {str(path)!r} cannot be read by torch.load: {err}") from err
    if not isinstance(checkpoint, dict) or "hyper_parameters" not in checkpoint:
        raise ExportError(
            f"checkpoint {str(path)!r} has no 'hyper_parameters': expected a Lightning checkpoint of a PARModule"
        )
    from par_lightning.module import PARModule

    try:
        module = PARModule.load_from_checkpoint(path, map_location="cpu")
    except (TypeError, ValueError, KeyError, RuntimeError) as err:  # other hparams, plan or state dict
        reason = f"missing field {err}" if isinstance(err, KeyError) else str(err)
        reason = reason if len(reason) < 400 else reason[:400] + " ..."  # state dict errors list every key
        raise ExportError(f"checkpoint {str(path)!r} does not load into a PARModule: {reason}") from err
    return module.float().eval(), checkpoint


def checkpoint_input_size(
    checkpoint: Mapping[str, Any], height: int | None = None, width: int | None = None
) -> tuple[int, int]:
    """``(height, width)`` given, else the size the model was trained at (the DataModule's hyper-parameters)."""
    if (height is None) != (width is None):
        raise ExportError(f"give both --height and --width or neither, got height={height}, width={width}")
    if height is None or width is None:
        data = checkpoint.get("datamodule_hyper_parameters") or {}
        height, width = data.get("height"), data.get("width")
        if not isinstance(height, int) or not isinstance(width, int):
            raise ExportError(
                "the checkpoint does not record the training input size (no height/width in "
                "'datamodule_hyper_parameters'): pass --height H --width W"
            )
    if height < 1 or width < 1:
        raise ExportError(f"input height and width must be >= 1, got {height}x{width}")
    return height, width


def export_metadata(module: nn.Module, height: int, width: int) -> dict[str, str]:
    """String key/values for ``ModelProto.metadata_props``: what a consumer needs to feed and read the graph."""
    names = list(getattr(module, "attribute_names", []))
    plan = getattr(module, "compression_plan", None)
    hparams = dict(getattr(module, "hparams", {}))
    meta = {
        "attribute_names": json.dumps(names),
        "num_attributes": str(len(names)),
        "input_name": INPUT_NAME,
        "input_height": str(height),
        "input_width": str(width),
        "input_format": "float32 (N, 3, H, W) RGB scaled to [0, 1], then (x - mean) / std per channel",
        "normalization_mean": json.dumps(list(IMAGENET_MEAN)),
        "normalization_std": json.dumps(list(IMAGENET_STD)),
        "output_name": OUTPUT_NAME,
        "output": "logits (N, num_attributes), heads merged by max; sigmoid gives probabilities",
        "threshold": str(hparams.get("threshold", 0.5)),
        "arch": str(hparams.get("arch", type(module).__name__)),
        "backbone": str(hparams.get("backbone")),
        "compressed": json.dumps(plan is not None),
        "par_lightning_version": __version__,
    }
    if plan is not None:
        meta["compression_plan"] = plan.to_json(indent=None)
    return meta


def _trace(module: nn.Module, example: torch.Tensor, opset: int | None, exporter: Exporter) -> bytes:
    """Serialized ONNX model of ``module(example)`` with a dynamic batch axis."""
    if exporter == "dynamo":
        program = torch.onnx.export(
            module, (example,), dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},),
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset, verbose=False,
        )  # fmt: skip
        assert program is not None
        return program.model_proto.SerializeToString()
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        # Deprecated in favour of dynamo, but 7x faster to export here with the same parity (both are
        # checked by ONNX Runtime below). Tracer warnings concern shape arithmetic on H and W, which are
        # fixed in the graph anyway; batch-size leaks are caught by the parity check at other batch sizes.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        path = Path(tmp) / "model.onnx"  # the exporter's signature takes a path, not a file object
        torch.onnx.export(
            module, (example,), path, dynamo=False, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            opset_version=opset, dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )  # fmt: skip
        return path.read_bytes()


def export_onnx(
    module: nn.Module,
    height: int,
    width: int,
    *,
    metadata: Mapping[str, str] | None = None,
    opset: int | None = None,
    exporter: Exporter = "torchscript",
) -> bytes:
    """The ONNX model (bytes) of ``module``'s eval-mode forward at ``height x width``, with ``metadata``.

    The module's train/eval mode is restored afterwards. ``opset`` ``None`` is the exporter's default.
    """
    import onnx

    if exporter not in EXPORTERS:
        raise ExportError(f"exporter must be one of {list(EXPORTERS)}, got {exporter!r}")
    param = next(module.parameters(), None)
    if param is not None and (param.device.type != "cpu" or param.dtype != torch.float32):
        raise ExportError(f"export needs a float32 CPU model, got {param.dtype} on {param.device}")
    was_training = module.training
    module.eval()
    try:
        example = torch.randn(TRACE_BATCH, 3, height, width, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            raw = _trace(module, example, opset, exporter)
    finally:
        module.train(was_training)
    model = onnx.load_from_string(raw)
    onnx.helper.set_model_props(model, dict(metadata or {}))
    return model.SerializeToString()


def onnx_max_abs_diff(
    module: nn.Module,
    model: bytes,
    height: int,
    width: int,
    batch_sizes: Sequence[int] = (1, 3),
    seed: int = 0,
) -> dict[int, float]:
    """Max |ONNX Runtime - PyTorch| over the logits of random normalised images, per batch size."""
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    was_training = module.training
    module.eval()
    diffs = {}
    try:
        for batch in batch_sizes:
            x = torch.randn(batch, 3, height, width, generator=gen)  # (B, 3, H, W)
            with torch.no_grad():
                ref = module(x).float()  # (B, A)
            (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
            if tuple(got.shape) != tuple(ref.shape):
                raise ParityError(
                    f"ONNX output shape {tuple(got.shape)} != PyTorch {tuple(ref.shape)} at batch {batch}",
                    {},
                )
            diffs[batch] = float((torch.from_numpy(got) - ref).abs().max())
    finally:
        module.train(was_training)
    return diffs


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (``onnxruntime``: ``session.get_modelmeta().custom_metadata_map``)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def export_checkpoint(
    ckpt_path: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    fmt: str = "onnx",
    height: int | None = None,
    width: int | None = None,
    opset: int | None = None,
    exporter: Exporter = "torchscript",
    atol: float = 1e-4,
    batch_sizes: Sequence[int] = (1, 3),
) -> ExportResult:
    """Export a checkpoint, check it against PyTorch and write it atomically (default: beside the checkpoint).

    Raises:
        ExportError: bad arguments or an unreadable checkpoint.
        ParityError: ONNX Runtime differs by more than ``atol`` at some batch size; nothing is written.
    """
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    if opset is not None and opset < 1:
        raise ExportError(f"opset must be a positive ONNX opset version, got {opset}")
    module, checkpoint = load_checkpoint_module(ckpt_path)
    height, width = checkpoint_input_size(checkpoint, height, width)
    meta = {**export_metadata(module, height, width), "exporter": exporter}
    model = export_onnx(module, height, width, metadata=meta, opset=opset, exporter=exporter)
    diffs = onnx_max_abs_diff(module, model, height, width, batch_sizes)
    worst = max(diffs.values())
    if not worst <= atol:  # also refuses NaN
        raise ParityError(
            f"ONNX Runtime differs from PyTorch by {worst:.3g} > atol {atol:g} (per batch size: {diffs}); "
            "nothing was written",
            diffs,
        )
    path = Path(output) if output is not None else Path(ckpt_path).with_suffix(".onnx")
    with atomic_writer(path, "wb") as f:
        f.write(model)
    return ExportResult(path, height, width, diffs, meta)
