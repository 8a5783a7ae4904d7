"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny convs and small decompositions run faster single-threaded, and far more predictably on a busy machine.

    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``; the previous thread count is restored.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
