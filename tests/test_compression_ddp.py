"""Compression under DDP: 2 CPU processes (gloo) must end up with one plan and the same weights.

Rank 0 alone searches and decomposes; if the plan or the factors were not broadcast, or DDP were not
re-wrapped around the new layers, the ranks' weights would drift apart (the new factors' gradients
never all-reduced) or DDP would stop with "Expected to have finished reduction" on the stale reducer.
``find_unused_parameters`` stays False on purpose: the dense layers must be gone, not merely unused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.scripts.compress_fit import FAST_COMPRESSION, compress_config, load_dump, run_fit

pytestmark = pytest.mark.usefixtures("one_thread")

DENSE_TYPES = {"Conv2d", "Linear"}
DDP_ERRORS = (
    "Expected to have finished reduction",
    "were not used in producing the loss",
    "unused parameters",
    "did not receive grad",
)


def _differing(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys: list[str]) -> list[str]:
    return [k for k in keys if not torch.equal(a[k], b[k])]


def _both_ranks(tmp_path: Path, tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return load_dump(tmp_path, tag, rank=0), load_dump(tmp_path, tag, rank=1)


def test_two_process_ddp_compression_keeps_ranks_identical(tmp_path: Path) -> None:
    config = compress_config(tmp_path, devices=2, max_epochs=2, compression={"compress_at_epoch": 1})
    data = yaml.safe_load(config.read_text())
    data["data"]["init_args"]["batch_size"] = 4  # 3 optimizer steps per rank and epoch
    assert "find_unused_parameters" not in str(data["trainer"])
    config.write_text(yaml.safe_dump(data, sort_keys=False))

    rc, out = run_fit(config, timeout=240)
    assert rc == 0, f"DDP fit failed (rc {rc}):\n{out[-8000:]}"
    for error in DDP_ERRORS:
        assert error not in out, f"DDP complained ({error!r}):\n{out[-8000:]}"

    # right after the swap: one plan (non-empty), the same factorized modules, bit-identical weights
    swap0, swap1 = _both_ranks(tmp_path, "swap1")
    start = load_dump(tmp_path, "start")
    assert swap0["world_size"] == 2 and swap1["rank"] == 1
    assert swap0["epoch"] == 1 and swap0["plan"] is not None
    assert swap0["plan"] == swap1["plan"]
    layers = swap0["plan"]["layers"]
    assert layers and set(layers) <= set(FAST_COMPRESSION["include"]), layers
    for name in layers:
        assert swap0["layer_types"][name] not in DENSE_TYPES, (name, swap0["layer_types"][name])
    assert swap0["layer_types"] == swap1["layer_types"]
    assert swap0["state"].keys() == swap1["state"].keys()
    assert not _differing(swap0["state"], swap1["state"], list(swap0["state"]))
    assert f"{next(iter(layers))}.weight" in start["state"]  # the dense weight existed before ...
    assert f"{next(iter(layers))}.weight" not in swap0["state"]  # ... and is gone after the swap
    for rec in (swap0, swap1):
        assert rec["ddp_wrapped"] and rec["optimizer_matches_model"], rec["rank"]
        assert rec["ddp_params_match"] in (True, None), "DDP's reducer still holds the dense parameters"

    # one optimizer step later: the parameters moved, identically on both ranks (BN running statistics
    # are per-rank between forwards: DDP broadcasts rank 0's buffers at the next forward)
    step0, step1 = _both_ranks(tmp_path, "step_after_swap")
    params = step0["param_names"]
    assert step0["global_step"] == swap0["global_step"] + 1
    assert not _differing(step0["state"], step1["state"], params)
    moved = _differing(swap0["state"], step0["state"], params)
    assert any(k.startswith(tuple(layers)) for k in moved), "the new factors did not train"

    # end of training: still one plan, identical weights and buffers, trained further
    end0, end1 = _both_ranks(tmp_path, "end")
    assert end0["plan"] == end1["plan"] == swap0["plan"]
    assert end0["global_step"] == end1["global_step"] >= swap0["global_step"] + 3
    assert not _differing(end0["state"], end1["state"], list(end0["state"]))
    assert _differing(step0["state"], end0["state"], params)
    assert end0["optimizer_matches_model"] and end1["optimizer_matches_model"]
