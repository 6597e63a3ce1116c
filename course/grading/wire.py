"""The one format that crosses a process boundary: a JSON header plus an ``.npz`` payload, length-prefixed.

Nothing here ever unpickles, and untrusted bytes are parsed under caps, in this order, each checked before the
next step spends anything: the two lengths (header, payload) against their caps, before a byte is read; the
header's nesting depth, by a linear scan, before ``json.loads``; then for the payload the zip directory's entry
count, each member's ``.npy`` header (version, dtype, shape), the running total of elements and bytes, and only
then the member's data, read to exactly the announced size (a small deflated member that would expand hugely is
refused from its header, without being decompressed). Any violation is a :class:`WireError`: a sandbox that writes
garbage costs its submission a verdict of "crashed", never the grader.
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
#: Largest JSON header (bytes) of a message from an untrusted or answering process.
MAX_HEADER = 4 * 1024 * 1024
#: Largest header of a job (from the grader to a worker, then to the sandbox): it carries the notebook's code,
#: whose JSON form can be 12 times its length (an astral character escaped as two ``\\uXXXX``), and reading
#: caps the code at 2 million characters.
MAX_JOB_HEADER = 32 * 1024 * 1024
#: Deepest nesting of JSON arrays and objects in a header.
MAX_DEPTH = 32
#: Most arrays in one payload.
MAX_ARRAYS = 4096
#: Longest string array (elements) in a payload.
MAX_TEXT_ELEMENTS = 10_000
LENGTHS = struct.Struct("<QQ")  # header length, payload length
_LENGTHS = LENGTHS


class WireError(Exception):
    """A message that is malformed, too large or of the wrong types."""


def _dumps(header: dict) -> bytes:
    text = json.dumps(header, sort_keys=True, allow_nan=False, ensure_ascii=False)
    try:
        return text.encode("utf-8")  # compact: code in any script costs at most 4 bytes a character
    except UnicodeEncodeError:  # a lone surrogate: the ASCII form escapes it and json.loads restores it
        return json.dumps(header, sort_keys=True, allow_nan=False).encode()


def encode(header: dict, arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """One message: the JSON header and the arrays (stored without pickle)."""
    head = _dumps(header)
    payload = b""
    if arrays:
        buffer = io.BytesIO()
        np.savez(buffer, **{key: np.asarray(value) for key, value in arrays.items()})
        payload = buffer.getvalue()
    return LENGTHS.pack(len(head), len(payload)) + head + payload


def check_lengths(head_len: int, payload_len: int, max_header: int = MAX_HEADER,
                  max_message: int = MAX_MESSAGE) -> None:
    """Refuse a message from its two lengths alone."""
    if head_len > max_header:
        raise WireError(f"header of {head_len} bytes exceeds the cap of {max_header}")
    if head_len + payload_len > max_message:
        raise WireError(f"message of {head_len + payload_len} bytes exceeds the cap of {max_message}")


def json_depth(data: bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` outside strings, in one linear, vectorised pass."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size == 0:
        return 0
    index = np.arange(raw.size)
    backslash = raw == ord("\\")
    # A quote is escaped when an odd run of backslashes precedes it.
    last_other = np.maximum.accumulate(np.where(backslash, -1, index))
    run_before = np.empty(raw.size, dtype=np.int64)
    run_before[0] = 0
    run_before[1:] = index[:-1] - last_other[:-1]
    quotes = (raw == ord('"')) & (run_before % 2 == 0)
    inside = (np.cumsum(quotes) % 2 == 1) & ~quotes
    step = np.zeros(raw.size, dtype=np.int64)
    step[((raw == ord("[")) | (raw == ord("{"))) & ~inside] = 1
    step[((raw == ord("]")) | (raw == ord("}"))) & ~inside] = -1
    return int(np.cumsum(step).max(initial=0))


def _loads(head: bytes) -> dict:
    if json_depth(head) > MAX_DEPTH:
        raise WireError(f"header nested deeper than {MAX_DEPTH}")
    try:
        header = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WireError(f"header is not JSON ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise WireError("header is not a JSON object")
    return header


def _plain_dtype(dtype: np.dtype, elements: int) -> bool:
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        return False
    return dtype.kind in "biuf" or (dtype.kind == "U" and elements <= MAX_TEXT_ELEMENTS)


def _entry_count(payload: bytes) -> int:
    """The archive's entry count from its end-of-directory record, before any index is built."""
    tail = payload[-(65536 + 22):]
    position = tail.rfind(b"PK\x05\x06")
    if position < 0 or position + 22 > len(tail):
        raise WireError("payload is not a zip archive")
    return struct.unpack_from("<H", tail, position + 10)[0]


