"""Measure CPU data-loading throughput (decode + train-time augment) of the real PA-100K pipeline.

Usage: ``python benchmarks/data_loading.py [--num-images 2000] [--sizes 256x128 256x192] [--workers 0 1 2]
[--root DIR] [--out FILE]``.

For each input size it times ``PA100KDataModule``'s *train* dataset (JPEG decode, resize to H×W, pad, random
crop, horizontal flip, to-tensor, ImageNet normalisation) over a synthetic PA-100K-format set:

- ``--workers 0``: a single process calling ``dm.datasets["train"][i]`` for ``--num-images`` items (torch
  limited to one thread, like a DataLoader worker);
- ``--workers k`` (k > 0): ``dm.train_dataloader()`` with ``num_workers=k``, batch 64, persistent workers;
  one full epoch is run as a warm-up (worker start-up, page cache), then whole epochs are timed until at
  least ``--num-images`` images have arrived (steady state).

The per-worker rate (images/s divided by the worker count) gives the number of workers a GPU training at
2,000 images/s would need: ``ceil(2000 / per_worker_rate)``. The machine this was written on has only two
cores, so that figure is a per-core extrapolation, not a measurement. Prints a table and writes
``benchmarks/results/data_loading.json`` with the machine description, so numbers stay comparable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import PIL
import torch
import torchvision
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from data_modules import PA100KDataModule  # noqa: E402
from data_modules.synthetic import synthesize_pa100k  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "data_loading.json"
TARGET_GPU_IMAGES_PER_S = 2000
BATCH_SIZE = 64
PIPELINE = "JPEG decode -> RGB -> Resize(H, W) -> Pad(10) -> RandomCrop(H, W) -> RandomHorizontalFlip -> ToTensor -> Normalize"


def parse_size(text: str) -> tuple[int, int]:
    """``"256x128"`` -> ``(256, 128)`` (height, width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must look like HxW (e.g. 256x128), got {text!r}") from exc
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return h, w


def machine_info() -> dict[str, object]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),  # other jobs on the machine skew timings
    }


def make_datamodule(root: Path, height: int, width: int, num_workers: int) -> PA100KDataModule:
    dm = PA100KDataModule(
        root=str(root),
        height=height,
        width=width,
        batch_size=BATCH_SIZE,
        num_workers=num_workers,
        pin_memory=False,  # CPU-only measurement
        check_images=False,  # header checks are a one-off setup cost, not loading throughput
    )
    dm.setup("fit")
    return dm


def time_single_process(root: Path, height: int, width: int, num_images: int) -> dict[str, float]:
    """Call ``dataset[i]`` ``num_images`` times (cycling over the train split) in this process."""
    dataset = make_datamodule(root, height, width, num_workers=0).datasets["train"]
    n = len(dataset)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a DataLoader worker runs torch with one thread; match it
    try:
        for i in range(min(16, n)):  # warm-up: imports, allocator, page cache
            dataset[i]
        t0 = time.perf_counter()
        for i in range(num_images):
            dataset[i % n]
        seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    return {"images": num_images, "seconds": seconds}


def time_dataloader(
    root: Path, height: int, width: int, num_workers: int, num_images: int
) -> dict[str, float]:
    """Warm-up epoch, then time whole epochs of ``train_dataloader()`` until ``num_images`` have arrived."""
    dm = make_datamodule(root, height, width, num_workers=num_workers)
    loader = dm.train_dataloader()
    for _ in loader:  # warm-up epoch: spawns the (persistent) workers
        pass
    images, t0 = 0, time.perf_counter()
    while images < num_images:
        epoch_images = 0
        for x, _y in loader:
            epoch_images += x.shape[0]
        if epoch_images == 0:
            raise RuntimeError("train_dataloader() yielded no batches")
        images += epoch_images
    seconds = time.perf_counter() - t0
    del loader, dm  # shut the persistent workers down before the next configuration
    return {"images": images, "seconds": seconds}


