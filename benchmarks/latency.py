"""Latency of the full vs the compressed model, same process, same input: is the compressed model really faster?

Usage::

    python benchmarks/latency.py          # the ALM plan (compression_search_bninception_trained_cpu.plan.json), 128x64, CPU 2 threads
    python benchmarks/latency.py --checkpoint runs/x/checkpoints/last.ckpt      # a dense or compressed checkpoint
    python benchmarks/latency.py --plan PLAN.json --arch alm --size 128 64 --device cuda   # bf16 latency, training

Models: ``--plan`` builds the dense ``PARModule`` (random weights) and a copy with the plan's factorized
layers (random factors: latency does not depend on the values). ``--checkpoint`` loads it; the other model
is the same architecture built dense (a compressed checkpoint) or the checkpoint with ``--plan`` applied
(a dense one). Both models are ``PARModule.forward`` in eval mode: merged logits, as exported.

CPU (``torch.set_num_threads(--threads)``): for each batch size, runtimes PyTorch eager NCHW, eager
channels_last (weights and input already NHWC) and ONNX Runtime (``par_lightning.export.export_onnx``,
``intra_op_num_threads = --threads``). After ``--warmup`` calls, each of ``--runs`` rounds times the full
then the compressed model on the same input, so load from other processes hits both alike. Reported:
median, p10 and p90 (ms) of the recorded samples, speed-up = full median / compressed median per runtime,
and best runtime vs best runtime. CUDA: the same under bf16 autocast (eager NCHW and channels_last), and
training images/s of Adam steps with bf16 autocast at ``--train-batch``. No wandb/omegaconf/tensorly code.
Writes ``benchmarks/results/latency_<tag>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.machine import describe  # noqa: E402
from par_lightning.atomic_io import atomic_write_text  # noqa: E402
from par_lightning.compression import CompressionPlan, count_module_costs  # noqa: E402
from par_lightning.module import PARModule  # noqa: E402

CPU_RUNTIMES = ("eager", "channels_last", "onnxruntime")
CUDA_RUNTIMES = ("bf16", "bf16_channels_last")
MODELS = ("full", "compressed")


def _random_factors(module: PARModule, plan: CompressionPlan) -> None:
    """Default-initialise the factor layers that ``apply_compression(decompose=False)`` left at zero."""
    for name in plan.layers:
        for layer in module.model.get_submodule(name).modules():
            if isinstance(layer, nn.Conv2d | nn.Linear):
                layer.reset_parameters()


# The gradient-aligned plan of the trained BN-Inception ALM (benchmarks/compression_search.py), N = 26, 128x64.
DEFAULT_ALM_PLAN = REPO / "benchmarks" / "results" / "compression_search_bninception_trained_cpu.plan.json"


def build_models(args: argparse.Namespace) -> tuple[dict[str, PARModule], tuple[int, int], str]:
    """``{"full": ..., "compressed": ...}`` in eval mode, the input size, and a description of where they came from."""
    if (
        args.checkpoint is None and args.plan is None
    ):  # the documented one-command run: the ALM plan at 128x64
        args.plan, args.size = DEFAULT_ALM_PLAN, args.size or [128, 64]
    plan = CompressionPlan.load(args.plan) if args.plan else None
    if args.checkpoint:
        from par_lightning.export import checkpoint_input_size, load_checkpoint_module

        loaded, ckpt = load_checkpoint_module(args.checkpoint)
        assert isinstance(loaded, PARModule)
        size = tuple(args.size) if args.size else checkpoint_input_size(ckpt)
        if loaded.compression_plan is not None:
            hparams = {k: v for k, v in loaded.hparams.items() if not k.startswith("_")}
            full, compressed = PARModule(**hparams), loaded
            source = f"checkpoint {args.checkpoint} (compressed); full = PARModule(**hparams), random weights"
        elif plan is not None:
            full, compressed = loaded, copy.deepcopy(loaded)
            compressed.apply_compression(plan, decompose=False)
            _random_factors(compressed, plan)
            source = f"checkpoint {args.checkpoint} (dense) + plan {args.plan} with random factors"
        else:
            raise SystemExit(f"--checkpoint {args.checkpoint} is dense: pass --plan PLAN.json to compare")
    else:
        torch.manual_seed(0)
        full = PARModule(arch=args.arch, backbone=args.backbone, num_attributes=args.num_attributes)
        compressed = copy.deepcopy(full)
        compressed.apply_compression(plan, decompose=False)
        _random_factors(compressed, plan)
        size = tuple(args.size) if args.size else (256, 128)
        source = f"{args.arch}/{args.backbone} N={args.num_attributes}, random weights; plan {args.plan}"
    models = {"full": full.float().eval(), "compressed": compressed.float().eval()}
    return models, (int(size[0]), int(size[1])), source


def costs(model: nn.Module, size: tuple[int, int]) -> dict[str, int]:
    """All parameters, and conv/linear MACs per image."""
    macs = sum(m for _, m in count_module_costs(model, torch.zeros(1, 3, *size)).values())
    return {"params": sum(p.numel() for p in model.parameters()), "macs": int(macs)}


def summarize(samples_ms: list[float]) -> dict[str, Any]:
    """Median, p10, p90 (linear interpolation) and the samples themselves, so the numbers can be re-derived."""
    p10, p50, p90 = np.percentile(samples_ms, [10, 50, 90])
    return {"median_ms": float(p50), "p10_ms": float(p10), "p90_ms": float(p90), "samples_ms": samples_ms}


def interleaved_ms(
    fns: Mapping[str, Callable[[], object]], runs: int, warmup: int, sync: Callable[[], None]
) -> dict[str, list[float]]:
    """Milliseconds per call: each round times every function once (order alternating) on the same input."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(runs):
        for key, fn in list(fns.items())[:: 1 if i % 2 == 0 else -1]:
            start = time.perf_counter()
            fn()
            sync()
            samples[key].append(1000 * (time.perf_counter() - start))
    return samples


