"""``benchmarks/latency.py`` on a tiny model: the results file's structure, and statistics re-derived from its samples."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch

from par_lightning import PARModule
from par_lightning.compression import CompressionPlan, LayerPlan

pytestmark = pytest.mark.usefixtures("one_thread")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "latency.py"
PLAN = CompressionPlan(
    {"backbone.layer4.0.conv2": LayerPlan("cp3", 4), "backbone.layer3.0.conv3": LayerPlan("svd", 8)}
)


def _main() -> Any:
    spec = importlib.util.spec_from_file_location("benchmarks_latency", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _check(result: dict[str, Any], batches: list[int], runs: list[int], runtimes: list[str]) -> None:
    keys = {"machine", "commit", "command", "device", "source", "input", "costs", "latency", "best_vs_best"}
    assert keys | {"load_avg_1m_at_end"} <= set(result)
    assert {"cpu_count", "torch", "date", "load_avg_1m_at_start"} <= set(result["machine"])
    assert result["machine"]["torch_threads"] == 1
    full, comp = result["costs"]["full"], result["costs"]["compressed"]
    assert comp["params"] < full["params"] and comp["macs"] < full["macs"]
    rows = result["latency"]
    assert [(r["batch"], r["runtime"]) for r in rows] == [(b, rt) for b in batches for rt in runtimes]
    for row in rows:
        n = runs[batches.index(row["batch"])]
        for model in ("full", "compressed"):
            stats = row[model]
            samples = stats["samples_ms"]
            assert len(samples) == n and all(s > 0 for s in samples)
            assert stats["median_ms"] == pytest.approx(float(np.median(samples)), rel=1e-12)
            assert stats["p10_ms"] <= stats["median_ms"] <= stats["p90_ms"]
            assert min(samples) <= stats["p10_ms"] and stats["p90_ms"] <= max(samples)
        assert row["speedup"] == pytest.approx(row["full"]["median_ms"] / row["compressed"]["median_ms"])
        if row["runtime"] == "onnxruntime":
            assert row["onnx_max_abs_diff"] < 1e-4  # the timed ONNX graphs compute the eager models' logits
    for best in result["best_vs_best"]:
        mine = [r for r in rows if r["batch"] == best["batch"]]
        for model in ("full", "compressed"):
            fastest = mine[int(np.argmin([r[model]["median_ms"] for r in mine]))]
            assert best[f"{model}_runtime"] == fastest["runtime"]
            assert best[f"{model}_median_ms"] == fastest[model]["median_ms"]
        assert best["speedup"] == pytest.approx(best["full_median_ms"] / best["compressed_median_ms"])
    assert [b["batch"] for b in result["best_vs_best"]] == sorted(batches)


def test_plan_mode_writes_medians_of_its_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.json"
    PLAN.save(plan)
    out = tmp_path / "latency.json"
    argv = ["--plan", str(plan), "--arch", "tiny", "--backbone", "test_resnet", "--num-attributes", "3",
            "--size", "32", "16", "--threads", "1", "--batch-sizes", "1", "2", "--runs", "3", "2",
            "--warmup", "1", "--out", str(out)]  # fmt: skip
    assert _main()(argv) == 0
    result = json.loads(out.read_text())
    _check(result, [1, 2], [3, 2], ["eager", "channels_last", "onnxruntime"])
    assert result["input"] == [32, 16] and result["command"].endswith(str(out))
    printed = capsys.readouterr().out
    assert "best vs best, batch 1" in printed and f"wrote {out}" in printed


def test_compressed_checkpoint_is_compared_with_its_dense_architecture(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = PARModule(arch="tiny", backbone="test_resnet", num_attributes=3)
    module.apply_compression(PLAN, decompose=False)
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.strategy.connect(module)
    ckpt = tmp_path / "c.ckpt"
    trainer.save_checkpoint(ckpt)
    out = tmp_path / "latency.json"
    argv = ["--checkpoint", str(ckpt), "--size", "32", "16", "--threads", "1", "--batch-sizes", "2", "--runs", "2",
            "--warmup", "0", "--runtimes", "eager", "--out", str(out)]  # fmt: skip
    assert _main()(argv) == 0
    result = json.loads(out.read_text())
    _check(result, [2], [2], ["eager"])
    dense = sum(
        p.numel() for p in PARModule(arch="tiny", backbone="test_resnet", num_attributes=3).parameters()
    )
    assert result["costs"]["full"]["params"] == dense
    assert result["costs"]["compressed"]["params"] == sum(p.numel() for p in module.parameters())
