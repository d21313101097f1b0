"""Pairing strings `pgpair1.<payload>.<check>` (docs/protocol.md section 3): parsing, with
distinct errors that never echo the input, and encoding (for tests and tools)."""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ._b64 import b64d, b64e
from .errors import PairingStringError

PAIRING_PREFIX = "pgpair1"
MAX_LEN = 2048
_B64 = re.compile(r"^[A-Za-z0-9_-]+$")


def _check(payload: str) -> str:
    return b64e(hashlib.sha256(f"{PAIRING_PREFIX}.{payload}".encode("ascii")).digest()[:4])


def check_gateway_url(url: str) -> None:
    """Printable ASCII without `\\`, http(s), a host, no userinfo, query or fragment."""
    if not url or any(not (0x21 <= ord(c) <= 0x7E) or c == "\\" for c in url):
        raise PairingStringError("the gateway URL in the pairing string is not acceptable")
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        raise PairingStringError(
            "the gateway URL in the pairing string is not acceptable"
        ) from None
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or "@" in parts.netloc
        or "?" in url
        or "#" in url
    ):
        raise PairingStringError("the gateway URL in the pairing string is not acceptable")


@dataclass(frozen=True)
class PairingString:
    """A parsed pairing string. `repr` hides the secret."""

    pairing_id: bytes
    secret: bytes = field(repr=False)
    gateway_url: str

    @property
    def id(self) -> str:
        """The pairing id as shown to the owner: `pr_` + base64url."""
        return "pr_" + b64e(self.pairing_id)

    @classmethod
    def parse(cls, text: str) -> PairingString:
        text = text.strip()
        if len(text) > MAX_LEN:
            raise PairingStringError("the pairing string is too long")
        if not text.startswith(PAIRING_PREFIX + "."):
            raise PairingStringError("this is not a pairing string (wrong prefix)")
        rest = text[len(PAIRING_PREFIX) + 1 :]
        payload, dot, check = rest.rpartition(".")
        if not dot or len(check) != 6 or not _B64.match(check) or not _B64.match(payload):
            raise PairingStringError("the pairing string is malformed")
        if _check(payload) != check:
            raise PairingStringError(
                "the pairing string's checksum does not match (truncated or mistyped?)"
            )
        try:
            raw = b64d(payload)
        except ValueError:
            raise PairingStringError("the pairing string is malformed") from None
        if len(raw) < 49:
            raise PairingStringError("the pairing string is malformed")
        try:
            url = raw[48:].decode("utf-8")
        except UnicodeDecodeError:
            raise PairingStringError(
                "the gateway URL in the pairing string is not acceptable"
            ) from None
        check_gateway_url(url)
        parsed = cls(pairing_id=raw[:16], secret=raw[16:48], gateway_url=url)
        host = urlsplit(url).hostname or ""
        if url.lower().startswith("http://") and host not in ("localhost", "127.0.0.1", "::1"):
            warnings.warn(
                "the pairing string points at a plain-http gateway on a non-loopback host",
                stacklevel=2,
            )
        return parsed

    def encode(self) -> str:
        if len(self.pairing_id) != 16 or len(self.secret) != 32:
            raise PairingStringError("a pairing id is 16 bytes and a secret 32 bytes")
        check_gateway_url(self.gateway_url)
        payload = b64e(self.pairing_id + self.secret + self.gateway_url.encode("ascii"))
        return f"{PAIRING_PREFIX}.{payload}.{_check(payload)}"
