"""Markdown tables, the issue's goals with pass/fail, and the mA-vs-params plot of the quality benchmark.

Everything here reads the results dictionary only, so the tables can be rebuilt from a saved JSON.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

POLICIES = ("accuracy_bisection", "gradient_budget", "gradient_threshold", "uniform_ratio", "energy")
CURVE_POLICIES = ("gradient_budget", "uniform_ratio")


def _spread(values: Sequence[float], fmt: str = ".4f") -> str:
    """``mean`` for one seed, ``mean [min, max]`` for several."""
    mean = statistics.fmean(values)
    if len(values) == 1:
        return format(mean, fmt)
    return f"{format(mean, fmt)} [{format(min(values), fmt)}, {format(max(values), fmt)}]"


def _policy_rows(seeds: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    rows = [
        ("uncompressed (trained)", [s["dense"] for s in seeds]),
        ("uncompressed + same fine-tuning", [s["dense_finetuned"] for s in seeds]),
    ]
    return rows + [(p, [s["policies"][p] for s in seeds]) for p in POLICIES]


def main_table(result: dict[str, Any]) -> str:
    """One row per policy at the bisection's budget: costs, search time, mA/F1 after the swap and after fine-tuning."""
    seeds = result["seeds"]
    dense_params = statistics.fmean(s["dense"]["params"] for s in seeds)
    dense_macs = statistics.fmean(s["dense"]["macs"] for s in seeds)
    lines = [
        "| policy | params | × fewer | MACs/image | × fewer | Δ params vs budget | rank search (s) "
        "| test mA after swap | test F1 after swap | test mA fine-tuned | test F1 fine-tuned | val mA fine-tuned |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, recs in _policy_rows(seeds):
        params = [r["params"] for r in recs]
        macs = [r["macs"] for r in recs]
        ft = [r["final"] for r in recs]
        swap = [r["after_swap"] for r in recs if r.get("after_swap") is not None]
        diff = [100 * r["rel_diff_to_target"] for r in recs if r.get("rel_diff_to_target") is not None]
        search = [r["search_seconds"] for r in recs if r.get("search_seconds") is not None]
        cells = [
            name,
            _spread(params, ",.0f"),
            _spread([dense_params / p for p in params], ".2f"),
            _spread(macs, ",.0f"),
            _spread([dense_macs / m for m in macs], ".2f"),
            _spread(diff, "+.2f") + " %" if len(diff) == len(recs) else "—",
            _spread(search, ".1f") if len(search) == len(recs) else "—",
            _spread([s["test_mA"] for s in swap]) if len(swap) == len(recs) else "—",
            _spread([s["test_f1"] for s in swap]) if len(swap) == len(recs) else "—",
            _spread([f["test_mA"] for f in ft]),
            _spread([f["test_f1"] for f in ft]),
            _spread([f["val_mA"] for f in ft]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curve_table(result: dict[str, Any]) -> str:
    """The mA-vs-params points of the gradient budget rule and the uniform ratio (first seed)."""
    seed = result["seeds"][0]
    lines = [
        "| policy | target × fewer | params | matched | test mA after swap | test mA fine-tuned | test F1 fine-tuned |",
        "| --- | ---: | ---: | :---: | ---: | ---: | ---: |",
    ]
    for policy in CURVE_POLICIES:
        for p in sorted(seed["curve"][policy], key=lambda r: -r["params"]):
            lines.append(
                f"| {policy} | {p['target_ratio']:.2f} | {p['params']:,} | {'yes' if p['matched'] else 'NO'} "
                f"| {p['after_swap']['test_mA']:.4f} | {p['final']['test_mA']:.4f} | {p['final']['test_f1']:.4f} |"
            )
    return "\n".join(lines)


def _change(delta: float) -> str:
    """A signed mA difference in points, worded so that the sign cannot be misread."""
    return f"{100 * abs(delta):.2f} points {'higher' if delta >= 0 else 'lower'}"


def _mean(seeds: list[dict[str, Any]], policy: str, key: str = "test_mA") -> float:
    return statistics.fmean(s["policies"][policy]["final"][key] for s in seeds)


def goals(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's three goals on test mA after fine-tuning (means over seeds), each with pass/fail and numbers."""
    seeds = result["seeds"]
    grad, uni, bis = (
        _mean(seeds, "gradient_budget"),
        _mean(seeds, "uniform_ratio"),
        _mean(seeds, "accuracy_bisection"),
    )
    t_grad = statistics.fmean(s["policies"]["gradient_budget"]["search_seconds"] for s in seeds)
    t_bis = statistics.fmean(s["policies"]["accuracy_bisection"]["search_seconds"] for s in seeds)
    out = [
        {
            "goal": "gradient-aligned (budget) >= uniform ratio + 1 mA point at equal budget",
            "passed": grad >= uni + 0.01,
            "detail": f"test mA {grad:.4f} vs {uni:.4f}: {100 * (grad - uni):+.2f} points",
        },
        {
            "goal": "gradient-aligned (budget) >= accuracy bisection at <= 1/20 of its search time",
            "passed": grad >= bis and t_grad <= t_bis / 20,
            "detail": f"test mA {grad:.4f} vs {bis:.4f} ({100 * (grad - bis):+.2f} points); "
            f"search {t_grad:.1f} s vs {t_bis:.1f} s ({t_bis / max(t_grad, 1e-9):.1f}x faster, needs 20x)",
        },
    ]
    per_seed, ok = [], True
    for s in seeds:
        ref, dense_p = s["dense"]["final"]["test_mA"], s["dense"]["params"]
        ref_ft = s["dense_finetuned"]["final"]["test_mA"]
        points = [s["policies"][p] for p in ("gradient_budget", "gradient_threshold")] + s["curve"][
            "gradient_budget"
        ]
        good = [p for p in points if dense_p / p["params"] >= 3 and ref - p["final"]["test_mA"] <= 0.005]
        best3 = max(
            (p for p in points if dense_p / p["params"] >= 3),
            key=lambda p: p["final"]["test_mA"],
            default=None,
        )
        ok &= bool(good)
        if best3 is None:
            per_seed.append(f"seed {s['seed']}: no gradient-aligned plan reaches 3x fewer params")
        else:
            got = best3["final"]["test_mA"]
            per_seed.append(
                f"seed {s['seed']}: best plan with >= 3x fewer params: {dense_p / best3['params']:.2f}x, test mA "
                f"{got:.4f} vs uncompressed {ref:.4f} ({_change(got - ref)}; {_change(got - ref_ft)} vs the "
                "uncompressed model fine-tuned as long)"
            )
    out.append({"goal": ">= 3x fewer params with <= 0.5 mA point drop vs the uncompressed model (gradient-aligned)",
                "passed": ok, "detail": "; ".join(per_seed)})  # fmt: skip
    return out


def goals_table(items: list[dict[str, Any]]) -> str:
    lines = ["| goal | result | numbers |", "| --- | :---: | --- |"]
    lines += [f"| {g['goal']} | {'PASS' if g['passed'] else 'FAIL'} | {g['detail']} |" for g in items]
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    """The results as markdown, ready to paste into BENCHMARKS.md (command, machine, commit first)."""
    m, cfg = result["machine"], result["config"]
    seeds = result["seeds"]
    budget = ", ".join(f"{s['budget_params']:,}" for s in seeds)
    header = [
        f"### Compression quality at equal parameter budget ({result['tag']})",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {m['processor']}, {m['cpu_count']} cores, torch {m['torch']}, torch threads {m['torch_threads']}"
        + (f", GPU {m['gpu']}" if "gpu" in m else "")
        + f"; load average {m['load_avg_1m_at_start']:.2f} at the start; {m['date']}; commit {result['commit']}.  ",
        f"Task: synthetic PA-100K format, {cfg['data']['num_images']} images (seed {cfg['data']['synth_seed']}), "
        f"{cfg['data']['height']}x{cfg['data']['width']}; model {cfg['model']['arch']} / {cfg['model']['backbone']} "
        f"{cfg['model']['model_kwargs']}, trained {cfg['train']['epochs']} epochs. Seeds {cfg['seeds']} "
        "(several seeds: mean [min, max]). Wall time "
        f"{result['wall_seconds'] / 60:.1f} min.  ",
        f"Budget: the accuracy bisection's whole-model params ({budget}), eps {cfg['bisection']['eps']} of mean label "
        f"accuracy per layer on the validation split; uniform, energy and the gradient budget rule are matched to it "
        f"within ±{100 * cfg['budget_tolerance']:.0f} % (column Δ); the gradient threshold rule (τ = "
        f"{cfg['gradient']['tau']}) sets its own budget. Full-effort CP ({cfg['final_als_iters']} ALS / "
        f"{cfg['final_epc_sweeps']} EPC), BN recalibration on {cfg['bn_recalibration_batches']} batches, then "
        f"{cfg['finetune']['steps']} fine-tuning steps (AdamW lr {cfg['finetune']['lr']}, cosine, same seed) for every row. "
        "Rank search time: gradient = calibration + full-grid score_layers + selection (the threshold rule alone could "
        "stop each layer's grid early, so its time is an upper bound); bisection = its whole search; uniform/energy = "
        "the knob search to the budget.",
        "",
    ]
    body = [main_table(result), "", "mA vs params (fine-tuned mA; first seed):", "", curve_table(result), "",
            "Goals (test mA after fine-tuning):", "", goals_table(result["goals"]), ""]  # fmt: skip
    return "\n".join(header + body)


def plot(result: dict[str, Any], path: Path) -> Path | None:
    """mA (test, fine-tuned: filled; right after the swap: hollow) vs params per policy; None without matplotlib."""
    try:
        import matplotlib  # noqa: PLC0415  (optional: not on every GPU machine)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return None
    from par_lightning.atomic_io import atomic_writer  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors = dict(zip(POLICIES, ("tab:red", "tab:blue", "tab:cyan", "tab:orange", "tab:green"), strict=True))
    for i, s in enumerate(result["seeds"]):
        label = (lambda text: text) if i == 0 else (lambda text: None)  # noqa: E731
        ax.axhline(s["dense"]["final"]["test_mA"], color="k", ls=":", lw=1)
        ax.plot(
            s["dense"]["params"],
            s["dense"]["final"]["test_mA"],
            "*",
            color="k",
            ms=10,
            label=label("uncompressed"),
        )
        for policy in CURVE_POLICIES:
            pts = sorted(s["curve"][policy], key=lambda p: p["params"])
            xs = [p["params"] for p in pts]
            ax.plot(xs, [p["final"]["test_mA"] for p in pts], "-", color=colors[policy], lw=1.2)
            ax.plot(
                xs, [p["after_swap"]["test_mA"] for p in pts], "--", color=colors[policy], lw=0.8, alpha=0.6
            )
        for policy in POLICIES:
            r = s["policies"][policy]
            ax.plot(r["params"], r["final"]["test_mA"], "o", color=colors[policy], label=label(policy))
            ax.plot(r["params"], r["after_swap"]["test_mA"], "o", mfc="none", color=colors[policy])
    ax.set_xscale("log")
    ax.set_xlabel("whole-model parameters")
    ax.set_ylabel("test mA")
    ax.set_title(
        f"compression quality ({result['tag']}): filled/solid = fine-tuned, hollow/dashed = right after the swap",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_writer(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
    return path
