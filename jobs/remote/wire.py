"""The records' wire format: a chunk is one spool row, posted as it was spooled.

A chunk holds the records ``first..last`` of one (run, attempt): metric points (numpy columns,
raw little-endian bytes, not JSON: a point costs 20 bytes and no parsing) plus events and, last
of a run, its outcome, in a small JSON header. A request body is chunks, each prefixed with its
length. Everything a peer sends is bounded before anything is allocated from it.

    chunk = u32 header_len | header (JSON) | int32 key[n] | int64 step[n] | float64 value[n]
    body  = (u32 chunk_len | chunk)*
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_BODY = 32 * 2**20  # one POST; the worker packs at most this many bytes of chunks
MAX_HEADER = 4 * 2**20  # events and the outcome of one chunk
MAX_KEYS = 10_000
MAX_KEY_LEN = 200
POINT_BYTES = 4 + 8 + 8
_U32 = struct.Struct("<I")


class WireError(ValueError):
    """A request body is not a well-formed sequence of chunks within the bounds."""


@dataclass
class Chunk:
    run: int
    attempt: int
    first: int
    last: int
    keys: list[str] = field(default_factory=list)
    key_idx: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    steps: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    values: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    events: list[list[Any]] = field(default_factory=list)  # [step, kind, message, data, time]
    outcome: dict[str, Any] | None = None

    @property
    def points(self) -> int:
        return len(self.steps)


def encode(c: Chunk) -> bytes:
    header = json.dumps(
        {
            "run": c.run,
            "attempt": c.attempt,
            "first": c.first,
            "last": c.last,
            "keys": c.keys,
            "n": int(len(c.steps)),
            "events": c.events,
            "outcome": c.outcome,
        }
    ).encode()
    return b"".join(
        (
            _U32.pack(len(header)),
            header,
            np.ascontiguousarray(c.key_idx, "<i4").tobytes(),
            np.ascontiguousarray(c.steps, "<i8").tobytes(),
            np.ascontiguousarray(c.values, "<f8").tobytes(),
        )
    )


def frame(chunks: list[bytes]) -> bytes:
    return b"".join(_U32.pack(len(c)) + c for c in chunks)


def _int(h: dict, name: str, lo: int = 0) -> int:
    v = h.get(name)
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > 2**62:
        raise WireError(f"chunk header field {name!r} must be an integer >= {lo}")
    return v


def decode(buf: bytes) -> Chunk:
    if len(buf) < 4:
        raise WireError("chunk shorter than its header length")
    (hlen,) = _U32.unpack_from(buf)
    if hlen > MAX_HEADER or 4 + hlen > len(buf):
        raise WireError(f"chunk header of {hlen} bytes is out of bounds")
    try:
        h = json.loads(buf[4 : 4 + hlen])
    except ValueError as e:
        raise WireError(f"chunk header is not JSON: {e}") from e
    if not isinstance(h, dict):
        raise WireError("chunk header must be an object")
    n = _int(h, "n")
    rest = len(buf) - 4 - hlen
    if rest != n * POINT_BYTES:
        raise WireError(f"chunk says {n} points but carries {rest} bytes")
    first, last = _int(h, "first", 1), _int(h, "last", 1)
    if last < first:
        raise WireError("chunk's last record is before its first")
    keys = h.get("keys") or []
    if (
        not isinstance(keys, list)
        or len(keys) > MAX_KEYS
        or not all(isinstance(k, str) and 0 < len(k) <= MAX_KEY_LEN for k in keys)
    ):
        raise WireError(f"chunk keys must be at most {MAX_KEYS} names of 1-{MAX_KEY_LEN} chars")
    off = 4 + hlen
    key_idx = np.frombuffer(buf, "<i4", n, off)
    steps = np.frombuffer(buf, "<i8", n, off + 4 * n)
    values = np.frombuffer(buf, "<f8", n, off + 12 * n)
    if n and (key_idx.min() < 0 or key_idx.max() >= len(keys) or steps.min() < 0):
        raise WireError("chunk points name a key it does not list, or a negative step")
    events = h.get("events") or []
    if not isinstance(events, list) or not all(
        isinstance(e, list) and len(e) == 5 and isinstance(e[1], str) and e[1] for e in events
    ):
        raise WireError("chunk events must be [step, kind, message, data, time] lists")
    outcome = h.get("outcome")
    if outcome is not None and not (isinstance(outcome, dict) and "status" in outcome):
        raise WireError("chunk outcome must be an object with a status")
    return Chunk(
        run=_int(h, "run", 1),
        attempt=_int(h, "attempt", 1),
        first=first,
        last=last,
        keys=keys,
        key_idx=key_idx,
        steps=steps,
        values=values,
        events=events,
        outcome=outcome,
    )


def unframe(body: bytes) -> list[Chunk]:
    if len(body) > MAX_BODY:
        raise WireError(f"request body over {MAX_BODY} bytes")
    out, pos = [], 0
    while pos < len(body):
        if pos + 4 > len(body):
            raise WireError("truncated chunk length")
        (clen,) = _U32.unpack_from(body, pos)
        pos += 4
        if pos + clen > len(body):
            raise WireError("truncated chunk")
        out.append(decode(body[pos : pos + clen]))
        pos += clen
    return out
