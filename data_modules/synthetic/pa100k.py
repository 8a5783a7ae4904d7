"""Write a synthetic dataset in PA-100K's real distribution layout (``annotation.mat`` + ``data/*.jpg``).

Loaders, DataModules and CLIs can then be exercised end to end on exactly the files they will meet
with the real download. Generation is deterministic per (seed, image index), parallel, atomic
(build in a sibling temp folder, then rename) and guarded by a sibling lock file so that several
processes (e.g. DDP ranks) asking for the same root generate it only once.
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
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from data_modules.attributes import PA100K_ATTRIBUTES
from data_modules.synthetic.labels import sample_pa100k_labels
from data_modules.synthetic.render import render_pedestrian

__all__ = ["synthesize_pa100k", "split_counts"]

logger = logging.getLogger(__name__)

ANNOTATION = "annotation.mat"
IMAGE_DIR = "data"
JPEG_QUALITY = 90
# Bump when the renderer or label sampler changes what a seed produces (recorded in the .mat header).
GENERATOR_VERSION = 1
_CHUNK = 64
_SPLITS = ("train", "val", "test")


def split_counts(num_images: int, split_fractions: Sequence[float]) -> tuple[int, int, int]:
    """Train/val/test sizes; rounding leftovers go to test so the three always sum to ``num_images``."""
    fr = tuple(float(f) for f in split_fractions)
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6:
        raise ValueError(
            f"split_fractions must be 3 non-negative numbers summing to 1, got {split_fractions}"
        )
    n_train = round(num_images * fr[0])
    n_val = min(round(num_images * fr[1]), num_images - n_train)
    return n_train, n_val, num_images - n_train - n_val


def _render_chunk(bounds: tuple[int, int], seed: int, difficulty: float, image_dir: str) -> np.ndarray:
    """Render and save images ``[start, stop)``; each depends only on (seed, index), whoever runs it."""
    start, stop = bounds
    rows = np.empty((stop - start, len(PA100K_ATTRIBUTES)), dtype=np.uint8)
    for k, i in enumerate(range(start, stop)):
        rng = np.random.default_rng([seed, i])
        rows[k] = sample_pa100k_labels(1, rng)[0]
        img = render_pedestrian(rows[k], rng, difficulty)
        img.save(os.path.join(image_dir, f"{i + 1:06d}.jpg"), format="JPEG", quality=JPEG_QUALITY)
    return rows


def _mp_context() -> mp.context.BaseContext:
    """``fork`` where available, also from a non-main thread; ``spawn`` elsewhere.

    Forked workers only touch numpy, PIL and their own files, so locks held by other threads of the
    parent (including native torch/OpenMP threads) are never needed in the child. ``spawn`` and
    ``forkserver`` would be safer in general but re-import ``data_modules`` (hence torch/Lightning) in
    every worker, which costs ~5-15 s on a small machine for a job that otherwise takes seconds.
    """
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def _render_all(num_images: int, seed: int, difficulty: float, image_dir: Path, workers: int) -> np.ndarray:
    size = max(1, min(_CHUNK, -(-num_images // (4 * workers))))  # >= 4 chunks per worker for balance
    chunks = [(a, min(a + size, num_images)) for a in range(0, num_images, size)]
    job = partial(_render_chunk, seed=seed, difficulty=difficulty, image_dir=str(image_dir))
    workers = max(1, min(workers, len(chunks)))
    if workers == 1:
        parts = [job(c) for c in chunks]
    else:
        ctx = _mp_context()
        logger.debug("Rendering %d chunks with a %s pool of %d", len(chunks), ctx.get_start_method(), workers)
        with ctx.Pool(workers) as pool:
            parts = pool.map(job, chunks, chunksize=1)
    return np.concatenate(parts) if parts else np.zeros((0, len(PA100K_ATTRIBUTES)), np.uint8)


def _cell(strings: Sequence[str]) -> np.ndarray:
    """N×1 MATLAB cell of char (loads back as ``cell[i][0][0] == str``)."""
    cell = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cell[i, 0] = s
    return cell


def _write_annotation(path: Path, labels: np.ndarray, counts: tuple[int, int, int], provenance: str) -> None:
    """Save the seven variables in the real file's order, with a fixed header text instead of the date.

    ``savemat`` stamps the creation time into the 116-byte descriptive header; replacing it keeps the
    whole dataset byte-identical per seed (loaders only read the version/endian bytes after it).
    """
    from scipy.io import savemat  # lazy: workers never need scipy

    names = [f"{i + 1:06d}.jpg" for i in range(len(labels))]
    bounds = np.cumsum((0, *counts))
    content: dict[str, np.ndarray] = {"attributes": _cell(PA100K_ATTRIBUTES)}
    for split, a, b in zip(_SPLITS, bounds[:-1], bounds[1:], strict=True):
        content[f"{split}_images_name"] = _cell(names[a:b])
    for split, a, b in zip(_SPLITS, bounds[:-1], bounds[1:], strict=True):
        content[f"{split}_label"] = np.ascontiguousarray(labels[a:b], dtype=np.uint8)
    buf = io.BytesIO()
    savemat(buf, content)
    data = bytearray(buf.getvalue())
    text = f"MATLAB 5.0 MAT-file, Created by: par-lightning synthetic PA-100K {provenance}"
    data[:116] = text.encode("ascii").ljust(116)[:116]
    path.write_bytes(bytes(data))


def _check_target(root: Path) -> None:
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(
            f"Cannot synthesize PA-100K into {root}: it exists, is not empty and has no {ANNOTATION}. "
            "Choose another root or remove it."
        )


def synthesize_pa100k(
    root: str | os.PathLike[str],
    num_images: int = 10_000,
    seed: int = 0,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    workers: int | None = None,
    difficulty: float = 1.0,
) -> Path:
    """Generate a synthetic PA-100K-format dataset under ``root`` unless one is already there.

    Layout: ``root/annotation.mat`` (the seven variables of the real file) and ``root/data/000001.jpg``…
    numbered train, then val, then test. The same ``seed`` gives byte-identical files for any
    ``workers``. Returns ``root`` as a ``Path``; if ``root/annotation.mat`` exists nothing is done
    (its size/seed are not checked).

    Args:
        root: dataset folder; must not exist, be empty, or already hold a generated set.
        num_images: total images over the three splits.
        seed: generator seed; image ``i`` depends only on ``(seed, i)``.
        split_fractions: train/val/test fractions (PA-100K uses 0.8/0.1/0.1).
        workers: processes used for rendering; ``None`` means ``os.cpu_count()``.
        difficulty: clutter/occlusion/noise scale passed to the renderer (0 = clean).
    """
    root = Path(root).expanduser().resolve()
    if (root / ANNOTATION).is_file():
        logger.info("Synthetic PA-100K already present at %s; not regenerating", root)
        return root
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    counts = split_counts(num_images, split_fractions)
    _check_target(root)
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.with_name(root.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if (root / ANNOTATION).is_file():
            logger.info("Synthetic PA-100K was generated at %s by another process meanwhile", root)
            return root
        _check_target(root)
        for stale in root.parent.glob(f".{root.name}.partial-*"):  # left by a crashed run; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root.with_name(f".{root.name}.partial-{os.getpid()}-{threading.get_ident()}")
        logger.info(
            "Synthesizing %d PA-100K-format images (train/val/test %d/%d/%d, seed %d, difficulty %g) into %s "
            "with %d worker(s)",
            num_images, *counts, seed, difficulty, root, workers,
        )  # fmt: skip
        t0 = time.perf_counter()
        try:
            (tmp / IMAGE_DIR).mkdir(parents=True)
            labels = _render_all(num_images, seed, difficulty, tmp / IMAGE_DIR, workers)
            provenance = f"v{GENERATOR_VERSION}, seed {seed}, difficulty {difficulty:g}"
            _write_annotation(tmp / ANNOTATION, labels, counts, provenance)
            os.rename(tmp, root)  # atomic; replaces an empty root directory
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    dt = time.perf_counter() - t0
    logger.info(
        "Synthesized %d images into %s in %.1f s (%.0f images/s)", num_images, root, dt, num_images / dt
    )
    return root
