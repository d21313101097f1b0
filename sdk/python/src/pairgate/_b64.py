"""base64url without padding (docs/protocol.md section 1), strict on decode."""

from __future__ import annotations

import base64
import re

_ALPHABET = re.compile(r"^[A-Za-z0-9_-]*$")


def b64e(data: bytes) -> str:
    """Encodes bytes as base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str) -> bytes:
    """Decodes strict base64url: no padding, no other alphabet, canonical trailing bits."""
    if not _ALPHABET.match(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64e(data) != text:
        raise ValueError("not canonical base64url")
    return data
