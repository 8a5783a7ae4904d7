"""``par-lightning synth pa100k --root DIR``: write a synthetic dataset in a real distribution format."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

FORMATS = ("pa100k", "peta", "rap1", "rap2")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="par-lightning synth",
        description="Render synthetic pedestrians and write them in a PAR dataset's distribution format.",
    )
    parser.add_argument("format", choices=FORMATS, help="dataset format to write")
    parser.add_argument("--root", required=True, help="output folder (must not exist or be empty)")
    parser.add_argument("--num-images", type=int, default=10_000, help="total images (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument(
        "--difficulty", type=float, default=1.0, help="clutter/occlusion/noise scale (default 1)"
    )
    parser.add_argument(
        "--split-fractions",  # PA-100K only: PETA and RAP use their own partition proportions
        type=float,
        nargs=3,
        default=(0.8, 0.1, 0.1),
        metavar=("TRAIN", "VAL", "TEST"),
        help="train/val/test fractions (default 0.8 0.1 0.1, as PA-100K)",
    )
    return parser


def synth_main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(list(argv))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from data_modules import synthetic

    common = {
        "num_images": args.num_images,
        "seed": args.seed,
        "workers": args.workers,
        "difficulty": args.difficulty,
    }
    if args.format == "pa100k":
        path = synthetic.synthesize_pa100k(args.root, split_fractions=tuple(args.split_fractions), **common)
    elif args.format == "peta":
        path = synthetic.synthesize_peta(args.root, **common)
    else:
        path = synthetic.synthesize_rap(args.root, version=int(args.format[-1]), **common)
    print(f"wrote {args.num_images} images in {args.format} format to {path}")