def _memory_format_copy(module: PARModule, fmt: torch.memory_format) -> PARModule:
    out = copy.deepcopy(module)
    out.memory_format = fmt
    out.model.to(memory_format=fmt)
    return out


def cpu_rows(models: dict[str, PARModule], size: tuple[int, int], args: argparse.Namespace) -> list[dict]:
    import onnxruntime as ort

    from par_lightning.export import export_onnx

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    sessions = {k: ort.InferenceSession(export_onnx(m, *size), options) for k, m in models.items()}
    nchw = {k: _memory_format_copy(m, torch.contiguous_format) for k, m in models.items()}
    nhwc = {k: _memory_format_copy(m, torch.channels_last) for k, m in models.items()}
    rows = []
    for batch, runs in zip(args.batch_sizes, args.runs, strict=True):
        x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(batch))  # (B, 3, H, W)
        x_nhwc, x_np = x.contiguous(memory_format=torch.channels_last), x.numpy()
        for runtime in args.runtimes:
            if runtime == "onnxruntime":
                fns = {k: partial(s.run, None, {"images": x_np}) for k, s in sessions.items()}
                with torch.inference_mode():
                    diff = max(
                        float(np.abs(sessions[k].run(None, {"images": x_np})[0] - nchw[k](x).numpy()).max())
                        for k in models
                    )
            else:
                mods, inp = (nchw, x) if runtime == "eager" else (nhwc, x_nhwc)
                fns = {k: partial(m, inp) for k, m in mods.items()}
                diff = None
            with torch.inference_mode():
                samples = interleaved_ms(fns, runs, args.warmup, sync=_no_sync)
            rows.append(_row(runtime, batch, samples, onnx_max_abs_diff=diff))
            _print_progress(rows[-1])
    return rows