def source_image_size(root: Path) -> list[int] | None:
    first = next(iter(sorted((root / "data").glob("*.jpg"))), None)
    if first is None:
        return None
    with Image.open(first) as img:
        return [img.height, img.width]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=2000, help="images synthesized and timed per run")
    parser.add_argument("--root", type=Path, default=None,
                        help="PA-100K-format folder; synthesized there if absent (default: a temp dir)")  # fmt: skip
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[(256, 128), (256, 192)],
                        metavar="HxW")  # fmt: skip
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2],
                        help="0 = single process dataset[i]; k > 0 = DataLoader(num_workers=k)")  # fmt: skip
    parser.add_argument("--synth-workers", type=int, default=None, help="processes for synthesis")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.num_images < 1 or any(w < 0 for w in args.workers):
        parser.error("--num-images must be >= 1 and --workers >= 0")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    info = machine_info()
    tmp = None
    if args.root is None:
        tmp = Path(tempfile.mkdtemp(prefix="data_loading_"))
        root = tmp / "pa100k"
    else:
        root = args.root
    try:
        t0 = time.perf_counter()
        synthesize_pa100k(root, num_images=args.num_images, seed=0, workers=args.synth_workers)
        synth_s = time.perf_counter() - t0
        train_images = len(make_datamodule(root, 256, 128, 0).datasets["train"])
        source_hw = source_image_size(root)
        rows = []
        header = f"{'size':>8} {'mode':>16} {'images':>7} {'seconds':>8} {'images/s':>9} {'per worker':>10} {'workers@2k':>10}"
        print(f"synthetic PA-100K at {root}: {args.num_images} images ({train_images} train), "
              f"synthesized in {synth_s:.1f} s")  # fmt: skip
        print(header)
        for height, width in args.sizes:
            for workers in args.workers:
                if workers == 0:
                    run = time_single_process(root, height, width, args.num_images)
                    mode = "single process"
                else:
                    run = time_dataloader(root, height, width, workers, args.num_images)
                    mode = f"DataLoader w={workers}"
                rate = run["images"] / run["seconds"]
                per_worker = rate / max(workers, 1)
                needed = math.ceil(TARGET_GPU_IMAGES_PER_S / per_worker)
                rows.append({
                    "size": f"{height}x{width}", "height": height, "width": width, "mode": mode,
                    "num_workers": workers, "batch_size": None if workers == 0 else BATCH_SIZE,
                    "images": run["images"], "seconds": round(run["seconds"], 3),
                    "images_per_s": round(rate, 1), "per_worker_images_per_s": round(per_worker, 1),
                    "workers_for_target": needed,
                })  # fmt: skip
                print(f"{height}x{width:<4} {mode:>16} {run['images']:>7} {run['seconds']:>8.2f} {rate:>9.1f} "
                      f"{per_worker:>10.1f} {needed:>10}", flush=True)  # fmt: skip
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    # Headline per size: the num_workers=1 DataLoader (a real worker process) if measured, else the
    # single-process rate, else the largest worker count.
    summary = {}
    for height, width in args.sizes:
        size_rows = [r for r in rows if r["size"] == f"{height}x{width}"]
        best = next((r for r in size_rows if r["num_workers"] == 1), None) or next(
            (r for r in size_rows if r["num_workers"] == 0), size_rows[-1]
        )
        summary[f"{height}x{width}"] = {
            "basis": best["mode"],
            "per_worker_images_per_s": best["per_worker_images_per_s"],
            "workers_for_target": best["workers_for_target"],
        }
    cores = os.cpu_count()
    note = (
        f"workers_for_target = ceil({TARGET_GPU_IMAGES_PER_S} / per-worker images/s). This machine has "
        f"{cores} CPU cores, so for more than {cores} workers it is a per-core extrapolation (assumes "
        "throughput scales linearly with cores of the same speed), not a measurement."
    )
    print()
    for size, s in summary.items():
        print(f"{size}: {s['per_worker_images_per_s']:.0f} images/s per worker ({s['basis']}) -> "
              f"{s['workers_for_target']} workers to feed a GPU at {TARGET_GPU_IMAGES_PER_S} images/s")  # fmt: skip
    print(f"note: {note}")

    info["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)  # the machine is shared: check for contention
    result = {
        "benchmark": "data_loading",
        "datamodule": "data_modules.PA100KDataModule (train dataset, synthetic PA-100K-format data, seed 0)",
        "pipeline": PIPELINE,
        "num_images": args.num_images,
        "train_images": train_images,
        "source_image_hw": source_hw,
        "target_gpu_images_per_s": TARGET_GPU_IMAGES_PER_S,
        "method": {
            "single_process": "dataset[i] for num_images items cycling over the train split, torch 1 thread, "
            "after 16 warm-up items",
            "dataloader": f"train_dataloader(), batch {BATCH_SIZE}, shuffle, drop_last, persistent workers, "
            "pin_memory off; one warm-up epoch, then whole epochs timed until >= num_images images",
        },
        "note": note,
        "machine": info,
        "runs": rows,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
