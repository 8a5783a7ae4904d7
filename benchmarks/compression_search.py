"""Gradient-alignment rank search on ALM: per-layer ranks, scores, errors, costs, and the search time.

Usage::

    python benchmarks/compression_search.py                                  # BN-Inception ALM, N=26, 128x64, CPU
    python benchmarks/compression_search.py --device cuda                    # the same search on a GPU
    python benchmarks/compression_search.py --arch alm --backbone test_resnet \
        --checkpoint runs/alm_pa100k_synthetic/checkpoints/best.ckpt --data data/synthetic_pa100k

The model is a ``PARModule`` (random weights, or ``--checkpoint``). Calibration uses K = ``--batches``
batches of ``--batch-size`` images: from a PA-100K-format ``--data`` root (train split, no augmentation)
or random images with random labels. Targets are every conv/linear layer that ``select_layers`` keeps
(stem, grouped and tiny layers skipped). Each layer's sqrt(2) grid is scored top down and stops at the
first rank below ``--tau`` (the per-layer threshold rule); CP candidates get ``--search-als`` ALS iterations
and ``--search-epc`` EPC sweeps, and the chosen ranks are decomposed again with the full effort when the
plan is applied. Prints the per-layer table and totals; writes ``benchmarks/results/compression_search_<tag>.json``
and the plan next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.machine import describe  # noqa: E402
from par_lightning.compression import apply_plan, count_module_costs, plan_from_selection, select_layers  # noqa: E402
from par_lightning.compression.prefix_cache import pipeline_stages  # noqa: E402
from par_lightning.compression.search import SearchOptions, score_layers  # noqa: E402
from par_lightning.compression.selection import select_threshold  # noqa: E402
from par_lightning.module import PARModule  # noqa: E402


def calibration_batches(
    args: argparse.Namespace, num_attributes: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """K fixed batches: real images of a PA-100K-format root, or random tensors."""
    h, w = args.size
    if args.data is None:
        gen = torch.Generator().manual_seed(0)
        return [
            (
                torch.randn(args.batch_size, 3, h, w, generator=gen),
                (torch.rand(args.batch_size, num_attributes, generator=gen) < 0.3).long(),
            )
            for _ in range(args.batches)
        ]
    from data_modules import PA100KDataModule  # noqa: PLC0415  (only needed with --data)

    dm = PA100KDataModule(
        root=args.data, height=h, width=w, pad=0, hflip=False, batch_size=args.batch_size, num_workers=0
    )
    dm.setup("fit")
    loader = torch.utils.data.DataLoader(dm.datasets["train"], batch_size=args.batch_size, shuffle=False)
    batches = []
    for images, targets in loader:
        batches.append((images, targets))
        if len(batches) == args.batches:
            break
    return batches


def train(module: PARModule, args: argparse.Namespace) -> float:
    """Fit the model for ``--train-epochs`` on the ``--data`` root (generated first with ``--synthesize``); returns s."""
    import lightning as L  # noqa: PLC0415  (only needed to train)

    from data_modules import PA100KDataModule  # noqa: PLC0415

    h, w = args.size
    dm = PA100KDataModule(
        root=args.data, synthesize=args.synthesize > 0, synth_num_images=max(args.synthesize, 1), height=h, width=w,
        pad=6, batch_size=64, num_workers=min(8, os.cpu_count() or 1),
    )  # fmt: skip
    cuda = torch.cuda.is_available() and args.device.startswith("cuda")
    trainer = L.Trainer(
        max_epochs=args.train_epochs, accelerator="gpu" if cuda else "cpu", devices=1,
        precision="bf16-mixed" if cuda else "32-true", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    seconds = time.perf_counter() - start
    print(
        f"trained {args.train_epochs} epochs in {seconds:.0f} s; val mA {float(trainer.callback_metrics['val/mA']):.4f}"
    )
    module.train_mA = float(trainer.callback_metrics["val/mA"])  # type: ignore[attr-defined]
    if args.save_checkpoint:
        trainer.save_checkpoint(args.save_checkpoint, weights_only=True)
        print(f"saved the trained model to {args.save_checkpoint} (reuse it with --checkpoint)")
    return seconds


def build_module(args: argparse.Namespace) -> PARModule:
    if args.checkpoint:
        return PARModule.load_from_checkpoint(args.checkpoint, map_location="cpu")
    torch.manual_seed(0)
    return PARModule(arch=args.arch, backbone=args.backbone, num_attributes=args.num_attributes, loss="alm")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="alm")
    p.add_argument("--backbone", default="bninception")
    p.add_argument("--num-attributes", type=int, default=26)
    p.add_argument("--checkpoint", default=None, help="a PARModule checkpoint (overrides --arch/--backbone)")
    p.add_argument("--data", default=None, help="PA-100K-format root for calibration images")
    p.add_argument(
        "--synthesize", type=int, default=0, help="generate this many PA-100K-format images in --data first"
    )
    p.add_argument(
        "--train-epochs",
        type=int,
        default=0,
        help="train the model on --data first (a trained model to search)",
    )
    p.add_argument(
        "--save-checkpoint",
        default=None,
        help="after --train-epochs, save the trained model here (weights only)",
    )
    p.add_argument(
        "--full-grid", action="store_true", help="score every grid rank (no early stop at the first failure)"
    )
    p.add_argument("--size", type=int, nargs=2, default=[128, 64], metavar=("H", "W"))
    p.add_argument("--batches", type=int, default=8, help="K calibration batches")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--tau", type=float, default=0.9)
    p.add_argument("--grid-steps", type=int, default=9)
    p.add_argument("--search-als", type=int, default=100)
    p.add_argument("--search-epc", type=int, default=25)
    p.add_argument(
        "--warm-als",
        type=int,
        default=50,
        help="ALS iterations of a CP rank warm-started from the rank above",
    )
    p.add_argument("--final-als", type=int, default=500)
    p.add_argument("--final-epc", type=int, default=300)
    p.add_argument("--min-params", type=int, default=4096)
    p.add_argument("--include", nargs="+", default=["*"])
    p.add_argument("--exclude", nargs="*", default=[])
    p.add_argument(
        "--stages",
        choices=("blocks", "parts"),
        default="blocks",
        help="prefix cache: replay every backbone block before the scored layer, or only whole parts",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tag", default=None, help="results file suffix (default: <backbone>_<device>)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results JSON (default: benchmarks/results/compression_search_<tag>.json)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    machine_info = describe()  # the load average at the start, before this run adds its own

    module = build_module(args)
    train_s = train(module, args) if args.train_epochs > 0 else 0.0
    model = module.to(device).model
    batches = calibration_batches(args, module.hparams["num_attributes"])
    example = torch.zeros(1, 3, *args.size, device=device)
    before = count_module_costs(model, example)
    selection = select_layers(model, include=args.include, exclude=args.exclude, min_params=args.min_params)
    stages = pipeline_stages(model) if args.stages == "blocks" else ("backbone", "pyramid")
    options = SearchOptions(
        grid_steps=args.grid_steps,
        stop_below=None if args.full_grid else args.tau,
        als_iters=args.search_als,
        epc_sweeps=args.search_epc,
        warm_als_iters=args.warm_als,
        stages=stages,
    )
    print(
        f"{len(selection.targets)} target layers, {len(selection.skipped)} skipped; K={len(batches)} x {args.batch_size}"
    )

    def progress(name: str, i: int, n: int) -> None:
        if i % 20 == 0:
            print(f"  [{i:4d}/{n}] {name}  ({time.perf_counter() - start:.0f} s)", flush=True)

    start = time.perf_counter()
    curves, report = score_layers(
        module.model,
        lambda _m, b: module.compute_loss(b),
        batches,
        selection.targets,
        example,
        options,
        progress,
    )
    search_s = time.perf_counter() - start
    print(
        f"search done in {search_s:.1f} s ({report.candidates} candidates); decomposing the chosen ranks at full effort",
        flush=True,
    )
    choices = {name: select_threshold(curve, tau=args.tau) for name, curve in curves.items()}
    plan = plan_from_selection(
        curves, {n: c.rank for n, c in choices.items()}, meta={"rule": "threshold", "tau": args.tau}
    )
    start = time.perf_counter()
    apply_plan(model, plan, cp_kwargs={"als_iters": args.final_als, "epc_sweeps": args.final_epc})
    apply_s = time.perf_counter() - start
    after = count_module_costs(model, example)

    rows = []
    header = f"{'layer':44s} {'meth':4s} {'r_ref':>5s} {'rank':>5s} {'s~':>6s} {'relerr':>7s} {'kappa':>7s} {'params':>17s} {'MACs':>21s}"
    print("\n" + header)
    for name, curve in curves.items():
        choice = choices[name]
        chosen = curve.candidate(choice.rank) if choice.rank is not None else None
        ref = curve.ref_score
        row = {
            "layer": name, "method": curve.method, "ref_rank": curve.ref_rank, "rank": choice.rank, "reason": choice.reason,
            "score": chosen.score if chosen else None, "score_normalised": chosen.score / ref if chosen and ref > 0 else None,
            "rel_error": chosen.rel_error if chosen else None, "kappa": chosen.kappa if chosen else None,
            "params_before": curve.dense_params, "params_after": chosen.params if chosen else curve.dense_params,
            "macs_before": curve.dense_macs, "macs_after": chosen.macs if chosen else curve.dense_macs,
            "scored": [(c.rank, c.score) for c in curve.candidates],
            "seconds": report.per_layer_seconds.get(name),
        }  # fmt: skip
        rows.append(row)
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        print(
            f"{name[-44:]:44s} {curve.method:4s} {curve.ref_rank:5d} {fmt(choice.rank, 'd'):>5s} {fmt(row['score_normalised'], '.3f'):>6s} "
            f"{fmt(row['rel_error'], '.3f'):>7s} {fmt(row['kappa'], '.2f'):>7s} {row['params_before']:8d}->{row['params_after']:8d} "
            f"{row['macs_before']:10d}->{row['macs_after']:10d}"
        )
    total = {
        "params_before": sum(p for p, _ in before.values()), "params_after": sum(p for p, _ in after.values()),
        "macs_before": sum(m for _, m in before.values()), "macs_after": sum(m for _, m in after.values()),
        "model_params_after": sum(p.numel() for p in model.parameters()),
        "layers_compressed": len(plan.layers), "layers_targeted": len(curves), "candidates_scored": report.candidates,
        "search_seconds": search_s, "gradient_seconds": report.seconds_gradients, "decompose_seconds": report.seconds_decompose,
        "scoring_seconds": report.seconds_scoring, "apply_seconds": apply_s, "train_seconds": train_s,
        "trained_val_mA": getattr(module, "train_mA", None),
    }  # fmt: skip
    print(
        f"\nconv/linear weights {total['params_before']:,} -> {total['params_after']:,} "
        f"({total['params_before'] / max(total['params_after'], 1):.2f}x), MACs/image {total['macs_before']:,} -> "
        f"{total['macs_after']:,} ({total['macs_before'] / max(total['macs_after'], 1):.2f}x)"
    )
    print(
        f"search {search_s:.1f} s (G {report.seconds_gradients:.1f} s, decompositions {report.seconds_decompose:.1f} s, "
        f"G_hat passes {report.seconds_scoring:.1f} s; {report.candidates} candidates), final decompositions {apply_s:.1f} s"
    )
    tag = args.tag or f"{Path(args.checkpoint).stem if args.checkpoint else args.backbone}_{device.type}"
    out = args.out or REPO / "benchmarks" / "results" / f"compression_search_{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/compression_search.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    out.write_text(
        json.dumps(
            {
                "machine": machine_info,
                "command": command,
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "total": total,
                "layers": rows,
            },
            indent=2,
        )
        + "\n"
    )
    plan.save(out.with_suffix(".plan.json"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
