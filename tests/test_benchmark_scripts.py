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
