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


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger`` with ``offline`` decided for the user when left unset.

    Args:
        offline: ``None`` (default) = online only if :func:`wandb_configured`; ``True``/``False`` force it.
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
