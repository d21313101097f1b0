"""The gateway's OAuth exchanges written once, without I/O: each flow is a generator that yields
`httpx.Request`s and receives their `httpx.Response`s, so a sync and an async driver can both run
it. Every flow retries once when the gateway asks for a fresh DPoP nonce."""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx

from .errors import GatewayError, SessionError
from .keys import SigningKey
from .proof import create_proof
from .storage import StoredSession

T = TypeVar("T")
Flow = Generator[httpx.Request, httpx.Response, T]

GRANT_TYPE_PAIRING = "urn:pairgate:params:oauth:grant-type:pairing"
GRANT_TYPE_DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_TYPE_REFRESH = "refresh_token"
USE_DPOP_NONCE = "use_dpop_nonce"
#: OAuth calls made with a client the SDK creates itself use this timeout (seconds).
DEFAULT_TIMEOUT = 30.0


def now() -> int:
    return int(time.time())


def join(base: str, path: str) -> str:
    return base.rstrip("/") + path


@dataclass
class NonceBox:
    """The latest `DPoP-Nonce` the gateway sent, shared by the requests of one flow."""

    value: str | None = None

    def observe(self, response: httpx.Response) -> None:
        nonce = response.headers.get("dpop-nonce")
        if nonce:
            self.value = nonce


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        value = json.loads(response.content)
    except ValueError:
        raise SessionError("the gateway answered something that is not JSON") from None
    if not isinstance(value, dict):
        raise SessionError("the gateway answered something that is not a JSON object")
    return value


def oauth_post(
    url: str, key: SigningKey, form: list[tuple[str, str]], nonce: NonceBox
) -> Flow[dict[str, Any]]:
    """A form POST to an OAuth endpoint with a proof by `key`."""
    body = urlencode(form).encode("ascii")
    for attempt in range(2):
        proof = create_proof(key, htm="POST", htu=url, iat=now(), nonce=nonce.value, body=body)
        response = yield httpx.Request(
            "POST",
            url,
            headers={"content-type": "application/x-www-form-urlencoded", "dpop": proof},
            content=body,
        )
        nonce.observe(response)
        if response.is_success:
            return _json_object(response)
        err = GatewayError.from_body(response.status_code, response.content)
        if attempt == 0 and err.code == USE_DPOP_NONCE and nonce.value:
            continue
        raise err
    raise SessionError("the gateway kept asking for a new nonce")


def session_from(
    gateway_url: str, key: SigningKey, token: dict[str, Any], nonce: str | None
) -> StoredSession:
    """A stored session from a token response (docs/protocol.md section 7)."""
    access, expires_in, grant = (
        token.get("access_token"),
        token.get("expires_in"),
        token.get("grant_id"),
    )
    refresh = token.get("refresh_token")
    if (
        not isinstance(access, str)
        or not isinstance(expires_in, int)
        or not isinstance(grant, str)
        or not (refresh is None or isinstance(refresh, str))
        or token.get("token_type") != "DPoP"
    ):
        raise SessionError("unexpected token response")
    return StoredSession(
        gateway_url=gateway_url.rstrip("/"),
        private_jwk=key.private_jwk(),
        access_token=access,
        refresh_token=refresh,
        expires_at=now() + expires_in,
        grant_id=grant,
        nonce=nonce,
    )


def token_flow(
    gateway_url: str, key: SigningKey, form: list[tuple[str, str]], nonce: NonceBox
) -> Flow[StoredSession]:
    """A token request (pairing, device code or refresh) ending in a stored session."""
    token = yield from oauth_post(join(gateway_url, "/oauth/token"), key, form, nonce)
    return session_from(gateway_url, key, token, nonce.value)


def rotate_key_flow(
    gateway_url: str, old: SigningKey, new: SigningKey, access_token: str, nonce: NonceBox
) -> Flow[StoredSession]:
    """Moves the grant to `new`, proving possession of both keys (docs/protocol.md 8.7)."""
    url = join(gateway_url, "/v1/grant/rotate-key")
    for attempt in range(2):
        proofs = [
            create_proof(
                k,
                htm="POST",
                htu=url,
                iat=now(),
                access_token=access_token,
                nonce=nonce.value,
                body=b"",
            )
            for k in (old, new)
        ]
        response = yield httpx.Request(
            "POST",
            url,
            headers={
                "authorization": f"DPoP {access_token}",
                "dpop": proofs[0],
                "new-dpop": proofs[1],
            },
        )
        nonce.observe(response)
        if response.is_success:
            return session_from(gateway_url, new, _json_object(response), nonce.value)
        err = GatewayError.from_body(response.status_code, response.content)
        if not (attempt == 0 and err.code == USE_DPOP_NONCE):
            raise err
    raise SessionError("the gateway kept asking for a new nonce")


def drive(flow: Flow[T], http: httpx.Client | None) -> T:
    """Runs a flow with a blocking client (a short-lived one when `http` is None)."""
    if http is None:
        with httpx.Client(timeout=DEFAULT_TIMEOUT) as own:
            return drive(flow, own)
    try:
        request = next(flow)
        while True:
            request = flow.send(http.send(request))
    except StopIteration as done:
        result: T = done.value
        return result
    except httpx.HTTPError as e:
        raise SessionError(f"cannot reach the gateway: {type(e).__name__}") from e


async def drive_async(flow: Flow[T], http: httpx.AsyncClient | None) -> T:
    """Runs a flow with an async client (a short-lived one when `http` is None)."""
    if http is None:
        async with httpx.AsyncClient(timeout=DEFAULT_TIMEOUT) as own:
            return await drive_async(flow, own)
    try:
        request = next(flow)
        while True:
            request = flow.send(await http.send(request))
    except StopIteration as done:
        result: T = done.value
        return result
    except httpx.HTTPError as e:
        raise SessionError(f"cannot reach the gateway: {type(e).__name__}") from e
