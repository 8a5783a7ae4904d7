"""Shared machinery of the synthetic dataset writers (PA-100K, PETA, RAP v1/v2).

* :func:`write_atomically`: build a dataset in a sibling temp folder and rename it into place, under a
  sibling lock file, so that several processes (e.g. DDP ranks) asking for the same root generate it
  only once and nobody ever sees a half-written set.
* :func:`render_images`: render image ``i`` from ``default_rng([seed, i])`` (PA-100K labels, then the
  figure) in a fork pool; the output depends only on ``(seed, i)``, whatever ``workers`` is.
* :func:`savemat_fixed_header`: ``scipy.io.savemat`` with a fixed header text instead of the creation
  date, so files are byte-identical per seed.
"""

from __future__ import annotations

import fcntl
import io
import logging
import multiprocessing as mp
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from data_modules.attributes import PA100K_ATTRIBUTES
from data_modules.synthetic.labels import sample_pa100k_labels
from data_modules.synthetic.render import render_pedestrian

__all__ = ["render_images", "savemat_fixed_header", "write_atomically"]

logger = logging.getLogger(__name__)

JPEG_QUALITY = 90
_CHUNK = 64
_FORMATS = ("JPEG", "PNG")


def _render_chunk(
    bounds: tuple[int, int], names: Sequence[str], seed: int, difficulty: float, image_dir: str, fmt: str
) -> np.ndarray:
    """Render and save images ``[start, stop)``; each depends only on (seed, index), whoever runs it."""
    start, stop = bounds
    rows = np.empty((stop - start, len(PA100K_ATTRIBUTES)), dtype=np.uint8)
    for k, i in enumerate(range(start, stop)):
        rng = np.random.default_rng([seed, i])
        rows[k] = sample_pa100k_labels(1, rng)[0]
        img = render_pedestrian(rows[k], rng, difficulty)
        path = os.path.join(image_dir, names[k])
        if fmt == "JPEG":
            img.save(path, format="JPEG", quality=JPEG_QUALITY)
        else:
            img.save(path, format="PNG")
    return rows


def _mp_context() -> mp.context.BaseContext:
    """``fork`` where available, also from a non-main thread; ``spawn`` elsewhere.

    Forked workers only touch numpy, PIL and their own files, so locks held by other threads of the
    parent (including native torch/OpenMP threads) are never needed in the child. ``spawn`` and
    ``forkserver`` would be safer in general but re-import ``data_modules`` (hence torch/Lightning) in
    every worker, which costs ~5-15 s on a small machine for a job that otherwise takes seconds.
    """
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def render_images(
    image_dir: str | os.PathLike[str],
    names: Sequence[str],
    seed: int,
    workers: int,
    difficulty: float = 1.0,
    fmt: str = "JPEG",
    log: logging.Logger | None = None,
) -> np.ndarray:
    """Render ``len(names)`` pedestrians into ``image_dir / names[i]``; return their ``(N, 26)`` PA-100K labels.

    Image ``i`` (and its label row) depends only on ``(seed, i)``; ``fmt`` is ``"JPEG"`` (quality 90) or
    ``"PNG"``. Sub-folders in ``names`` must already exist. ``log``: logger for progress messages
    (default: this module's).
    """
    log = log or logger
    if fmt not in _FORMATS:
        raise ValueError(f"fmt must be one of {_FORMATS}, got {fmt!r}")
    names = list(names)
    num_images = len(names)
    workers = max(1, int(workers))
    size = max(1, min(_CHUNK, -(-num_images // (4 * workers))))  # >= 4 chunks per worker for balance
    chunks = [(a, min(a + size, num_images)) for a in range(0, num_images, size)]
    jobs = [
        partial(
            _render_chunk,
            names=names[a:b],
            seed=seed,
            difficulty=difficulty,
            image_dir=str(image_dir),
            fmt=fmt,
        )
        for a, b in chunks
    ]
    workers = max(1, min(workers, len(chunks)))
    if workers == 1:
        parts = [job(c) for job, c in zip(jobs, chunks, strict=True)]
    else:
        ctx = _mp_context()
        log.debug("Rendering %d chunks with a %s pool of %d", len(chunks), ctx.get_start_method(), workers)
        with ctx.Pool(workers) as pool:
            parts = pool.starmap(_call, zip(jobs, chunks, strict=True), chunksize=1)
    return np.concatenate(parts) if parts else np.zeros((0, len(PA100K_ATTRIBUTES)), np.uint8)


def _call(job: Callable[[tuple[int, int]], np.ndarray], bounds: tuple[int, int]) -> np.ndarray:
    return job(bounds)


def savemat_fixed_header(path: str | os.PathLike[str], content: dict[str, Any], header: str) -> None:
    """``savemat(path, content)`` with ``header`` instead of the date in the 116-byte descriptive header.

    ``savemat`` stamps the creation time there; replacing it keeps the file byte-identical per seed
    (loaders only read the version/endian bytes after it).
    """
    from scipy.io import savemat  # lazy: workers never need scipy

    buf = io.BytesIO()
    savemat(buf, content)
    data = bytearray(buf.getvalue())
    text = f"MATLAB 5.0 MAT-file, Created by: {header}"
    data[:116] = text.encode("ascii", "replace").ljust(116)[:116]
    Path(path).write_bytes(bytes(data))


def _check_target(root: Path, marker: str, what: str) -> None:
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(
            f"Cannot synthesize {what} into {root}: it exists, is not empty and has no {marker}. "
            "Choose another root or remove it."
        )


def write_atomically(
    root: str | os.PathLike[str],
    marker: str,
    produce_fn: Callable[[Path], None],
    what: str = "a dataset",
    log: logging.Logger | None = None,
) -> tuple[Path, bool]:
    """Create ``root`` by running ``produce_fn(tmp)`` on a sibling temp folder, then renaming it to ``root``.

    ``marker`` is the relative path of a file whose presence means "already generated" (checked before
    and, under the lock ``<root>.lock``, again after acquiring it). ``root`` must not exist or be empty.
    Stale temp folders of crashed runs are removed. Returns ``(root, generated)``, ``generated`` False
    when the set was already there (nothing is checked about its content). ``log``: logger for
    progress messages (default: this module's).
    """
    log = log or logger
    root = Path(root).expanduser().resolve()
    if (root / marker).is_file():
        log.info("Synthetic %s already present at %s; not regenerating", what, root)
        return root, False
    _check_target(root, marker, what)
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.with_name(root.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if (root / marker).is_file():
            log.info("Synthetic %s was generated at %s by another process meanwhile", what, root)
            return root, False
        _check_target(root, marker, what)
        for stale in root.parent.glob(f".{root.name}.partial-*"):  # left by a crashed run; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root.with_name(f".{root.name}.partial-{os.getpid()}-{threading.get_ident()}")
        t0 = time.perf_counter()
        try:
            tmp.mkdir(parents=True)
            produce_fn(tmp)
            os.rename(tmp, root)  # atomic; replaces an empty root directory
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log.info("Synthesized %s into %s in %.1f s", what, root, time.perf_counter() - t0)
    return root, True
