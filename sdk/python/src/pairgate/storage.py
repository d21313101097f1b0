"""Where an app keeps its key and tokens between runs: a JSON file with 0600 permissions
(the same format as the Rust SDK's), or memory."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .errors import SessionError, StorageError


@dataclass
class StoredSession:
    """Everything a paired app must keep. `repr` shows no token and no key."""

    gateway_url: str
    private_jwk: dict[str, Any] = field(repr=False)
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    #: Unix seconds at which the access token expires.
    expires_at: int
    grant_id: str
    #: The last server nonce seen, if the gateway uses nonces.
    nonce: str | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> StoredSession:
        try:
            return cls(
                gateway_url=str(value["gateway_url"]),
                private_jwk=dict(value["private_jwk"]),
                access_token=str(value["access_token"]),
                refresh_token=value.get("refresh_token"),
                expires_at=int(value["expires_at"]),
                grant_id=str(value["grant_id"]),
                nonce=value.get("nonce"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise SessionError(f"not a session: {type(e).__name__}") from None


class Storage(Protocol):
    """A place to keep the session between runs."""

    def load(self) -> StoredSession | None: ...

    def save(self, session: StoredSession) -> None: ...


class FileStorage:
    """A JSON file readable only by its owner (mode 0600), replaced atomically on every save."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> StoredSession | None:
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StorageError(f"cannot read {self.path}: {e.strerror}") from None
        try:
            return StoredSession.from_json(json.loads(text))
        except (ValueError, SessionError):
            raise SessionError(f"{self.path} is not a session file") from None

    def save(self, session: StoredSession) -> None:
        tmp = self.path.with_name(f"{self.path.name}.tmp{os.getpid()}")
        data = json.dumps(session.to_json(), indent=2).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)  # also when a stale temporary file existed
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            raise StorageError(f"cannot write {self.path}: {e.strerror}") from None

    def __repr__(self) -> str:
        return f"FileStorage({str(self.path)!r})"


class MemoryStorage:
    """Keeps the session in memory only (lost when the process ends)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: StoredSession | None = None

    def load(self) -> StoredSession | None:
        with self._lock:
            return dataclasses.replace(self._session) if self._session else None

    def save(self, session: StoredSession) -> None:
        with self._lock:
            self._session = dataclasses.replace(session)

    def __repr__(self) -> str:
        return "MemoryStorage()"
