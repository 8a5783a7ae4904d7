"""``experiments/cluster/fit.sbatch``: its node/task numbers and the trainer's arguments always agree.

The template is run by bash with a stand-in ``srun`` that records the command line it was given, under
the variables Slurm sets for a 2-node x 4-task allocation. That command line is then parsed by the
project's CLI inside the environment ``srun`` gives one task (rank 5): Lightning must detect SLURM, accept
the numbers (it refuses ``devices`` != tasks per node and ``num_nodes`` != nodes) and give every rank
its share of the data (the global batch is ``batch_size x nodes x tasks per node x accumulate_grad_batches``).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lightning.fabric.plugins.environments import SLURMEnvironment
from torch.utils.data import DistributedSampler

from par_lightning.cli import PARCLI, build_cli
from tests.cli_helpers import tiny_config

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "experiments" / "cluster" / "fit.sbatch"


def sbatch_directives() -> dict[str, str]:
    """``#SBATCH --key=value`` lines of the template (flags without a value map to ``""``)."""
    found = re.findall(r"^#SBATCH --([\w-]+)(?:=(\S+))?", TEMPLATE.read_text(), flags=re.M)
    return dict(found)


def template_command(tmp_path: Path, nodes: int, tasks_per_node: str, *extra: str) -> list[str]:
    """The command the template hands to ``srun`` inside an allocation of ``nodes`` x ``tasks_per_node``."""
    record = tmp_path / "srun_argv.json"
    fake_srun = tmp_path / "srun"
    fake_srun.write_text(
        f'#!{sys.executable}\nimport json, sys\njson.dump(sys.argv[1:], open("{record}", "w"))\n'
    )
    fake_srun.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env |= {
        "SRUN": str(fake_srun),
        "ACCELERATOR": "cpu",
        "SLURM_JOB_ID": "77",
        "SLURM_JOB_NUM_NODES": str(nodes),
        "SLURM_NNODES": str(nodes),
        "SLURM_NTASKS_PER_NODE": tasks_per_node,
    }
    done = subprocess.run(
        ["bash", str(TEMPLATE), "experiments/x.yaml", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(record.read_text())


def task_environment(monkeypatch: pytest.MonkeyPatch, nodes: int, tasks_per_node: int, rank: int) -> None:
    """The variables ``srun`` sets for global rank ``rank`` of a ``nodes`` x ``tasks_per_node`` job step."""
    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(key)
    values = {
        "SLURM_JOB_ID": "77",
        "SLURM_JOB_NAME": "par-lightning",
        "SLURM_NNODES": nodes,
        "SLURM_JOB_NUM_NODES": nodes,
        "SLURM_NTASKS": nodes * tasks_per_node,
        "SLURM_NTASKS_PER_NODE": tasks_per_node,
        "SLURM_PROCID": rank,
        "SLURM_LOCALID": rank % tasks_per_node,
        "SLURM_NODEID": rank // tasks_per_node,
        "SLURM_NODELIST": "node[01-02]",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, str(value))


def parse_as_task(argv: list[str], config: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the CLI on ``argv`` (``lightning fit ...``) up to the point where ``fit`` would start."""
    assert argv[:2] == ["lightning", "fit"], argv
    args = [str(config) if a == "experiments/x.yaml" else a for a in argv[2:]]
    monkeypatch.setattr(PARCLI, "fit", lambda self, **kwargs: None, raising=False)  # no training
    return build_cli(["fit", *args])


def validate_at_launch(trainer: Any) -> None:
    """What Lightning's launcher checks when ``fit`` starts under SLURM (it raises ``ValueError``)."""
    trainer.strategy.cluster_environment.validate_settings(
        num_devices=trainer.num_devices, num_nodes=trainer.num_nodes
    )


def test_template_directives_are_consistent() -> None:
    d = sbatch_directives()
    assert {"requeue", "signal", "open-mode", "nodes", "ntasks-per-node", "gres"} <= d.keys()
    assert d["signal"] == "SIGUSR1@90" and d["open-mode"] == "append" and d["requeue"] == ""
    gpus = int(d["gres"].split(":")[-1])
    assert int(d["ntasks-per-node"]) == gpus, "one task per GPU"


def test_trainer_arguments_follow_the_allocation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = template_command(tmp_path, 2, "4(x2)", "--trainer.max_epochs", "3")
    flags = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert flags["--trainer.num_nodes"] == "2" and flags["--trainer.devices"] == "4"
    assert flags["--ckpt_path"] == "auto" and argv[-2:] == ["--trainer.max_epochs", "3"]

    config = tiny_config(tmp_path)
    task_environment(monkeypatch, nodes=2, tasks_per_node=4, rank=5)
    cli = parse_as_task(argv, config, monkeypatch)
    trainer = cli.trainer
    assert isinstance(trainer.strategy.cluster_environment, SLURMEnvironment)
    assert (trainer.num_nodes, trainer.num_devices, trainer.world_size) == (2, 4, 8)
    assert (trainer.global_rank, trainer.local_rank, trainer.node_rank) == (5, 1, 1)
    assert trainer.max_epochs == 3
    validate_at_launch(trainer)

    # each of the 8 ranks reads 1/8 of the training set: global batch = 8 x batch_size
    sampler = trainer.strategy.distributed_sampler_kwargs
    assert sampler == {"num_replicas": 8, "rank": 5}
    train_size = len(cli.datamodule.annotation.labels["train"])
    shards = [
        list(DistributedSampler(range(train_size), num_replicas=8, rank=r, shuffle=False)) for r in range(8)
    ]
    assert all(len(s) == math.ceil(train_size / 8) for s in shards)
    assert set().union(*shards) == set(range(train_size))
    batch = cli.datamodule.hparams["batch_size"]
    global_batch = batch * trainer.world_size * trainer.accumulate_grad_batches  # the README's formula
    assert global_batch == 8 * 8


def test_lightning_refuses_devices_that_disagree_with_the_allocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the template derives the numbers: a hand-written ``devices: 4`` on 2 tasks per node fails."""
    config = tiny_config(tmp_path)
    task_environment(monkeypatch, nodes=1, tasks_per_node=2, rank=0)
    argv = ["lightning", "fit", "--config", "experiments/x.yaml", "--trainer.accelerator", "cpu",
            "--trainer.num_nodes", "1", "--trainer.devices", "4", "--trainer.strategy", "ddp"]  # fmt: skip
    with pytest.raises(ValueError, match="devices=4"):
        validate_at_launch(parse_as_task(argv, config, monkeypatch).trainer)
    # the template, given that allocation, asks for 2 devices, and Lightning accepts it
    argv = template_command(tmp_path, 1, "2")
    cli = parse_as_task(argv, config, monkeypatch)
    assert (cli.trainer.num_devices, cli.trainer.world_size) == (2, 2)
    validate_at_launch(cli.trainer)


def test_readme_guide_matches_the_template() -> None:
    """The README's cluster guide quotes the template's defaults, signal and resume flag as they are."""
    readme = (REPO / "README.md").read_text()
    guide = readme.split("## Cluster jobs (SLURM)", 1)[1].split("\n## ", 1)[0]
    assert "sbatch experiments/cluster/fit.sbatch" in guide
    d = sbatch_directives()
    quoted = re.search(r"the template's defaults: ([^)]*)\)", guide)
    assert quoted, "the guide states the template's defaults"
    for key, value in re.findall(r"--([\w-]+)=(\S+)", quoted.group(1)):
        assert d[key] == value, (key, value, d[key])
    assert f"--signal={d['signal']}" in guide and "--requeue --open-mode=append" in guide
    template = TEMPLATE.read_text()
    for flag in ("--ckpt_path auto", "--trainer.num_nodes", "--trainer.devices"):
        assert flag in template and flag.split()[0] in guide, flag
