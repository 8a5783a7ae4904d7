"""Smoke tests for the scripts under ``benchmarks/`` (tiny inputs; the real runs are done by hand)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_data_loading_smoke(tmp_path: Path) -> None:
    out = tmp_path / "data_loading.json"
    main = _load("data_loading").main
    argv = ["--num-images", "16", "--sizes", "256x128", "--workers", "0", "--synth-workers", "1",
            "--root", str(tmp_path / "pa100k"), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert {"machine", "runs", "summary", "note", "pipeline", "num_images"} <= result.keys()
    assert {"cpu_count", "platform", "python", "torch", "torchvision", "pillow", "date",
            "load_avg_1m_at_start"} <= result["machine"].keys()  # fmt: skip
    (run,) = result["runs"]
    assert run["size"] == "256x128" and run["num_workers"] == 0 and run["images"] == 16
    assert run["images_per_s"] > 0 and run["per_worker_images_per_s"] > 0 and run["workers_for_target"] >= 1
    assert result["summary"]["256x128"]["workers_for_target"] == run["workers_for_target"]


def test_alm_speed_smoke(tmp_path: Path) -> None:
    out = tmp_path / "alm_speed.json"
    argv = ["--num-attributes", "2", "--size", "64", "32", "--runs1", "1", "--runs32", "1", "--heads", "loop", "batched",
            "--out", str(out)]  # fmt: skip
    assert _load("alm_speed").main(argv) == 0
    result = json.loads(out.read_text())
    parts = result["parts"]["2"]
    assert parts["total"]["params"] == 10_770_720 + 125_040 * 2  # BN-Inception ALM parameter parity
    assert [r["heads"] for r in result["cpu_latency"]] == ["loop", "batched"]
    assert all(r["bs1_ms"] > 0 and r["bs32_ms"] > 0 for r in result["cpu_latency"])


def test_compression_search_smoke(tmp_path: Path) -> None:
    out = tmp_path / "search.json"
    argv = ["--arch", "alm_tiny", "--backbone", "test_resnet", "--include", "pyramid.*", "--batches", "2",
            "--batch-size", "2", "--size", "64", "32", "--threads", "1", "--out", str(out)]  # fmt: skip
    assert _load("compression_search").main(argv) == 0
    result = json.loads(out.read_text())
    assert {row["layer"] for row in result["layers"]} <= {
        "pyramid.laterals.0",
        "pyramid.laterals.1",
        "pyramid.laterals.2",
    }
    assert result["total"]["candidates_scored"] >= len(result["layers"]) >= 1
    assert all(row["seconds"] > 0 for row in result["layers"])
    assert out.with_suffix(".plan.json").is_file()
