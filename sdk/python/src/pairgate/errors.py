"""The SDK's errors. Messages never contain tokens, proofs, pairing secrets or key material."""

from __future__ import annotations

import json
from typing import Any


class PairgateError(Exception):
    """Base class of every error this SDK raises."""


class PairingStringError(PairgateError):
    """The pairing string is not valid (the message never echoes it)."""


class StorageError(PairgateError):
    """The session could not be read or written."""


class SessionError(PairgateError):
    """The stored session is unusable, or the gateway answered something unexpected."""


class ConsentDenied(PairgateError):
    """The owner denied the consent request."""

    def __init__(self) -> None:
        super().__init__("the consent request was denied by the owner")


class ConsentExpired(PairgateError):
    """The consent request expired before the owner decided."""

    def __init__(self) -> None:
        super().__init__("the consent request expired before the owner decided")


class GatewayError(PairgateError):
    """The gateway refused a request; `code` is its stable error code (docs/protocol.md 6)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"the gateway refused the request ({status}): {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    @classmethod
    def from_body(cls, status: int, body: bytes) -> GatewayError:
        """Builds the error from a body of either shape (OAuth or OpenAI)."""
        try:
            value: Any = json.loads(body)
        except ValueError:
            value = None
        err = value.get("error") if isinstance(value, dict) else None
        if isinstance(err, str):
            desc = value.get("error_description") if isinstance(value, dict) else None
            return cls(status, err, desc if isinstance(desc, str) else "")
        if isinstance(err, dict):
            code = err.get("code")
            message = err.get("message")
            return cls(
                status,
                code if isinstance(code, str) else "error",
                message if isinstance(message, str) else "",
            )
        return cls(status, "error", body[:200].decode("utf-8", "replace"))