def cuda_rows(models: dict[str, PARModule], size: tuple[int, int], args: argparse.Namespace) -> list[dict]:
    dev = torch.device("cuda")
    rows = []
    for runtime in args.cuda_runtimes:
        fmt = torch.channels_last if runtime.endswith("channels_last") else torch.contiguous_format
        mods = {k: _memory_format_copy(m, fmt).to(dev) for k, m in models.items()}
        for batch, runs in zip(args.batch_sizes, args.runs, strict=True):
            x = torch.randn(batch, 3, *size, device=dev).contiguous(memory_format=fmt)

            def call(m: PARModule, x: torch.Tensor = x) -> torch.Tensor:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    return m(x)

            fns = {k: partial(call, m) for k, m in mods.items()}
            with torch.inference_mode():
                samples = interleaved_ms(fns, runs, args.warmup, sync=torch.cuda.synchronize)
            rows.append(_row(runtime, batch, samples))
            _print_progress(rows[-1])
        del mods
        torch.cuda.empty_cache()
    return rows


def cuda_training(models: dict[str, PARModule], size: tuple[int, int], args: argparse.Namespace) -> dict:
    """Images/s of Adam steps (bf16 autocast, channels_last) on random images and labels."""
    dev, batch, out = torch.device("cuda"), args.train_batch, {}
    for key, module in models.items():
        m = _memory_format_copy(module, torch.channels_last).to(dev).train()
        opt = torch.optim.Adam(m.parameters(), lr=1e-4)
        x = torch.randn(batch, 3, *size, device=dev).contiguous(memory_format=torch.channels_last)
        y = (torch.rand(batch, m.hparams["num_attributes"], device=dev) < 0.3).float()
        step_times = []
        for step in range(3 + args.train_steps):  # 3 warm-up steps
            start = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = m.compute_loss((x, y))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            torch.cuda.synchronize()
            if step >= 3:
                step_times.append(time.perf_counter() - start)
        out[key] = {"images_per_s": batch * len(step_times) / sum(step_times), "batch": batch}
        print(f"train {key:10s} bs{batch} {out[key]['images_per_s']:9.1f} img/s", flush=True)
        del m, opt
        torch.cuda.empty_cache()
    out["speedup"] = out["compressed"]["images_per_s"] / out["full"]["images_per_s"]
    return out


def _row(runtime: str, batch: int, samples: dict[str, list[float]], **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"runtime": runtime, "batch": batch}
    row.update({k: summarize(samples[k]) for k in MODELS})
    row["speedup"] = row["full"]["median_ms"] / row["compressed"]["median_ms"]
    row.update({k: v for k, v in extra.items() if v is not None})
    return row


def _median(model: str, row: dict) -> float:
    return float(row[model]["median_ms"])


def _no_sync() -> None:
    """CPU calls return when done: nothing to wait for."""


def best_vs_best(rows: list[dict]) -> list[dict]:
    """Per batch size: the fastest runtime of each model (by median) and the speed-up between them."""
    out = []
    for batch in sorted({r["batch"] for r in rows}):
        mine = [r for r in rows if r["batch"] == batch]
        best = {k: min(mine, key=partial(_median, k)) for k in MODELS}
        item: dict[str, Any] = {"batch": batch}
        for k in MODELS:
            item[f"{k}_runtime"], item[f"{k}_median_ms"] = best[k]["runtime"], best[k][k]["median_ms"]
        item["speedup"] = item["full_median_ms"] / item["compressed_median_ms"]
        out.append(item)
    return out


def _print_progress(row: dict) -> None:
    f, c = row["full"]["median_ms"], row["compressed"]["median_ms"]
    print(
        f"{row['runtime']:20s} bs{row['batch']:<4d} full {f:9.2f} ms  compressed {c:9.2f} ms  x{row['speedup']:.2f}"
    )


