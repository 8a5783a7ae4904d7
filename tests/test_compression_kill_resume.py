"""A fit SIGKILLed after the swap resumes from ``last.ckpt`` compressed, without compressing again.

SIGKILL gives the process no chance to save anything: what survives is the last checkpoint written
after the swap, and the restarted process (same config, ``--ckpt_path last``) must rebuild the
factorized layers from the plan stored in it before the weights load.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.scripts.compress_fit import (
    FAST_COMPRESSION,
    compress_config,
    kill_group,
    load_dump,
    run_fit,
    start_fit,
)

pytestmark = pytest.mark.usefixtures("one_thread")

MAX_EPOCHS = 40  # never reached: the first run is killed a few epochs after the swap at epoch 1
DENSE_TYPES = {"Conv2d", "Linear"}


def _compressed_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it exists, is complete and holds a compression plan."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, RuntimeError, EOFError, OSError):  # absent, or being written
        return None
    return ckpt if "compression_plan" in ckpt else None


def _kill_after_compressed_checkpoint(config: Path, last: Path, timeout: float) -> None:
    proc = start_fit(config)
    deadline = time.monotonic() + timeout
    try:
        while _compressed_checkpoint(last) is None:
            if proc.poll() is not None:
                pytest.fail(f"the fit ended (rc {proc.returncode}) before the kill:\n{proc.communicate()[0]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no checkpoint with a compression plan after {timeout} s")
            time.sleep(0.05)
    finally:
        kill_group(proc)
        out, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"rc {proc.returncode}, expected a SIGKILL:\n{out[-4000:]}"


def test_killed_after_swap_resumes_compressed(tmp_path: Path) -> None:
    config = compress_config(
        tmp_path, max_epochs=MAX_EPOCHS, compression={"compress_at_epoch": 1}, epoch_sleep=0.2
    )
    data = yaml.safe_load(config.read_text())
    (checkpoint,) = [c for c in data["trainer"]["callbacks"] if c["class_path"].endswith("ModelCheckpoint")]
    # no monitor: Lightning 2.6 rewrites last.ckpt only when a top-k file is saved, here every epoch
    checkpoint["init_args"] = {"dirpath": str(tmp_path / "ckpt"), "filename": "latest", "save_last": True}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    last = tmp_path / "ckpt" / "last.ckpt"
    _kill_after_compressed_checkpoint(config, last, timeout=120)

    killed = _compressed_checkpoint(last)  # what survived the kill
    assert killed is not None
    plan = killed["compression_plan"]
    assert plan["layers"] and set(plan["layers"]) <= set(FAST_COMPRESSION["include"]), plan
    assert len(plan["meta"]["stages"]) == 1
    assert killed["epoch"] < MAX_EPOCHS - 1, "the first run finished before it was killed"
    plan_file = tmp_path / "ckpt" / "compression_plan_stage1.json"
    plan_file_mtime = plan_file.stat().st_mtime_ns
    shutil.rmtree(tmp_path / "dump")  # the restart's own records only

    resume_epochs = killed["epoch"] + 3
    rc, out = run_fit(config, "--ckpt_path", "last", f"--trainer.max_epochs={resume_epochs}", timeout=180)
    assert rc == 0, f"the restarted fit failed (rc {rc}):\n{out[-8000:]}"

    # it starts from the killed checkpoint's weights, in the compressed architecture
    start = load_dump(tmp_path, "start")
    assert start["epoch"] > killed["epoch"]
    assert start["global_step"] == killed["global_step"]
    assert start["plan"] == plan
    for name in plan["layers"]:
        assert start["layer_types"][name] not in DENSE_TYPES, (name, start["layer_types"][name])
    saved = {k.removeprefix("model."): v for k, v in killed["state_dict"].items() if k.startswith("model.")}
    assert start["state"].keys() == saved.keys()
    assert all(torch.equal(start["state"][k], saved[k]) for k in saved)
    assert start["optimizer_matches_model"]

    # ... and trains on without a second search or swap
    end = load_dump(tmp_path, "end")
    assert end["plan"] == plan
    assert end["epoch"] == resume_epochs and end["global_step"] > killed["global_step"]
    assert not list((tmp_path / "dump").glob("swap*")), "the restarted fit compressed again"
    assert "factorized in" not in out
    assert plan_file.stat().st_mtime_ns == plan_file_mtime
    assert not (tmp_path / "ckpt" / "compression_plan_stage2.json").exists()
    final = _compressed_checkpoint(last)
    assert final is not None and final["compression_plan"] == plan
    assert final["epoch"] == resume_epochs - 1
