"""Which top-level packages importing some modules pulls in, checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys


def imported_packages(modules: list[str], watched: tuple[str, ...]) -> list[str]:
    """The modules of ``watched`` packages that ``import <modules>`` loads in a new Python process."""
    code = (
        f"import json, sys; import {', '.join(modules)}; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {watched!r})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)
