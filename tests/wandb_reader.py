"""Read back an offline W&B run (``run-<id>.wandb``) for assertions: wandb has no public API for it.

The file is a 7-byte header followed by LevelDB-log framing (32 KiB blocks; 7-byte record headers
of crc32, length, type FULL/FIRST/MIDDLE/LAST) around ``wandb_internal_pb2.Record`` messages.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

_HEADER, _BLOCK, _REC_HEADER = 7, 32 * 1024, 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _payloads(data: bytes) -> list[bytes]:
    out, pending, pos = [], b"", _HEADER
    while pos + _REC_HEADER <= len(data):
        left_in_block = _BLOCK - (pos % _BLOCK)
        if left_in_block < _REC_HEADER:  # block trailer padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _REC_HEADER])
        chunk = data[pos + _REC_HEADER : pos + _REC_HEADER + length]
        pos += _REC_HEADER + length
        if kind == _FULL:
            out.append(chunk)
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            out.append(pending + chunk)
            pending = b""
        elif kind == 0 and length == 0:
            continue
    return out


def _records(run_file: Path, kind: str) -> Iterator[Any]:
    """The ``kind`` part (``history``, ``summary``, ``config``, ...) of every record of that kind, in order."""
    for payload in _payloads(Path(run_file).read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == kind:
            yield getattr(record, kind)


def read_history(run_file: Path) -> list[dict[str, Any]]:
    """Every ``history`` row of the run as ``{key: value}`` (values JSON-decoded)."""
    return [
        {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in history.item}
        for history in _records(run_file, "history")
    ]


def _set_nested(out: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        out = out.setdefault(key, {})
    out[path[-1]] = value


def _merge_updates(run_file: Path, kind: str) -> dict[str, Any]:
    """Apply every ``update`` item of the ``kind`` records in order; nested keys give nested dicts."""
    out: dict[str, Any] = {}
    for rec in _records(run_file, kind):
        for item in rec.update:
            _set_nested(out, [item.key] if item.key else list(item.nested_key), json.loads(item.value_json))
    return out


def read_summary(run_file: Path) -> dict[str, Any]:
    """The run's final summary: ``run.summary`` keys and the last value of every logged key.

    A logged media value is a nested dict, e.g. ``summary["compression/layers"]["path"]``.
    """
    return _merge_updates(run_file, "summary")


def read_config(run_file: Path) -> dict[str, Any]:
    """The run's config, including W&B's own ``_wandb`` entries (custom charts under ``visualize``)."""
    return _merge_updates(run_file, "config")


def read_table(run_file: Path, key: str) -> dict[str, Any]:
    """The last ``wandb.Table`` logged under ``key``: ``{"columns": [...], "data": [[...], ...]}``.

    Offline runs store a table as JSON under ``<run dir>/files/<path>``; the summary records the path.
    """
    summary = read_summary(run_file)
    ref = summary.get(key)
    if not isinstance(ref, dict) or ref.get("_type") != "table-file":
        tables = sorted(
            k for k, v in summary.items() if isinstance(v, dict) and v.get("_type") == "table-file"
        )
        raise KeyError(f"no table logged under {key!r}; tables: {tables}")
    return json.loads((Path(run_file).parent / "files" / ref["path"]).read_text(encoding="utf-8"))
