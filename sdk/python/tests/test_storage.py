"""Session storage: a 0600 file replaced atomically (same JSON as the Rust SDK), or memory;
neither `repr` nor errors show tokens or key material."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import pairgate


def stored() -> pairgate.StoredSession:
    key = pairgate.SigningKey.generate(pairgate.KeyKind.P256)
    return pairgate.StoredSession(
        gateway_url="http://127.0.0.1:1",
        private_jwk=key.private_jwk(),
        access_token="secret-access",
        refresh_token="secret-refresh",
        expires_at=1,
        grant_id="gr_1",
    )


def test_file_storage_round_trips_with_owner_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    s = pairgate.FileStorage(path)
    assert s.load() is None
    # A stale temporary file with loose permissions must not leak into the saved file's mode.
    (tmp_path / f"session.json.tmp{os.getpid()}").write_text("{}")
    os.chmod(tmp_path / f"session.json.tmp{os.getpid()}", 0o644)
    s.save(stored())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = s.load()
    assert loaded is not None and loaded == stored().__class__(**{**loaded.to_json()})
    assert loaded.grant_id == "gr_1" and loaded.access_token == "secret-access"
    assert sorted(json.loads(path.read_text())) == [
        "access_token",
        "expires_at",
        "gateway_url",
        "grant_id",
        "nonce",
        "private_jwk",
        "refresh_token",
    ], "the Rust SDK's session file format"
    assert [p.name for p in tmp_path.iterdir()] == ["session.json"], "no temporary file left"


def test_a_rust_sdk_session_file_loads(tmp_path: Path) -> None:
    key = pairgate.SigningKey.generate()
    rust = {  # as serde writes it: `nonce` may be absent
        "gateway_url": "https://gw.example",
        "private_jwk": key.private_jwk(),
        "access_token": "a",
        "refresh_token": None,
        "expires_at": 5,
        "grant_id": "gr_x",
    }
    (tmp_path / "s.json").write_text(json.dumps(rust))
    session = pairgate.Session.from_storage(pairgate.FileStorage(tmp_path / "s.json"))
    assert session is not None and session.key_thumbprint == key.thumbprint()


def test_broken_files_are_session_errors_without_contents(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"access_token": "secret-access"')
    with pytest.raises(pairgate.SessionError) as err:
        pairgate.FileStorage(path).load()
    assert "secret" not in str(err.value)
    with pytest.raises(pairgate.StorageError):
        pairgate.FileStorage(tmp_path / "missing-dir" / "s.json").save(stored())


def test_memory_storage_keeps_a_copy() -> None:
    m = pairgate.MemoryStorage()
    assert m.load() is None
    s = stored()
    m.save(s)
    s.access_token = "changed"
    loaded = m.load()
    assert loaded is not None and loaded.access_token == "secret-access"


def test_reprs_hide_tokens_and_keys() -> None:
    s = stored()
    texts = [repr(s), repr(pairgate.SigningKey.from_private_jwk(s.private_jwk))]
    session = pairgate.Session(s)
    texts += [repr(session), repr(session.auth())]
    for text in texts:
        assert "secret" not in text and s.private_jwk["d"] not in text, text


def test_a_tampered_private_jwk_is_refused() -> None:
    s = stored()
    s.private_jwk = dict(
        s.private_jwk, d=pairgate.SigningKey.generate(pairgate.KeyKind.P256).private_jwk()["d"]
    )
    with pytest.raises(pairgate.SessionError):
        pairgate.Session(s)
