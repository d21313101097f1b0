"""The consent flow for apps without a pairing string (RFC 8628 device flow with a DPoP key):
ask the owner, show the user code and the key fingerprint, poll until the owner decides."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from . import _flows
from ._flows import GRANT_TYPE_DEVICE_CODE, NonceBox, drive, drive_async
from .errors import ConsentDenied, ConsentExpired, GatewayError, SessionError
from .keys import KeyKind, SigningKey
from .session import Session
from .storage import MemoryStorage, Storage


class PendingConsent:
    """A consent request waiting for the owner. Show `user_code` and `key_fingerprint`."""

    def __init__(
        self,
        answer: dict[str, Any],
        gateway_url: str,
        key: SigningKey,
        storage: Storage,
        nonce: NonceBox,
        http: httpx.Client | None,
        async_http: httpx.AsyncClient | None,
    ) -> None:
        def text(name: str) -> str:
            value = answer.get(name)
            if not isinstance(value, str):
                raise SessionError(f"the consent answer misses {name}")
            return value

        self.user_code = text("user_code")
        self.verification_uri = text("verification_uri")
        self.verification_uri_complete = text("verification_uri_complete")
        #: The fingerprint of this app's key, as the owner sees it: show it to your user.
        self.key_fingerprint = key.fingerprint()
        expires_in, interval = answer.get("expires_in"), answer.get("interval")
        self.expires_in = expires_in if isinstance(expires_in, int) else 0
        self.interval = max(interval if isinstance(interval, int) else 5, 1)
        self._device_code = text("device_code")
        self._gateway_url = gateway_url.rstrip("/")
        self._key = key
        self._storage = storage
        self._nonce = nonce
        self._http = http
        self._async_http = async_http

    def __repr__(self) -> str:
        return f"PendingConsent(user_code={self.user_code!r})"

    def _poll_flow(self) -> _flows.Flow[Session | None]:
        form = [("grant_type", GRANT_TYPE_DEVICE_CODE), ("device_code", self._device_code)]
        try:
            stored = yield from _flows.token_flow(self._gateway_url, self._key, form, self._nonce)
        except GatewayError as e:
            if e.code == "authorization_pending":
                return None
            if e.code == "slow_down":
                self.interval += 5
                return None
            if e.code == "access_denied":
                raise ConsentDenied() from None
            if e.code == "expired_token":
                raise ConsentExpired() from None
            raise
        self._storage.save(stored)
        return Session(stored, self._storage, http=self._http, async_http=self._async_http)

    def poll_once(self) -> Session | None:
        """Polls once: None while the owner has not decided."""
        return drive(self._poll_flow(), self._http)

    async def poll_once_async(self) -> Session | None:
        return await drive_async(self._poll_flow(), self._async_http)

    def wait(self, timeout: float | None = None) -> Session:
        """Polls at the gateway's interval until the owner approves (or denies, or it expires)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            session = self.poll_once()
            if session is not None:
                return session
            if deadline is not None and time.monotonic() + self.interval > deadline:
                raise ConsentExpired()
            time.sleep(self.interval)

    async def wait_async(self, timeout: float | None = None) -> Session:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            session = await self.poll_once_async()
            if session is not None:
                return session
            if deadline is not None and time.monotonic() + self.interval > deadline:
                raise ConsentExpired()
            await asyncio.sleep(self.interval)


def _consent_flow(
    gateway_url: str, app_name: str, policy: dict[str, Any] | None, key: SigningKey, nonce: NonceBox
) -> _flows.Flow[dict[str, Any]]:
    form = [("client_name", app_name)]
    if policy is not None:
        form.append(("policy", json.dumps(policy, separators=(",", ":"))))
    url = _flows.join(gateway_url, "/oauth/device_authorization")
    return (yield from _flows.oauth_post(url, key, form, nonce))


def request_consent(
    gateway_url: str,
    app_name: str,
    policy: dict[str, Any] | None = None,
    storage: Storage | None = None,
    *,
    key_kind: KeyKind = KeyKind.ED25519,
    http: httpx.Client | None = None,
) -> PendingConsent:
    """Asks the owner of the gateway at `gateway_url` for a grant with `policy`."""
    key, nonce = SigningKey.generate(key_kind), NonceBox()
    answer = drive(_consent_flow(gateway_url, app_name, policy, key, nonce), http)
    storage = storage if storage is not None else MemoryStorage()
    return PendingConsent(answer, gateway_url, key, storage, nonce, http, None)


async def request_consent_async(
    gateway_url: str,
    app_name: str,
    policy: dict[str, Any] | None = None,
    storage: Storage | None = None,
    *,
    key_kind: KeyKind = KeyKind.ED25519,
    http: httpx.AsyncClient | None = None,
) -> PendingConsent:
    """`request_consent` for async code."""
    key, nonce = SigningKey.generate(key_kind), NonceBox()
    answer = await drive_async(_consent_flow(gateway_url, app_name, policy, key, nonce), http)
    storage = storage if storage is not None else MemoryStorage()
    return PendingConsent(answer, gateway_url, key, storage, nonce, None, http)
