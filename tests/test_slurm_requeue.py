"""The cluster template on a real (localhost) Slurm: DDP over 2 CPU tasks, compression, requeue, resume.

``tests/slurm/localhost_slurm.sh`` installs and starts a single-node Slurm (root only; the test skips
otherwise). The job runs ``experiments/cluster/fit.sbatch`` unchanged except for the resources a CPU
node has (``--gres``, ``--cpus-per-task``, ``--mem`` on the sbatch command line). After the model was
compressed, ``scancel -s USR1`` plays the wall-time warning: Lightning writes ``hpc_ckpt_1.ckpt`` and
requeues the job, which this test releases at once. The restarted job must resume from that checkpoint
in the compressed architecture, finish with exit code 0, keep the same W&B run id, and not compress again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from tests.scripts.compress_fit import FAST_COMPRESSION, compress_config, load_dump

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "slurm" / "localhost_slurm.sh"
TEMPLATE = REPO / "experiments" / "cluster" / "fit.sbatch"
MAX_EPOCHS = 4
EPOCH_SLEEP = 6.0  # the signal is sent in this pause after an epoch's checkpoint, so hpc_ckpt_1 is the newest
DENSE_TYPES = {"Conv2d", "Linear"}


@pytest.fixture(scope="module")
def slurm() -> Iterator[None]:
    """A running localhost Slurm for this module; its daemons are stopped by PID whatever happens."""
    start = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=300)
    try:
        if start.returncode == 3:
            pytest.skip(f"Slurm cannot be started here: {start.stderr.strip()}")
        assert start.returncode == 0, f"starting Slurm failed:\n{start.stdout}\n{start.stderr}"
        yield
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, text=True, timeout=60)


def job_fields(job_id: str) -> dict[str, str]:
    """``scontrol show job`` as a dict (``JobState``, ``ExitCode``, ``Restarts``, ``Reason`` ...)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True).stdout
    return dict(field.split("=", 1) for field in out.split() if "=" in field)


def wait_for(what: str, check: object, timeout: float, log: Path) -> None:
    """Poll ``check()`` until true; fail with the job's log after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            text = log.read_text() if log.exists() else "(no log)"
            pytest.fail(f"timed out after {timeout} s waiting for {what}; job log:\n{text[-6000:]}")
        time.sleep(0.5)


def job_config(tmp_path: Path) -> Path:
    """The tiny compressing experiment, logged to an offline W&B run, with a per-epoch ``last.ckpt``."""
    config = compress_config(
        tmp_path,
        logger="wandb",
        max_epochs=MAX_EPOCHS,
        compression={"compress_at_epoch": 1},
        epoch_sleep=EPOCH_SLEEP,
    )
    data = yaml.safe_load(config.read_text())
    (checkpoint,) = [c for c in data["trainer"]["callbacks"] if c["class_path"].endswith("ModelCheckpoint")]
    checkpoint["init_args"] = {"dirpath": str(tmp_path / "ckpt"), "filename": "latest", "save_last": True}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def compressed_epoch(path: Path) -> int:
    """The epoch of the checkpoint at ``path`` if it holds a compressed model, else -1 (absent or dense)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, RuntimeError, EOFError, OSError):  # absent, or being replaced
        return -1
    return int(ckpt["epoch"]) if "compression_plan" in ckpt else -1