def read_arrays(payload: bytes, max_elements: int | None = None,
                max_bytes: int = MAX_MESSAGE) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` payload, every size checked from the headers before any data is expanded."""
    if _entry_count(payload) > MAX_ARRAYS:
        raise WireError("too many arrays")
    arrays: dict[str, np.ndarray] = {}
    elements_left = max_elements if max_elements is not None else max_bytes
    bytes_left = max_bytes
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        members = archive.infolist()
        if len(members) > MAX_ARRAYS:
            raise WireError("too many arrays")
        for info in members:
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or \
                    not info.filename.endswith(".npy") or info.flag_bits & 0x1:
                raise WireError("payload member is not a plain .npy")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(member, max_header_size=10_000)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(member, max_header_size=10_000)
                else:
                    raise WireError(f"unsupported .npy version {version}")
                if not all(isinstance(n, int) and n >= 0 for n in shape):
                    raise WireError("bad array shape")
                elements = 1
                for n in shape:
                    elements *= n
                if not _plain_dtype(dtype, elements):
                    raise WireError(f"array {info.filename!r} has dtype {dtype}")
                size = elements * dtype.itemsize
                elements_left -= elements
                bytes_left -= size
                if elements_left < 0 or bytes_left < 0:
                    raise WireError("arrays larger than the cap")
                data = member.read(size)
                if len(data) != size or member.read(1):
                    raise WireError("array data does not match its header")
            array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()
            del data
            arrays[info.filename[:-4]] = array
    return arrays


def decode(head: bytes, payload: bytes, max_elements: int | None = None,
           max_bytes: int = MAX_MESSAGE) -> tuple[dict, dict[str, np.ndarray]]:
    """Parse one message's parts; raises :class:`WireError` on anything but a JSON object and plain arrays."""
    header = _loads(head)
    arrays: dict[str, np.ndarray] = {}
    if payload:
        try:
            arrays = read_arrays(payload, max_elements, max_bytes)
        except WireError:
            raise
        except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError, struct.error, TypeError,
                SyntaxError, NotImplementedError, RuntimeError, MemoryError) as exc:
            # whatever a crafted zip or .npy header makes zipfile or NumPy raise
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


def read_message(fd: int, max_header: int = MAX_HEADER) -> tuple[dict, dict[str, np.ndarray]]:
    """Read one message (blocking); EOFError at a clean end, WireError on anything malformed or oversized."""
    head_len, payload_len = LENGTHS.unpack(read_exact(fd, LENGTHS.size))
    check_lengths(head_len, payload_len, max_header, MAX_MESSAGE + max_header)
    return decode(read_exact(fd, head_len), read_exact(fd, payload_len))


def decode_message(buffer: bytes, max_header: int = MAX_HEADER) -> tuple[dict, dict[str, np.ndarray]]:
    """One whole message already in memory (what another process handed over), under the same caps as
    :func:`read_message`; WireError unless the buffer is exactly one message."""
    if len(buffer) < LENGTHS.size:
        raise WireError("a message shorter than its lengths")
    head_len, payload_len = LENGTHS.unpack_from(buffer)
    check_lengths(head_len, payload_len, max_header, MAX_MESSAGE + max_header)
    start = LENGTHS.size
    if len(buffer) != start + head_len + payload_len:
        raise WireError(f"a message of {len(buffer)} bytes where its lengths say {start + head_len + payload_len}")
    return decode(bytes(buffer[start:start + head_len]), bytes(buffer[start + head_len:]))


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


def read_raw(fd: int, max_header: int = MAX_HEADER) -> bytearray:
    """Read one message undecoded into a bytearray the caller can wipe (``buf[:] = bytes(len(buf))``) afterwards.

    The worker keeps a submission only in this form and wipes it after grading; sandboxes are forked from a
    zygote that never held any job, so no trace of an earlier student's code is in their memory either way.
    """
    lengths = read_exact(fd, LENGTHS.size)
    head_len, payload_len = LENGTHS.unpack(lengths)
    check_lengths(head_len, payload_len, max_header, MAX_MESSAGE + max_header)
    buffer = bytearray(LENGTHS.size + head_len + payload_len)
    buffer[: LENGTHS.size] = lengths
    view, position = memoryview(buffer), LENGTHS.size
    while position < len(buffer):
        count = os.readv(fd, [view[position:]])
        if not count:
            raise EOFError("the other end closed the pipe")
        position += count
    return buffer


def decode_raw(buffer: bytearray) -> tuple[dict, dict[str, np.ndarray]]:
    """Decode a message read by :func:`read_raw`."""
    head_len, _ = LENGTHS.unpack_from(buffer)
    start = LENGTHS.size
    return decode(bytes(buffer[start:start + head_len]), bytes(buffer[start + head_len:]))
