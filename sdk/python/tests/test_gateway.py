"""The SDK against a real `pairgate serve` (with DPoP nonces required) and a fake OpenAI provider:
the official `openai` package, paired through this SDK, sync and async, streamed and not; rate
limits and revocation surface as OpenAI errors; refresh, nonce retry, consent and key rotation."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
import time
from pathlib import Path

import httpx
import openai
import pytest
from conftest import REPLY, Owner

import pairgate

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
CHAT_MODEL = "openai/gpt-4o-mini"


def openai_client(session: pairgate.Session, http: httpx.Client | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=session.base_url,
        api_key="unused",
        http_client=http or httpx.Client(auth=session.auth()),
        max_retries=0,
    )


def test_openai_chat_embeddings_and_models_through_a_pairing_string(
    cli_pairing_string: str, tmp_path: Path
) -> None:
    storage = pairgate.FileStorage(tmp_path / "session.json")
    session = pairgate.pair(cli_pairing_string, storage, app_name="python sdk test")
    assert stat.S_IMODE((tmp_path / "session.json").stat().st_mode) == 0o600
    client = openai_client(session)

    reply = client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    assert reply.choices[0].message.content == REPLY
    assert reply.usage is not None and reply.usage.prompt_tokens == 11

    stream = client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "tok0 tok1 tok2 "

    emb = client.embeddings.create(model="openai/text-embedding-3-small", input="hi")
    assert emb.data[0].embedding == [0.1, 0.2, 0.3]

    ids = [m.id for m in client.models.list()]
    assert CHAT_MODEL in ids, ids

    # The session resumes from its file in another "run".
    resumed = pairgate.Session.from_storage(storage)
    assert resumed is not None and resumed.grant_id == session.grant_id
    assert openai_client(resumed).models.retrieve(CHAT_MODEL).id == CHAT_MODEL

    # A pairing string redeems once.
    with pytest.raises(pairgate.GatewayError) as err:
        pairgate.pair(cli_pairing_string)
    assert err.value.code == "pairing_already_used"
    assert cli_pairing_string not in str(err.value)


def test_async_openai_streams_and_answers_with_a_p256_key(owner: Owner) -> None:
    async def run() -> None:
        session = await pairgate.pair_async(owner.pairing_string(), key_kind=pairgate.KeyKind.P256)
        async with httpx.AsyncClient(auth=session.auth()) as http:
            client = openai.AsyncOpenAI(
                base_url=session.base_url, api_key="unused", http_client=http, max_retries=0
            )
            reply = await client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
            assert reply.choices[0].message.content == REPLY
            stream = await client.chat.completions.create(
                model=CHAT_MODEL,
                messages=MESSAGES,
                stream=True,
            )
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            assert "".join(parts) == "tok0 tok1 tok2 "
            emb = await client.embeddings.create(model="openai/text-embedding-3-small", input="x")
            assert emb.data[0].embedding == [0.1, 0.2, 0.3]
            # Refreshing from async code, then the next call signs with the new token.
            before = session.expires_at
            await session.refresh_async()
            assert session.expires_at >= before
            assert (await client.models.retrieve(CHAT_MODEL)).id == CHAT_MODEL

    asyncio.run(run())


def test_a_rate_limit_surfaces_as_openai_rate_limit_error(owner: Owner) -> None:
    session = pairgate.pair(owner.pairing_string({"requests_per_minute": 2}))
    client = openai_client(session)
    for _ in range(2):
        client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    e = err.value
    assert e.status_code == 429
    assert (e.code, e.type) == ("rate_limit_exceeded", "rate_limit_error"), e.body
    assert e.response.headers.get("x-ratelimit-limit-requests") == "2"


def test_a_revoked_grant_surfaces_as_openai_authentication_error(owner: Owner) -> None:
    session = pairgate.pair(owner.pairing_string())
    client = openai_client(session)
    assert client.models.retrieve(CHAT_MODEL).id == CHAT_MODEL
    revoked = owner.post(f"/admin/api/grants/{session.grant_id}/revoke", {})
    assert revoked["status"] == "revoked"
    for stream in (False, True):
        with pytest.raises(openai.AuthenticationError) as err:
            client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=stream)
        e = err.value
        assert e.status_code == 401
        assert e.code == "grant_revoked", e.body
        assert isinstance(e.message, str) and "revoked" in e.message
    with pytest.raises(pairgate.GatewayError) as gerr:
        session.refresh()
    # docs/protocol.md 8.6: a revoked grant's refresh token is refused (invalid_grant or
    # grant_revoked); either way the SDK raises the gateway's code.
    assert gerr.value.code in ("invalid_grant", "grant_revoked"), gerr.value


def test_refresh_rotates_tokens_and_the_old_refresh_token_dies(
    owner: Owner, tmp_path: Path
) -> None:
    storage = pairgate.FileStorage(tmp_path / "s.json")
    session = pairgate.pair(owner.pairing_string(), storage)
    old = storage.load()
    assert old is not None
    session.refresh()
    new = storage.load()
    assert new is not None and new.access_token != old.access_token
    assert new.refresh_token != old.refresh_token
    with pytest.raises(pairgate.GatewayError) as err:
        pairgate.Session(old).refresh()
    assert err.value.code == "invalid_grant"
    # Presented again by its own key, the used token ended the whole token family (RFC 9700):
    # one of two holders of the key is not the app, so the successor is dead too.
    with pytest.raises(pairgate.GatewayError) as err:
        pairgate.Session(new).refresh()
    assert err.value.code == "invalid_grant"


def test_a_resumed_session_whose_token_expired_refreshes_before_its_first_request(
    owner: Owner, tmp_path: Path
) -> None:
    storage = pairgate.FileStorage(tmp_path / "s.json")
    pairgate.pair(owner.pairing_string(), storage)
    new = storage.load()
    assert new is not None
    storage.save(dataclasses.replace(new, expires_at=0))
    resumed = pairgate.Session.from_storage(storage)
    assert resumed is not None
    assert openai_client(resumed).models.retrieve(CHAT_MODEL).id == CHAT_MODEL
    after = storage.load()
    assert after is not None and after.expires_at > 0 and after.access_token != new.access_token


def test_a_token_the_gateway_calls_expired_is_refreshed_and_the_request_retried(
    short_ttl_pairing_string: str,
) -> None:
    storage = pairgate.MemoryStorage()
    pairgate.pair(short_ttl_pairing_string, storage)
    stored = storage.load()
    assert stored is not None
    # The app believes its token is good for an hour; the gateway says it expired after 3 s.
    storage.save(dataclasses.replace(stored, expires_at=stored.expires_at + 3600))
    session = pairgate.Session.from_storage(storage)
    assert session is not None
    time.sleep(4)
    statuses: list[int] = []
    http = httpx.Client(
        auth=session.auth(), event_hooks={"response": [lambda r: statuses.append(r.status_code)]}
    )
    assert openai_client(session, http).models.retrieve(CHAT_MODEL).id == CHAT_MODEL
    assert statuses == [401, 200]
    after = storage.load()
    assert after is not None and after.access_token != stored.access_token


def test_a_stale_nonce_is_retried_once_with_the_gateways_nonce(owner: Owner) -> None:
    storage = pairgate.MemoryStorage()
    pairgate.pair(owner.pairing_string(), storage)
    stored = storage.load()
    assert stored is not None and stored.nonce, "the gateway requires nonces and sent one"
    storage.save(dataclasses.replace(stored, nonce="stale-nonce"))
    session = pairgate.Session.from_storage(storage)
    assert session is not None
    statuses: list[int] = []
    http = httpx.Client(
        auth=session.auth(), event_hooks={"response": [lambda r: statuses.append(r.status_code)]}
    )
    assert openai_client(session, http).models.retrieve(CHAT_MODEL).id == CHAT_MODEL
    assert statuses == [401, 200]
    # The fresh nonce is kept: the next request needs no retry (streamed, body digest included).
    stream = openai_client(session, http).chat.completions.create(
        model=CHAT_MODEL,
        messages=MESSAGES,
        stream=True,
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert statuses == [401, 200, 200]


def test_consent_flow_approved_and_denied_by_the_owner(owner: Owner, gateway: str) -> None:
    pending = pairgate.request_consent(gateway, "python consent app", {"models": ["openai/*"]})
    assert pairgate.normalize_user_code(pending.user_code) == pending.user_code
    assert pending.poll_once() is None, "pending until the owner decides"
    listed = owner.get("/admin/api/consents")["data"]
    mine = [c for c in listed if c["user_code"] == pending.user_code]
    assert mine and mine[0]["key_fingerprint"] == pending.key_fingerprint
    owner.post(f"/admin/api/consents/{pending.user_code}/approve", {})
    session = pending.wait(timeout=60)
    assert session.key_fingerprint == pending.key_fingerprint
    assert openai_client(session).models.retrieve(CHAT_MODEL).id == CHAT_MODEL

    async def denied() -> None:
        p = await pairgate.request_consent_async(gateway, "python denied app")
        owner.post(f"/admin/api/consents/{p.user_code}/deny", {})
        with pytest.raises(pairgate.ConsentDenied):
            await p.wait_async(timeout=60)

    asyncio.run(denied())


def test_key_rotation_moves_the_grant_to_a_new_key(owner: Owner) -> None:
    session = pairgate.pair(owner.pairing_string())
    client = openai_client(session)
    before = session.key_thumbprint
    session.rotate_key(pairgate.KeyKind.P256)
    assert session.key_thumbprint != before
    assert client.models.retrieve(CHAT_MODEL).id == CHAT_MODEL
    grant = owner.get(f"/admin/api/grants/{session.grant_id}")
    assert session.key_fingerprint in str(grant) or session.key_thumbprint in str(grant), grant


def test_the_example_runs(owner: Owner, tmp_path: Path) -> None:
    """examples/chat.py, as a user would run it."""
    import runpy
    import sys

    example = Path(__file__).resolve().parents[1] / "examples" / "chat.py"
    os.environ["PAIRGATE_PAIRING"] = owner.pairing_string()
    os.environ["PAIRGATE_SESSION"] = str(tmp_path / "example-session.json")
    argv = sys.argv
    try:
        sys.argv = [str(example)]
        runpy.run_path(str(example), run_name="__main__")
    finally:
        sys.argv = argv
        del os.environ["PAIRGATE_PAIRING"], os.environ["PAIRGATE_SESSION"]
    assert (tmp_path / "example-session.json").exists()