def submit(config: Path, log: Path) -> str:
    """``sbatch`` the template with 2 CPU tasks on the one node; returns the job id."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # this venv's `lightning`
        "PYTHONPATH": str(REPO),  # the test's StateDump callback
        "ACCELERATOR": "cpu",
        "WANDB_MODE": "offline",
    }
    command = [
        "sbatch", "--parsable", "--nodes=1", "--ntasks-per-node=2", "--gres=none", "--cpus-per-task=1",
        "--mem=2000", "--time=00:15:00", f"--output={log}", f"--chdir={REPO}", "--export=ALL",
        str(TEMPLATE), str(config),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, f"sbatch failed: {result.stderr}"
    return result.stdout.strip().split(";")[0]


def test_requeue_after_compression_resumes_compressed(slurm: None, tmp_path: Path) -> None:
    config = job_config(tmp_path)
    log = tmp_path / "job.out"
    job = submit(config, log)
    try:
        # 1. run until a compressed epoch was checkpointed, then send the wall-time signal (in the epoch-end pause)
        last = tmp_path / "ckpt" / "last.ckpt"
        wait_for("a compressed checkpoint", lambda: compressed_epoch(last) >= 1, 240, log)
        swapped = load_dump(tmp_path, "swap1")
        subprocess.run(["scancel", "-s", "USR1", job], check=True, timeout=30)

        # 2. Lightning saved the hpc checkpoint and requeued the job (held until its BeginTime): release it
        wait_for("the requeue", lambda: job_fields(job).get("Restarts") == "1", 120, log)
        wait_for("PENDING", lambda: job_fields(job).get("JobState") == "PENDING", 120, log)
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, timeout=30)
        wait_for(
            "the end",
            lambda: job_fields(job).get("JobState") in {"COMPLETED", "FAILED", "CANCELLED"},
            300,
            log,
        )
    finally:
        subprocess.run(["scancel", job], capture_output=True, timeout=30)
    text = log.read_text()
    fields = job_fields(job)
    assert fields["JobState"] == "COMPLETED" and fields["ExitCode"] == "0:0", f"{fields}\n{text[-6000:]}"

    # the first run: SLURM detected, DDP over 2 gloo ranks, the signal handled
    assert "SLURM auto-requeueing enabled" in text
    assert f"Handling auto-requeue signal: {10}" in text, text[-6000:]  # SIGUSR1
    hpc = tmp_path / "run" / "hpc_ckpt_1.ckpt"
    saved = torch.load(hpc, map_location="cpu", weights_only=True)
    plan = saved["compression_plan"]
    assert plan == swapped["plan"] and plan["layers"], "the hpc checkpoint holds the compressed model"
    assert set(plan["layers"]) <= set(FAST_COMPRESSION["include"])

    # the restarted job: same job id, restart count 1, resumed from the hpc checkpoint (--ckpt_path auto)
    assert re.search(rf"job {job} restart 1: 1 node\(s\) x 2 task\(s\)", text), text[-6000:]
    assert f"--ckpt_path auto: {hpc}" in text
    assert f"Restoring states from the checkpoint path at {hpc}" in text
    start = [load_dump(tmp_path, "start", rank) for rank in (0, 1)]  # overwritten by the restarted run
    for record in start:
        assert record["world_size"] == 2
        assert record["plan"] == plan, "resumed in the compressed architecture"
        for name in plan["layers"]:
            assert record["layer_types"][name] not in DENSE_TYPES, (name, record["layer_types"][name])
        weights = {
            k.removeprefix("model."): v for k, v in saved["state_dict"].items() if k.startswith("model.")
        }
        assert record["state"].keys() == weights.keys()
        assert all(torch.equal(record["state"][k], weights[k]) for k in weights)
        assert record["optimizer_matches_model"] and record["ddp_wrapped"] and record["ddp_params_match"]

    # ... and trained to the end without compressing again
    end = load_dump(tmp_path, "end")
    assert end["plan"] == plan and end["epoch"] == MAX_EPOCHS
    assert not (tmp_path / "ckpt" / "compression_plan_stage2.json").exists()
    assert text.count("factorized in") == 1, "exactly one compression over both runs"
    final = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=True)
    assert final["compression_plan"] == plan and final["epoch"] == MAX_EPOCHS - 1

    # both runs logged to the same W&B run, named after the job
    runs = sorted((tmp_path / "wandb_logs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2, runs
    assert all(r.name.endswith(f"-slurm-localhost-{job}") for r in runs), runs