def print_table(result: dict) -> None:
    load = f"{result['machine']['load_avg_1m_at_start']:.1f} -> {result['load_avg_1m_at_end']:.1f}"
    print(
        f"\n{result['source']}; input {result['input'][0]}x{result['input'][1]}, {result['device']}; load {load}"
    )
    for k in MODELS:
        c = result["costs"][k]
        print(f"  {k:10s} params {c['params']:>12,d}   MACs/image {c['macs']:>14,d}")
    head = f"{'runtime':20s} {'batch':>5s} {'full ms (p10-p90)':>26s} {'compressed ms (p10-p90)':>26s} {'speed-up':>8s}"
    print(head + "\n" + "-" * len(head))
    for r in result["latency"]:
        cells = [f"{r[k]['median_ms']:9.2f} ({r[k]['p10_ms']:.1f}-{r[k]['p90_ms']:.1f})" for k in MODELS]
        print(f"{r['runtime']:20s} {r['batch']:5d} {cells[0]:>26s} {cells[1]:>26s} {r['speedup']:7.2f}x")
    for b in result["best_vs_best"]:
        print(f"best vs best, batch {b['batch']}: full {b['full_runtime']} {b['full_median_ms']:.2f} ms, "
              f"compressed {b['compressed_runtime']} {b['compressed_median_ms']:.2f} ms -> {b['speedup']:.2f}x")  # fmt: skip
    if "training" in result:
        t = result["training"]
        print(f"training (bf16, batch {t['full']['batch']}): full {t['full']['images_per_s']:.1f} img/s, "
              f"compressed {t['compressed']['images_per_s']:.1f} img/s -> {t['speedup']:.2f}x")  # fmt: skip


def _commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, default=None, help="dense or compressed PARModule checkpoint")
    p.add_argument("--plan", type=Path, default=None, help="compression plan JSON (CompressionPlan.save)")
    p.add_argument("--arch", default="alm")
    p.add_argument("--backbone", default="bninception")
    p.add_argument("--num-attributes", type=int, default=26)
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="input size (default: the checkpoint's training size, else 256 128)")  # fmt: skip
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for PyTorch and ONNX Runtime")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    p.add_argument("--runs", type=int, nargs="+", default=[30, 8], help="timed rounds per batch size")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--runtimes", nargs="+", choices=CPU_RUNTIMES, default=list(CPU_RUNTIMES))
    p.add_argument("--cuda-runtimes", nargs="+", choices=CUDA_RUNTIMES, default=list(CUDA_RUNTIMES))
    p.add_argument("--train-batch", type=int, default=64)
    p.add_argument("--train-steps", type=int, default=10, help="timed CUDA training steps per model")
    p.add_argument("--tag", default=None, help="results name: latency_<tag>.json (default <arch>_<device>)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if len(args.runs) != len(args.batch_sizes) or min(args.runs) < 1 or min(args.batch_sizes) < 1:
        p.error(f"--runs {args.runs} needs one count >= 1 per --batch-sizes {args.batch_sizes}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device visible")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {
        "machine": describe(),
        "commit": _commit(),
        "command": " ".join(["python", "benchmarks/latency.py", *(sys.argv[1:] if argv is None else argv)]),
        "device": args.device if args.device == "cuda" else f"cpu, {args.threads} threads",
    }
    models, size, result["source"] = build_models(args)
    result["input"] = list(size)
    result["costs"] = {k: costs(m, size) for k, m in models.items()}
    if args.device == "cpu":
        result["latency"] = cpu_rows(models, size, args)
    else:
        result["latency"] = cuda_rows(models, size, args)
        result["training"] = cuda_training(models, size, args)
    result["best_vs_best"] = best_vs_best(result["latency"])
    result["load_avg_1m_at_end"] = os.getloadavg()[0]  # other processes on the machine skew the medians
    print_table(result)
    tag = args.tag or f"{args.arch if args.checkpoint is None else args.checkpoint.stem}_{args.device}"
    out = args.out or REPO / "benchmarks" / "results" / f"latency_{tag}.json"
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
