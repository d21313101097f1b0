"""`httpx.Auth` that signs every request with the paired key, so any httpx-based client works
unchanged, e.g. `OpenAI(base_url=session.base_url, api_key="unused",
http_client=httpx.Client(auth=session.auth()))`, streaming included (the proof covers the
request body, which httpx hands over before sending; the response streams untouched)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import httpx

from .session import Retry, Session


class PairgateAuth(httpx.Auth):
    """Signs with a `Session`: refreshes a token about to expire, retries once on a nonce
    challenge or an expired token. Any `Authorization` header the client set is replaced."""

    requires_request_body = True

    def __init__(self, session: Session) -> None:
        self.session = session

    def __repr__(self) -> str:
        return f"PairgateAuth({self.session!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # Only reached through sync_auth_flow (async clients use async_auth_flow).
        self.session.sign(request)
        response = yield request
        retry = self.session.observe(response)
        if retry is Retry.NONCE:
            self.session.sign(request)
            yield request
        elif retry is Retry.REFRESH:
            self.session.refresh(if_token=_token_of(request))
            self.session.sign(request)
            yield request

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        self.session.ensure_fresh()
        yield from self.auth_flow(request)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        await self.session.ensure_fresh_async()
        self.session.sign(request)
        response = yield request
        retry = self.session.observe(response)
        if retry is Retry.NONCE:
            self.session.sign(request)
            yield request
        elif retry is Retry.REFRESH:
            await self.session.refresh_async(if_token=_token_of(request))
            self.session.sign(request)
            yield request


def _token_of(request: httpx.Request) -> str | None:
    value = request.headers.get("authorization", "")
    return value[5:] if value.startswith("DPoP ") else None
