"""Compression quality at equal parameter budget: gradient-aligned ranks against the usual rank policies.

Usage::

    python benchmarks/compression_quality.py                                        # the 2-core CPU setting
    python benchmarks/compression_quality.py --config benchmarks/compression_quality_gpu.yaml --device cuda

One fixed synthetic PA-100K-format task, one dense model trained per seed (Lightning Trainer), then from
that checkpoint: accuracy bisection (eps = 0.2 points of label accuracy per layer, the reference) sets
the parameter budget; the gradient-aligned global budget rule, uniform ratio and spectral energy are
matched to it, and the gradient threshold rule (tau) reports its own budget. Each plan is applied with
full-effort CP, BN statistics are recalibrated, mA/F1 are measured, every model is fine-tuned for the
same steps and measured again. Also the mA-vs-params curve of the gradient budget rule and the uniform
ratio at ``curve_ratios``, and pass/fail of the issue's goals.

Writes ``benchmarks/results/compression_quality_<tag>.{json,md,png}`` and ``..._<tag>_plans.json``
(atomically), prints the tables, logs progress with timestamps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.machine import describe  # noqa: E402
from benchmarks.quality import report  # noqa: E402
from benchmarks.quality.config import QualityConfig, load_config  # noqa: E402
from benchmarks.quality.evaluation import Evaluator, PlanCosts, cache_batches, network_costs  # noqa: E402
from benchmarks.quality.policies import (  # noqa: E402
    PolicyPlan,
    bisection_policy,
    budget_policy,
    energy_policy,
    gradient_search,
    threshold_policy,
    uniform_policy,
)
from benchmarks.quality.training import EvalData, compress_and_finetune, train_dense  # noqa: E402
from data_modules import PA100KDataModule  # noqa: E402
from data_modules.synthetic import synthesize_pa100k  # noqa: E402
from par_lightning.atomic_io import atomic_write_text  # noqa: E402
from par_lightning.compression import select_layers  # noqa: E402
from par_lightning.module import PARModule  # noqa: E402

_START = time.perf_counter()


def log(message: str) -> None:
    """Timestamped progress line, flushed (the full run is followed through its log file)."""
    print(f"[{time.strftime('%H:%M:%S')} +{time.perf_counter() - _START:6.0f} s] {message}", flush=True)


def _repo_path(path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO / p


def _commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")


def build_datamodule(cfg: QualityConfig) -> PA100KDataModule:
    """Generate the fixed synthetic set once (timed, logged), then the DataModule over it."""
    d = cfg.data
    root = _repo_path(d.root)
    if not (root / "annotation.mat").is_file():
        log(
            f"synthesizing {d.num_images} PA-100K-format images (seed {d.synth_seed}, difficulty {d.difficulty}) into {root}"
        )
        start = time.perf_counter()
        synthesize_pa100k(root, d.num_images, d.synth_seed, workers=d.synth_workers, difficulty=d.difficulty)
        log(f"synthesized in {time.perf_counter() - start:.0f} s")
    dm = PA100KDataModule(
        root=str(root), height=d.height, width=d.width, pad=d.pad, batch_size=d.batch_size,
        eval_batch_size=d.eval_batch_size, num_workers=d.num_workers,
    )  # fmt: skip
    dm.setup("fit")
    dm.setup("test")
    sizes = {role: len(ds) for role, ds in dm.datasets.items()}
    log(f"data: {sizes} images at {d.height}x{d.width}, {dm.num_attributes} attributes")
    return dm


def _point(policy: PolicyPlan, record: dict[str, Any], dense_params: int) -> dict[str, Any]:
    if record["params_applied"] != policy.params:  # the arithmetic count disagrees with the applied model
        log(
            f"  WARNING {policy.policy}: counted {policy.params:,} params, the applied model has {record['params_applied']:,}"
        )
    return policy.summary() | record | {"ratio": dense_params / policy.params, "plan": policy.plan.to_dict()}


def run_seed(cfg: QualityConfig, dm: PA100KDataModule, seed: int) -> dict[str, Any]:
    """Train, search every policy, compress + fine-tune each; the per-seed part of the results."""
    device = torch.device(cfg.device)
    checkpoint = _repo_path(cfg.run_dir) / cfg.tag / f"dense_seed{seed}.ckpt"
    log(f"seed {seed}: training the dense model for {cfg.train.epochs} epochs")
    _, train_seconds = train_dense(cfg, dm, seed, checkpoint)
    log(f"seed {seed}: trained in {train_seconds:.0f} s; checkpoint {checkpoint}")

    module = PARModule.load_from_checkpoint(checkpoint, map_location=device).eval()
    net = module.model
    evaluator = Evaluator(module.memory_format, module.num_eval, float(module.hparams.get("threshold", 0.5)))
    data = EvalData(
        val=cache_batches(dm.val_dataloader(), device),
        test=cache_batches(dm.test_dataloader(), device),
        recalibration=cache_batches(
            dm.calibration_dataloader(seed=seed + 1000), device, cfg.bn_recalibration_batches
        ),
    )
    example = data.val[0][0][:1]
    dense_params, dense_macs = network_costs(net, example)
    dense: dict[str, Any] = {"params": dense_params, "macs": dense_macs, "train_seconds": train_seconds,
             "final": {f"{split}_{k}": v for split in ("val", "test")
                       for k, v in evaluator.metrics(net, getattr(data, split)).items()}}  # fmt: skip
    log(f"seed {seed}: dense {dense_params:,} params, {dense_macs:,} MACs; "
        f"val mA {dense['final']['val_mA']:.4f}, test mA {dense['final']['test_mA']:.4f}, test F1 {dense['final']['test_f1']:.4f}")  # fmt: skip

    selection = select_layers(
        net,
        include=cfg.include,
        exclude=cfg.exclude,
        min_params=cfg.min_params,
        cp_method=cfg.kxk_method,  # type: ignore[arg-type]
    )
    targets = selection.targets
    log(f"seed {seed}: {len(targets)} target layers; skipped {sorted(selection.skipped)}")

    costs = PlanCosts(net, example)

    log("accuracy bisection (validation label accuracy, BN recalibrated per trial) ...")
    bisection = bisection_policy(
        net, targets, lambda m: evaluator.metrics(m, data.val)["label_acc"],
        lambda m: evaluator.recalibrate(m, data.recalibration), cfg, costs,
    )  # fmt: skip
    budget = bisection.params
    log(f"  bisection: {budget:,} params ({dense_params / budget:.2f}x fewer), {len(bisection.plan.layers)} layers, "
        f"{bisection.search_seconds:.0f} s, {int(bisection.knob['evaluations'])} evaluations")  # fmt: skip

    log("gradient-aligned search (calibration + score_layers, full grid) ...")
    g = cfg.gradient

    def calibration() -> list[Any]:
        loader = dm.calibration_dataloader(batch_size=g.calibration_batch_size, seed=seed)
        return cache_batches(loader, device, g.calibration_batches)

    search = gradient_search(
        net, lambda _m, b: module.compute_loss(b), calibration, targets, example, cfg, seed
    )
    log(f"  search: {search.candidates} candidates in {search.seconds:.1f} s")
    policies = {
        "accuracy_bisection": bisection,
        "gradient_budget": budget_policy(search, cfg, costs, budget),
        "gradient_threshold": threshold_policy(search, cfg, costs),
        "uniform_ratio": uniform_policy(net, targets, cfg, costs, budget),
        "energy": energy_policy(net, targets, cfg, costs, budget),
    }
    for name, p in policies.items():
        status = "" if p.matched is None else (" (matched)" if p.matched else " (NOT within the tolerance)")
        log(f"  {name}: {p.params:,} params ({dense_params / p.params:.2f}x fewer), {p.macs:,} MACs, "
            f"{len(p.plan.layers)} layers, search {p.search_seconds:.1f} s{status} {p.knob}")  # fmt: skip

    def finetune(label: str, plan: Any) -> dict[str, Any]:
        log(f"  {label}: swap, BN recalibration, {cfg.finetune.steps} fine-tuning steps")
        return compress_and_finetune(cfg, checkpoint, plan, dm, evaluator, data, seed, log)

    dense_ft = finetune("uncompressed (control)", None)
    dense_ft.pop("after_swap")  # no swap: the trained model's numbers are in "dense"
    dense_ft |= {"params": dense_params, "macs": dense_macs}
    results = {name: _point(p, finetune(name, p.plan), dense_params) for name, p in policies.items()}

    curve: dict[str, list[dict[str, Any]]] = {"gradient_budget": [], "uniform_ratio": []}
    for policy in curve:
        # the main comparison's point; its plan is saved with the policy
        shared = {k: v for k, v in results[policy].items() if k != "plan"}
        curve[policy].append(shared | {"target_ratio": dense_params / budget})
    for ratio in cfg.curve_ratios:
        target = round(dense_params / ratio)
        if abs(target - budget) <= cfg.budget_tolerance * budget:
            continue  # the main comparison already measured this budget
        for name, p in (
            ("gradient_budget", budget_policy(search, cfg, costs, target)),
            ("uniform_ratio", uniform_policy(net, targets, cfg, costs, target)),
        ):
            log(f"  curve {name} at {ratio:g}x: {p.params:,} params{'' if p.matched else ' (NOT matched)'}")
            point = _point(p, finetune(f"curve {name} {ratio:g}x", p.plan), dense_params)
            curve[name].append(point | {"target_ratio": ratio})
    return {"seed": seed, "dense": dense, "dense_finetuned": dense_ft, "budget_params": budget,
            "targets": dict(targets), "policies": results, "curve": curve}  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--config", default=str(REPO / "benchmarks" / "compression_quality.yaml"), help="settings (YAML)"
    )
    p.add_argument("--device", default=None, help="override the config's device (cpu, cuda)")
    p.add_argument("--tag", default=None, help="results file suffix (default: the config's tag)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the config's seeds")
    p.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "results", help="where results go")
    p.add_argument(
        "--from-json", type=Path, default=None,
        help="rebuild the goals, .md and .png of a saved results JSON (no training, nothing measured again)",
    )  # fmt: skip
    p.add_argument(
        "--merge", type=Path, nargs="+", default=None,
        help="combine the seeds of results JSONs of the same settings (e.g. seeds run in parallel) into --tag",
    )  # fmt: skip
    return p.parse_args(argv)


def merge_results(paths: list[Path], tag: str) -> dict[str, Any]:
    """One result holding the seeds of several runs of the same settings (they may differ in seeds and tag only).

    Runs on separate processes are how several seeds fit the time budget; the report then shows the spread.
    """
    runs = [json.loads(p.read_text()) for p in paths]

    def settings(run: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in run["config"].items() if k not in ("seeds", "tag")}

    for path, run in zip(paths[1:], runs[1:], strict=True):
        if settings(run) != settings(runs[0]):
            raise SystemExit(f"--merge: {path} was run with other settings than {paths[0]}")
    seeds = [s for run in runs for s in run["seeds"]]
    numbers = [s["seed"] for s in seeds]
    if len(set(numbers)) != len(numbers):
        raise SystemExit(f"--merge: seed numbers repeat across the files: {numbers}")
    config = runs[0]["config"] | {"seeds": numbers, "tag": tag}
    return {
        "tag": tag, "command": " ; ".join(r["command"] for r in runs), "config": config,
        "machine": runs[0]["machine"], "commit": " ; ".join(str(r["commit"]) for r in runs),
        "wall_seconds": max(r["wall_seconds"] for r in runs), "merged_from": [str(p) for p in paths],
        "seeds": sorted(seeds, key=lambda s: s["seed"]),
    }  # fmt: skip


def write_report(result: dict[str, Any], out: Path) -> None:
    """Goals, markdown tables and plot from the results; writes ``out``.{json,md,png} and prints the tables."""
    result["goals"] = report.goals(result)
    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=2, default=str) + "\n")
    text = report.markdown(result)
    atomic_write_text(out.with_suffix(".md"), text)
    png = report.plot(result, out.with_suffix(".png"))
    print("\n" + text, flush=True)
    log(f"wrote {out}.json, .md" + (", .png" if png else " (no matplotlib: no plot)"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:
        if not args.from_json.is_file():
            raise SystemExit(f"--from-json {str(args.from_json)!r} does not exist")
        saved = json.loads(args.from_json.read_text())
        write_report(saved, args.out_dir / f"compression_quality_{saved['tag']}")
        return 0
    if args.merge is not None:
        if args.tag is None:
            raise SystemExit("--merge needs --tag (the merged results' name)")
        write_report(merge_results(args.merge, args.tag), args.out_dir / f"compression_quality_{args.tag}")
        return 0
    cfg = load_config(args.config)
    cfg.device = args.device or cfg.device
    cfg.tag = args.tag or cfg.tag
    cfg.seeds = args.seeds or cfg.seeds
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {cfg.device}: torch sees no CUDA device")
    torch.set_num_threads(cfg.threads)
    machine = describe()
    command = "python benchmarks/compression_quality.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    log(f"compression quality benchmark '{cfg.tag}' on {cfg.device}: {command.strip()}")
    dm = build_datamodule(cfg)
    seeds = [run_seed(cfg, dm, seed) for seed in cfg.seeds]
    result: dict[str, Any] = {
        "tag": cfg.tag, "command": command.strip(), "config": cfg.to_dict(), "machine": machine,
        "commit": _commit(), "wall_seconds": time.perf_counter() - _START, "seeds": seeds,
    }  # fmt: skip
    out = args.out_dir / f"compression_quality_{cfg.tag}"
    plans = {f"seed{s['seed']}": {n: r.pop("plan") for n, r in s["policies"].items()} for s in seeds}
    for s in seeds:
        for name, points in s["curve"].items():
            for point in points:
                if "plan" in point:
                    plans[f"seed{s['seed']}"][f"curve_{name}_{point['target_ratio']:g}x"] = point.pop("plan")
    atomic_write_text(out.with_name(out.name + "_plans.json"), json.dumps(plans, indent=1) + "\n")
    write_report(result, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
