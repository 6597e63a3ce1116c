"""The one format that crosses a process boundary: a JSON header plus an ``.npz`` payload, length-prefixed.

Nothing here ever unpickles: ``np.load(..., allow_pickle=False)`` refuses object arrays, JSON carries only plain
types, and every length is checked against a cap *before* anything is read, so a sandbox that writes garbage or
floods its pipe costs a verdict of "crashed", never the grader.
"""
from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from typing import Any

import numpy as np

#: Largest message accepted from any process (bytes); larger ones are refused unread.
MAX_MESSAGE = 96 * 1024 * 1024
#: Largest JSON header (bytes).
MAX_HEADER = 4 * 1024 * 1024
_LENGTHS = struct.Struct("<QQ")  # header length, payload length


class WireError(Exception):
    """A message that is malformed, too large or of the wrong types."""


def encode(header: dict, arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """One message: the JSON header and the arrays (stored without pickle)."""
    head = json.dumps(header, sort_keys=True, allow_nan=False).encode()
    payload = b""
    if arrays:
        buffer = io.BytesIO()
        np.savez(buffer, **{key: np.asarray(value) for key, value in arrays.items()})
        payload = buffer.getvalue()
    return _LENGTHS.pack(len(head), len(payload)) + head + payload


def decode(head: bytes, payload: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """Parse one message's parts; raises :class:`WireError` on anything but a JSON object and plain arrays."""
    try:
        header = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise WireError("header is not a JSON object")
    arrays: dict[str, np.ndarray] = {}
    if payload:
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
                for key in npz.files:
                    array = npz[key]
                    if array.dtype.kind not in "biuf" and not (array.dtype.kind == "U" and array.size < 10_000):
                        raise WireError(f"array {key!r} has dtype {array.dtype}")
                    arrays[key] = array
        except WireError:
            raise
        except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
            raise WireError(f"payload is not a plain .npz ({type(exc).__name__})") from None
    return header, arrays


def write_message(fd: int, header: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
    """Write one message to a file descriptor (all of it, or raise)."""
    data = memoryview(encode(header, arrays))
    while data:
        written = os.write(fd, data)
        data = data[written:]


def read_exact(fd: int, size: int) -> bytes:
    """Read exactly ``size`` bytes, or raise EOFError."""
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError("the other end closed the pipe")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int) -> tuple[dict, dict[str, np.ndarray]]:
    """Read one message (blocking); EOFError at a clean end, WireError on anything malformed or oversized."""
    head_len, payload_len = _LENGTHS.unpack(read_exact(fd, _LENGTHS.size))
    if head_len > MAX_HEADER or head_len + payload_len > MAX_MESSAGE:
        raise WireError(f"message of {head_len + payload_len} bytes exceeds the cap")
    return decode(read_exact(fd, head_len), read_exact(fd, payload_len))


# --- plain values: the case inputs and the job descriptions ------------------------------------------------------

def split_plain(values: dict[str, Any], prefix: str, arrays: dict[str, np.ndarray]) -> dict:
    """Scalars stay in the JSON, arrays (and NumPy scalars, to keep their dtype) go to ``arrays`` under a prefix."""
    scalars, stored = {}, []
    for key, value in values.items():
        if isinstance(value, (np.ndarray, np.generic)):
            arrays[f"{prefix}{key}"] = np.asarray(value)
            stored.append([key, isinstance(value, np.generic)])
        elif value is None or isinstance(value, (bool, int, float, str)):
            scalars[key] = value
        elif isinstance(value, (list, tuple)):
            arrays[f"{prefix}{key}"] = np.asarray(value)
            stored.append([key, False])
        else:
            raise TypeError(f"case input {key!r} is a {type(value).__name__}: cases must be plain data")
    return {"scalars": scalars, "arrays": stored}


def join_plain(spec: dict, prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The inverse of :func:`split_plain`."""
    values = dict(spec["scalars"])
    for key, was_scalar in spec["arrays"]:
        array = arrays[f"{prefix}{key}"]
        values[key] = array[()] if was_scalar else array
    return values


def read_raw(fd: int) -> bytearray:
    """Read one message undecoded into a bytearray the caller can wipe (``buf[:] = bytes(len(buf))``) afterwards.

    The worker keeps a submission only in this form and wipes it after grading, so a later sandbox forked from
    the worker finds no trace of an earlier student's code in its memory.
    """
    lengths = read_exact(fd, _LENGTHS.size)
    head_len, payload_len = _LENGTHS.unpack(lengths)
    if head_len > MAX_HEADER or head_len + payload_len > MAX_MESSAGE:
        raise WireError(f"message of {head_len + payload_len} bytes exceeds the cap")
    buffer = bytearray(_LENGTHS.size + head_len + payload_len)
    buffer[: _LENGTHS.size] = lengths
    view, position = memoryview(buffer), _LENGTHS.size
    while position < len(buffer):
        count = os.readv(fd, [view[position:]])
        if not count:
            raise EOFError("the other end closed the pipe")
        position += count
    return buffer


def decode_raw(buffer: bytearray) -> tuple[dict, dict[str, np.ndarray]]:
    """Decode a message read by :func:`read_raw`."""
    head_len, _ = _LENGTHS.unpack_from(buffer)
    start = _LENGTHS.size
    return decode(bytes(buffer[start:start + head_len]), bytes(buffer[start + head_len:]))
