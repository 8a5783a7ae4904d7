"""A WandbLogger that is offline unless the user has configured W&B: never a login prompt or a hang."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger

_OFFLINE_MODES = {"offline", "dryrun", "disabled"}
_ONLINE_MODES = {"online", "run"}


def wandb_configured(environ: dict[str, str] | None = None, netrc_path: str | None = None) -> bool:
    """Whether W&B may go online: ``WANDB_MODE=online``, an API key in the environment, or a login.

    ``WANDB_MODE=offline|disabled`` always wins. A login is an entry for the W&B host in ``~/.netrc``
    (what ``wandb login`` writes).
    """
    env = os.environ if environ is None else environ
    mode = env.get("WANDB_MODE", "").strip().lower()
    if mode in _OFFLINE_MODES:
        return False
    if mode in _ONLINE_MODES or env.get("WANDB_API_KEY"):
        return True
    host = env.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0].split(":")[0]
    path = Path(netrc_path or env.get("NETRC") or Path.home() / ".netrc")
    try:
        return netrc.netrc(str(path)).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def slurm_run_id(environ: dict[str, str] | None = None) -> str | None:
    """A W&B run id tied to the SLURM job (``slurm-<cluster>-<job id>``), ``None`` outside a batch job.

    A requeued job keeps its job id, so the restarted fit continues the same W&B run instead of opening a
    new one. Array tasks get ``<array job>_<task>``; interactive allocations (job name ``bash`` or
    ``interactive``, Lightning's own rule) get no id, since several fits may run inside one of them.
    """
    env = os.environ if environ is None else environ
    if env.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return None
    job = env.get("SLURM_JOB_ID")
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        job = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    if not job:
        return None
    cluster = env.get("SLURM_CLUSTER_NAME")
    return f"slurm-{cluster}-{job}" if cluster else f"slurm-{job}"


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger`` with ``offline`` decided for the user when left unset.

    Args:
        offline: ``None`` (default) = online only if :func:`wandb_configured`; ``True``/``False`` force it.
        version: the W&B run id. Unset inside a SLURM batch job it is :func:`slurm_run_id`, so a requeued
            job resumes its run (Lightning opens runs with ``resume="allow"``).
        Other arguments are Lightning's ``WandbLogger`` ones; extra keywords go to ``wandb.init``.
    """

    def __init__(
        self,
        name: str | None = None,
        save_dir: str = ".",
        version: str | None = None,
        offline: bool | None = None,
        project: str = "par-lightning",
        log_model: Literal["all"] | bool = False,
        prefix: str = "",
        group: str | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if offline is None:
            offline = not wandb_configured()
        if version is None and kwargs.get("id") is None:
            version = slurm_run_id()
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        super().__init__(
            name=name,
            save_dir=save_dir,
            version=version,
            offline=offline,
            project=project,
            log_model=log_model,
            prefix=prefix,
            group=group,
            tags=tags,
            **kwargs,
        )
