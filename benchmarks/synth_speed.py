"""Time ``synthesize_pa100k`` (render + JPEG + annotation.mat) for 1 and 2 workers on this machine.

Usage: ``python benchmarks/synth_speed.py [--images 10000] [--workers 1 2]``. Prints a table and writes
``benchmarks/results/synth_speed.json`` with the machine description, so numbers stay comparable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from data_modules.synthetic import synthesize_pa100k  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "synth_speed.json"
TARGET_S = 60.0  # for 10,000 images with 2 workers


def time_one(num_images: int, workers: int, seed: int) -> float:
    """Wall-clock seconds for one full generation into a fresh temporary folder."""
    tmp = Path(tempfile.mkdtemp(prefix="synth_speed_"))
    try:
        t0 = time.perf_counter()
        synthesize_pa100k(tmp / "pa100k", num_images=num_images, seed=seed, workers=workers)
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def machine_info() -> dict[str, object]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),  # other jobs on the machine skew timings
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    info = machine_info()
    rows = []
    print(f"{'workers':>7} {'images':>7} {'seconds':>8} {'images/s':>9}")
    for workers in args.workers:
        seconds = time_one(args.images, workers, args.seed)
        rows.append({"workers": workers, "images": args.images, "seconds": round(seconds, 2),
                     "images_per_s": round(args.images / seconds, 1)})  # fmt: skip
        print(f"{workers:>7} {args.images:>7} {seconds:>8.1f} {args.images / seconds:>9.1f}", flush=True)
    result = {"benchmark": "synthesize_pa100k", "difficulty": 1.0, "target": f"<= {TARGET_S:.0f} s for 10000 "
              "images with 2 workers", "machine": info, "runs": rows}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
