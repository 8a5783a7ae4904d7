"""End-to-end run of the compression quality benchmark on a tiny PA-100K-format set (``main`` in a tmp dir).

The equal-budget claim is checked independently of the script's own arithmetic: every saved plan is
applied (zero factors) to the saved dense checkpoint's network and its parameters are counted.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from par_lightning.compression import CompressionPlan, apply_plan
from par_lightning.module import PARModule
from tests.helpers_pa100k import write_pa100k

pytestmark = pytest.mark.usefixtures("one_thread")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "compression_quality.py"
POLICIES = {"accuracy_bisection", "gradient_budget", "gradient_threshold", "uniform_ratio", "energy"}
MATCHED = ("gradient_budget", "uniform_ratio", "energy")
TOLERANCE = 0.05


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_compression_quality", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(tmp_path: Path) -> Path:
    data = write_pa100k(tmp_path / "pa100k", sizes=(32, 16, 16))
    cfg = {
        "tag": "tiny", "threads": 1, "seeds": [0], "run_dir": str(tmp_path / "runs"),
        "data": {"root": str(data.root), "height": 32, "width": 16, "pad": 0, "batch_size": 8,
                 "eval_batch_size": 16, "num_workers": 0},
        "model": {"arch": "tiny", "backbone": "test_resnet", "model_kwargs": {}, "channels_last": False},
        "train": {"epochs": 1}, "finetune": {"steps": 2},
        "include": ["backbone.layer4.*"],
        "bisection": {"als_iters": 3, "epc_sweeps": 1, "min_rank": 40},  # an untrained net would go to rank 2
        "gradient": {"calibration_batches": 2, "calibration_batch_size": 4, "grid_steps": 9, "als_iters": 3, "epc_sweeps": 1,
                     "min_ref_score": 0.0},
        "final_als_iters": 3, "final_epc_sweeps": 1, "bn_recalibration_batches": 2,
        "budget_tolerance": TOLERANCE, "curve_ratios": [1.5],
    }  # fmt: skip
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_end_to_end_equal_budget_tables_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _load().main(["--config", str(_config(tmp_path)), "--out-dir", str(out)]) == 0
    result = json.loads((out / "compression_quality_tiny.json").read_text())
    assert {
        "tag",
        "command",
        "config",
        "machine",
        "commit",
        "wall_seconds",
        "seeds",
        "goals",
    } <= result.keys()
    assert result["config"]["budget_tolerance"] == TOLERANCE and result["machine"]["cpu_count"] >= 1
    (seed,) = result["seeds"]
    assert set(seed["policies"]) == POLICIES
    assert seed["budget_params"] == seed["policies"]["accuracy_bisection"]["params"]
    for name, rec in seed["policies"].items():
        for stage in ("after_swap", "final"):
            assert {"val_mA", "val_f1", "test_mA", "test_f1"} <= rec[stage].keys(), (name, stage)
            assert all(0.0 <= rec[stage][k] <= 1.0 for k in ("val_mA", "test_mA", "test_f1")), (name, stage)
        assert rec["search_seconds"] > 0 and rec["macs"] > 0
        assert rec["params_applied"] == rec["params"], name  # the applied model has the counted params
    assert {"gradient_budget", "uniform_ratio"} == set(seed["curve"]) and all(
        len(points) >= 2 for points in seed["curve"].values()
    )
    assert [g["passed"] in (True, False) for g in result["goals"]] == [True, True, True]

    # Equal budget, recounted: each saved plan applied to the dense checkpoint's network.
    plans = json.loads((out / "compression_quality_tiny_plans.json").read_text())["seed0"]
    dense = PARModule.load_from_checkpoint(tmp_path / "runs" / "tiny" / "dense_seed0.ckpt").model
    assert sum(p.numel() for p in dense.parameters()) == seed["dense"]["params"]

    def count(plan: dict) -> int:
        module = PARModule.load_from_checkpoint(tmp_path / "runs" / "tiny" / "dense_seed0.ckpt").model
        apply_plan(module, CompressionPlan.from_dict(plan), decompose=False)
        return sum(p.numel() for p in module.parameters())

    budget = count(plans["accuracy_bisection"])
    assert budget == seed["budget_params"] < seed["dense"]["params"]
    for name in MATCHED:
        params = count(plans[name])
        assert params == seed["policies"][name]["params"], name
        assert abs(params - budget) <= TOLERANCE * budget, (name, params, budget)
        assert seed["policies"][name]["matched"] is True
    assert count(plans["gradient_threshold"]) == seed["policies"]["gradient_threshold"]["params"]

    text = (out / "compression_quality_tiny.md").read_text()
    assert "| policy | params |" in text and "Goals" in text and ("PASS" in text or "FAIL" in text)
    assert (out / "compression_quality_tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The report rebuilds from the saved JSON alone, to the same tables.
    (out / "compression_quality_tiny.md").unlink()
    assert (
        _load().main(["--from-json", str(out / "compression_quality_tiny.json"), "--out-dir", str(out)]) == 0
    )
    assert (out / "compression_quality_tiny.md").read_text() == text

    # Seeds run in separate processes merge into one report with the spread.
    other = json.loads((out / "compression_quality_tiny.json").read_text())
    other["seeds"][0]["seed"] = 1
    other["seeds"][0]["policies"]["gradient_budget"]["final"]["test_mA"] = 0.25  # a visible spread
    (tmp_path / "seed1.json").write_text(json.dumps(other))
    first = out / "compression_quality_tiny.json"
    assert (
        _load().main(
            ["--merge", str(first), str(tmp_path / "seed1.json"), "--tag", "both", "--out-dir", str(out)]
        )
        == 0
    )
    merged = json.loads((out / "compression_quality_both.json").read_text())
    assert [s["seed"] for s in merged["seeds"]] == [0, 1] and merged["config"]["seeds"] == [0, 1]
    assert "0.2500" in (out / "compression_quality_both.md").read_text()  # the min of the spread
    with pytest.raises(SystemExit, match="repeat"):
        _load().main(["--merge", str(first), str(first), "--tag", "x", "--out-dir", str(out)])
    other["config"]["budget_tolerance"] = 0.5
    (tmp_path / "seed1.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="other settings"):
        _load().main(
            ["--merge", str(first), str(tmp_path / "seed1.json"), "--tag", "x", "--out-dir", str(out)]
        )


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"finetune": {"stepz": 3}}))
    with pytest.raises(ValueError, match=r"stepz.*finetune"):
        _load().main(["--config", str(path)])
