"""ALM speed: per-attribute loop vs batched heads, parameters/MACs per part, GPU training throughput.

Usage::

    python benchmarks/alm_speed.py                      # CPU latency (2 threads) + params/MACs, N=26
    python benchmarks/alm_speed.py --device cuda        # GPU training img/s (fp32 vs bf16 + channels_last)
    python benchmarks/alm_speed.py --num-attributes 26 35 51 --out FILE

CPU: ``torch.set_num_threads(2)``, eval, ``inference_mode``, random weights, 256x128 input; the median of
``--runs1`` runs at batch 1 and ``--runs32`` runs at batch 32 after two warm-up runs, for the heads as
the reference loop, batched with separable box pooling (default), and batched with one ``grid_sample``.
GPU: Adam steps with the four-output deep-supervision loss on random data; images/s over timed steps
after warm-up, fp32 NCHW vs bf16 autocast + channels_last, for the loop and the batched heads.
Prints tables and writes ``benchmarks/results/alm_speed_<device>.json`` with the machine description.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.machine import describe  # noqa: E402
from par_lightning.compression.costs import count_module_costs  # noqa: E402
from par_lightning.models.alm import ALM  # noqa: E402

HEADS = {  # label -> ALM keyword arguments
    "loop": {"heads": "loop"},
    "batched": {"heads": "batched", "sampling": "separable"},
    "batched_grid_sample": {"heads": "batched", "sampling": "grid_sample"},
}
PARTS = ("backbone", "pyramid", "heads", "classifier")


def part_costs(model: ALM, height: int, width: int) -> dict[str, dict[str, int]]:
    """Parameters (all, BN included) and conv/linear MACs per image, per top-level part."""
    costs = count_module_costs(model, torch.zeros(1, 3, height, width))
    table = {}
    for part in PARTS:
        params = sum(p.numel() for n, p in model.named_parameters() if n.startswith(part + "."))
        macs = sum(m for name, (_, m) in costs.items() if name == part or name.startswith(part + "."))
        table[part] = {"params": params, "macs": macs}
    table["total"] = {k: sum(v[k] for v in table.values()) for k in ("params", "macs")}
    return table


def _median_ms(fn: Any, runs: int, sync: Any = lambda: None) -> float:
    for _ in range(2):
        fn()
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def cpu_latency(
    n: int, size: tuple[int, int], runs1: int, runs32: int, heads: list[str]
) -> list[dict[str, Any]]:
    torch.set_num_threads(2)
    rows = []
    for label in heads:
        torch.manual_seed(0)
        model = ALM(n, **HEADS[label]).eval()
        row: dict[str, Any] = {"num_attributes": n, "heads": label}
        for batch, runs in ((1, runs1), (32, runs32)):
            x = torch.randn(batch, 3, *size)
            with torch.inference_mode():
                row[f"bs{batch}_ms"] = _median_ms(lambda m=model, x=x: m(x), runs)
                if label == heads[0]:
                    row[f"bs{batch}_backbone_ms"] = _median_ms(lambda m=model, x=x: m.backbone(x), runs)
        rows.append(row)
        print(f"N={n:3d} {label:20s} bs1 {row['bs1_ms']:8.1f} ms   bs32 {row['bs32_ms']:9.1f} ms", flush=True)
    return rows


def gpu_training(
    n: int, size: tuple[int, int], settings: list[tuple[str, int, bool]], steps: int
) -> list[dict[str, Any]]:
    """Images/s of Adam training steps for each (heads, batch, bf16+channels_last) setting."""
    dev = torch.device("cuda")
    rows = []
    for label, batch, fast in settings:
        torch.manual_seed(0)
        model = ALM(n, **HEADS[label]).to(dev)
        fmt = torch.channels_last if fast else torch.contiguous_format
        model = model.to(memory_format=fmt)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-4)
        x = torch.randn(batch, 3, *size, device=dev).contiguous(memory_format=fmt)
        y = (torch.rand(batch, n, device=dev) < 0.3).float()

        def step(
            model: ALM = model,
            opt: torch.optim.Optimizer = opt,
            x: torch.Tensor = x,
            y: torch.Tensor = y,
            fast: bool = fast,
        ) -> None:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=fast):
                loss = sum(F.binary_cross_entropy_with_logits(o.float(), y) for o in model(x))
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            opt.step()

        for _ in range(3):
            step()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        row = {"heads": label, "batch": batch, "precision": "bf16-mixed+channels_last" if fast else "fp32",
               "images_per_s": batch * steps / seconds, "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30}  # fmt: skip
        torch.cuda.reset_peak_memory_stats()
        rows.append(row)
        print(f"{label:8s} bs{batch:4d} {row['precision']:26s} {row['images_per_s']:8.1f} img/s", flush=True)
        del model, opt
        torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--num-attributes", type=int, nargs="+", default=[26])
    p.add_argument("--size", type=int, nargs=2, default=[256, 128], metavar=("H", "W"))
    p.add_argument("--heads", nargs="+", choices=list(HEADS), default=list(HEADS))
    p.add_argument("--runs1", type=int, default=20)
    p.add_argument("--runs32", type=int, default=7)
    p.add_argument("--steps", type=int, default=20, help="timed training steps per GPU setting")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    size = (args.size[0], args.size[1])
    result: dict[str, Any] = {
        "machine": describe(),
        "input": list(size),
        "command": " ".join(["python", "benchmarks/alm_speed.py", *(argv or sys.argv[1:])]),
    }
    if args.device == "cpu":
        result["parts"] = {str(n): part_costs(ALM(n), *size) for n in args.num_attributes}
        for n, table in result["parts"].items():
            print(f"\nN={n}: part        params        MACs/image")
            for part, c in table.items():
                print(f"       {part:10s} {c['params']:12,d} {c['macs']:16,d}")
        print()
        result["cpu_latency"] = [
            row
            for n in args.num_attributes
            for row in cpu_latency(n, size, args.runs1, args.runs32, args.heads)
        ]
    else:
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device visible")
        settings = [
            (h, b, fast) for h in ("loop", "batched") for b, fast in ((32, False), (128, False), (256, True))
        ]
        result["gpu_training"] = [
            row for n in args.num_attributes for row in gpu_training(n, size, settings, args.steps)
        ]
    out = args.out or REPO / "benchmarks" / "results" / f"alm_speed_{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
