"""Read back an offline W&B run (``run-<id>.wandb``) for assertions: wandb has no public API for it.

The file is a 7-byte header followed by LevelDB-log framing (32 KiB blocks; 7-byte record headers
of crc32, length, type FULL/FIRST/MIDDLE/LAST) around ``wandb_internal_pb2.Record`` messages.
"""

from __future__ import annotations

import json
import struct
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


def read_history(run_file: Path) -> list[dict[str, Any]]:
    """Every ``history`` row of the run as ``{key: value}`` (values JSON-decoded)."""
    rows = []
    for payload in _payloads(Path(run_file).read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return rows
