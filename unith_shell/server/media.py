"""Deterministic stand-in "mp4" bytes for the idle and reply video URLs.

The bytes are not a playable video; they start with a plausible ``ftyp`` box and an ``mdat``
box so that sniffers and size checks behave as with a real file. V1 only checks that the
served MIME type starts with ``video`` [C-V1].
"""

from __future__ import annotations

import functools
import hashlib
import struct

CONTENT_TYPE = "video/mp4"


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


@functools.lru_cache(maxsize=128)
def fake_mp4(seed: str, size: int) -> bytes:
    """``size`` bytes (at least the two box headers) derived only from ``seed``."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41")
    body_len = max(0, size - len(ftyp) - 8)
    # shake_256 gives any number of bytes from one seed: deterministic and fast.
    mdat = _box(b"mdat", hashlib.shake_256(seed.encode()).digest(body_len))
    return ftyp + mdat
