"""``par-lightning export --ckpt_path X --format onnx``: a checkpoint to a checked ONNX file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from par_lightning.export import EXPORTERS, FORMATS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="par-lightning export",
        description=(
            "Export a dense or compressed checkpoint (PARModule.forward: merged logits, eval mode) with a "
            "dynamic batch axis, attribute names and preprocessing in the model metadata, and check it "
            "against PyTorch with ONNX Runtime before writing it."
        ),
    )
    parser.add_argument("--ckpt_path", required=True, help="Lightning checkpoint (.ckpt) of a PARModule")
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="output format (default onnx)")
    parser.add_argument("--output", default=None, help="output file (default: the checkpoint path, .onnx)")
    parser.add_argument("--height", type=int, default=None, help="input height (default: the training size)")
    parser.add_argument("--width", type=int, default=None, help="input width (default: the training size)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    parser.add_argument(
        "--exporter",
        choices=EXPORTERS,
        default="torchscript",
        help="torch.onnx exporter: torchscript (fast, default) or dynamo (torch.export based)",
    )
    parser.add_argument(
        "--atol",
        type=float,
        default=1e-4,
        help="largest accepted |ONNX Runtime - PyTorch| on the logits of random input (default 1e-4)",
    )
    return parser


def export_main(argv: Sequence[str]) -> int:
    """Run the command; 0 on success, 1 when the parity check fails (argument errors exit with 2)."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    from par_lightning.export import ExportError, ParityError, export_checkpoint

    try:
        result = export_checkpoint(
            args.ckpt_path,
            args.output,
            fmt=args.format,
            height=args.height,
            width=args.width,
            opset=args.opset,
            exporter=args.exporter,
            atol=args.atol,
        )
    except ParityError as err:
        print(f"par-lightning export: parity check FAILED: {err}", file=sys.stderr)
        return 1
    except ExportError as err:
        parser.error(str(err))  # exits with status 2
    for batch, diff in result.max_abs_diff.items():
        print(f"batch {batch}: max |ONNX Runtime - PyTorch| = {diff:.3g} (atol {args.atol:g})")
    meta = result.metadata
    print(
        f"wrote {result.path} (input {result.height}x{result.width}, {meta['num_attributes']} attributes, "
        f"compressed: {meta['compressed']}, exporter: {meta['exporter']})"
    )
    return 0
