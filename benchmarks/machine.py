"""The machine description every benchmark result carries, so numbers stay comparable across runs."""

from __future__ import annotations

import datetime as dt
import os
import platform
from typing import Any

import torch


def describe() -> dict[str, Any]:
    """Platform, CPU, versions, torch threads, date, 1-minute load (call it before the work) and the GPU if any."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_avg_1m_at_start": os.getloadavg()[0],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info
