"""A paired app's session: pairs once, then signs every request with the app's own key,
refreshing tokens before they expire and retrying once when the gateway asks for a fresh nonce.
Mirrors the Rust SDK's `Client` (sdk/rust/src/client.rs); blocking and async methods share one
state and one implementation of every exchange (see `_flows`)."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import threading
from typing import TYPE_CHECKING, Any

import httpx

from . import _flows
from ._flows import GRANT_TYPE_PAIRING, GRANT_TYPE_REFRESH, NonceBox, drive, drive_async
from .errors import SessionError
from .keys import KeyKind, SigningKey
from .pairing import PairingString
from .proof import create_proof
from .storage import MemoryStorage, Storage, StoredSession

if TYPE_CHECKING:
    from .auth import PairgateAuth

#: Refresh the access token when it has less than this many seconds left.
REFRESH_MARGIN_SECS = 30


class Retry(enum.Enum):
    """What to do after a response."""

    NO = "no"
    NONCE = "nonce"
    REFRESH = "refresh"


class Session:
    """A paired app. Thread-safe; create it with `pair`, `request_consent` or `from_storage`."""

    def __init__(
        self,
        stored: StoredSession,
        storage: Storage | None = None,
        *,
        http: httpx.Client | None = None,
        async_http: httpx.AsyncClient | None = None,
    ) -> None:
        try:
            self._key = SigningKey.from_private_jwk(stored.private_jwk)
        except ValueError as e:
            raise SessionError(str(e)) from None
        self._stored = dataclasses.replace(stored)
        self._storage: Storage = storage if storage is not None else MemoryStorage()
        self._http = http
        self._async_http = async_http
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._async_refresh: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @classmethod
    def from_storage(
        cls,
        storage: Storage,
        *,
        http: httpx.Client | None = None,
        async_http: httpx.AsyncClient | None = None,
    ) -> Session | None:
        """Resumes a session saved by an earlier run, if there is one."""
        stored = storage.load()
        if stored is None:
            return None
        return cls(stored, storage, http=http, async_http=async_http)

    def __repr__(self) -> str:
        return f"Session(grant_id={self.grant_id!r}, gateway_url={self.gateway_url!r})"

    # --- what the app may show -------------------------------------------------------------

    @property
    def gateway_url(self) -> str:
        with self._lock:
            return self._stored.gateway_url

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL: `<gateway>/v1`."""
        return self.gateway_url + "/v1"

    @property
    def grant_id(self) -> str:
        with self._lock:
            return self._stored.grant_id

    @property
    def expires_at(self) -> int:
        """Unix seconds at which the current access token expires."""
        with self._lock:
            return self._stored.expires_at

    @property
    def key_thumbprint(self) -> str:
        """RFC 7638 thumbprint of the app's current key."""
        with self._lock:
            return self._key.thumbprint()

    @property
    def key_fingerprint(self) -> str:
        """The short fingerprint the owner sees for this app's key."""
        with self._lock:
            return self._key.fingerprint()

    # --- signing ---------------------------------------------------------------------------

    def auth(self) -> PairgateAuth:
        """An `httpx.Auth` signing every request of an `httpx.Client` or `httpx.AsyncClient`."""
        from .auth import PairgateAuth

        return PairgateAuth(self)

    def client(self, **kwargs: Any) -> httpx.Client:
        """An `httpx.Client` addressed at the gateway that signs every request."""
        return httpx.Client(base_url=self.gateway_url, auth=self.auth(), **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An `httpx.AsyncClient` addressed at the gateway that signs every request."""
        return httpx.AsyncClient(base_url=self.gateway_url, auth=self.auth(), **kwargs)

    def sign(self, request: httpx.Request) -> None:
        """Sets `Authorization: DPoP` and a fresh proof binding method, URL, token and body.
        The body must have been read (`requires_request_body`)."""
        body = request.content
        with self._lock:
            token = self._stored.access_token
            proof = create_proof(
                self._key,
                htm=request.method,
                htu=str(request.url),
                iat=_flows.now(),
                access_token=token,
                nonce=self._stored.nonce,
                body=body,
            )
        request.headers["Authorization"] = f"DPoP {token}"
        request.headers["DPoP"] = proof

    def observe(self, response: httpx.Response) -> Retry:
        """Records a nonce the gateway sent; says whether the response asks for a retry."""
        nonce = response.headers.get("dpop-nonce")
        if nonce:
            with self._lock:
                self._stored.nonce = nonce
        if response.status_code != 401:
            return Retry.NO
        challenge = response.headers.get("www-authenticate", "")
        if "use_dpop_nonce" in challenge:
            return Retry.NONCE
        if "invalid_token" in challenge and "expired" in challenge:
            return Retry.REFRESH
        return Retry.NO

    # --- tokens ----------------------------------------------------------------------------

    def _needs_refresh(self) -> str | None:
        """The current access token if it expires within the margin."""
        with self._lock:
            if self._stored.expires_at - _flows.now() < REFRESH_MARGIN_SECS:
                return self._stored.access_token
            return None

    def _refresh_flow(self, if_token: str | None) -> _flows.Flow[None]:
        with self._lock:
            if if_token is not None and self._stored.access_token != if_token:
                return  # another caller refreshed meanwhile
            key, stored = self._key, dataclasses.replace(self._stored)
        if stored.refresh_token is None:
            raise SessionError("no refresh token; pair again")
        nonce = NonceBox(stored.nonce)
        form = [("grant_type", GRANT_TYPE_REFRESH), ("refresh_token", stored.refresh_token)]
        fresh = yield from _flows.token_flow(stored.gateway_url, key, form, nonce)
        self._install(key, fresh)

    def _install(self, key: SigningKey, fresh: StoredSession) -> None:
        self._storage.save(fresh)
        with self._lock:
            self._key, self._stored = key, fresh

    def refresh(self, *, if_token: str | None = None) -> None:
        """Exchanges the refresh token for a new token pair now (the old one dies)."""
        with self._refresh_lock:
            drive(self._refresh_flow(if_token), self._http)

    def _async_refresh_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._async_refresh is None or self._async_refresh[0] is not loop:
                self._async_refresh = (loop, asyncio.Lock())
            return self._async_refresh[1]

    async def refresh_async(self, *, if_token: str | None = None) -> None:
        """`refresh` for async code."""
        async with self._async_refresh_lock():
            await drive_async(self._refresh_flow(if_token), self._async_http)

    def ensure_fresh(self) -> None:
        token = self._needs_refresh()
        if token is not None:
            self.refresh(if_token=token)

    async def ensure_fresh_async(self) -> None:
        token = self._needs_refresh()
        if token is not None:
            await self.refresh_async(if_token=token)

    # --- key rotation ----------------------------------------------------------------------

    def _rotate_flow(self, kind: KeyKind) -> _flows.Flow[None]:
        new = SigningKey.generate(kind)
        with self._lock:
            old, stored = self._key, dataclasses.replace(self._stored)
        fresh = yield from _flows.rotate_key_flow(
            stored.gateway_url, old, new, stored.access_token, NonceBox(stored.nonce)
        )
        self._install(new, fresh)

    def rotate_key(self, kind: KeyKind = KeyKind.ED25519) -> None:
        """Moves the grant to a freshly generated key, proving possession of both keys."""
        self.ensure_fresh()
        drive(self._rotate_flow(kind), self._http)

    async def rotate_key_async(self, kind: KeyKind = KeyKind.ED25519) -> None:
        """`rotate_key` for async code."""
        await self.ensure_fresh_async()
        await drive_async(self._rotate_flow(kind), self._async_http)


def _pair_flow(
    pairing_string: str, key: SigningKey, app_name: str | None, gateway_url: str | None
) -> _flows.Flow[StoredSession]:
    parsed = PairingString.parse(pairing_string)
    gateway = gateway_url or parsed.gateway_url
    form = [("grant_type", GRANT_TYPE_PAIRING), ("pairing_code", pairing_string.strip())]
    if app_name is not None:
        form.append(("client_name", app_name))
    return (yield from _flows.token_flow(gateway, key, form, NonceBox()))


def pair(
    pairing_string: str,
    storage: Storage | None = None,
    *,
    key_kind: KeyKind = KeyKind.ED25519,
    app_name: str | None = None,
    gateway_url: str | None = None,
    http: httpx.Client | None = None,
) -> Session:
    """Redeems a pairing string: generates a key pair here and binds it to a new grant.

    The session is saved in `storage` (memory when None); `gateway_url` overrides the URL inside
    the pairing string; `http` is used for the OAuth calls (a short-lived client otherwise)."""
    key = SigningKey.generate(key_kind)
    stored = drive(_pair_flow(pairing_string, key, app_name, gateway_url), http)
    storage = storage if storage is not None else MemoryStorage()
    storage.save(stored)
    return Session(stored, storage, http=http)


async def pair_async(
    pairing_string: str,
    storage: Storage | None = None,
    *,
    key_kind: KeyKind = KeyKind.ED25519,
    app_name: str | None = None,
    gateway_url: str | None = None,
    http: httpx.AsyncClient | None = None,
) -> Session:
    """`pair` for async code."""
    key = SigningKey.generate(key_kind)
    stored = await drive_async(_pair_flow(pairing_string, key, app_name, gateway_url), http)
    storage = storage if storage is not None else MemoryStorage()
    storage.save(stored)
    return Session(stored, storage, async_http=http)
