"""Fixtures for the tests that talk to a real gateway. `cargo test -p pairgate --test e2e
sdk_python` starts `pairgate serve` and a fake provider, logs in as the owner and runs this suite
with PAIRGATE_TEST_* variables; without them those tests fail (never skip) saying so."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

#: What the fake provider answers (tests/src/fake.rs `REPLY`).
REPLY = "Hello from the fake provider"
HOW = "run it through `cargo xtask test` (or `cargo test -p pairgate --test e2e sdk_python`)"


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: this test needs a running gateway; {HOW}")
    return value


@dataclass
class Owner:
    """The gateway's owner, logged in over the admin API (session cookie and CSRF token)."""

    base: str
    cookie: str
    csrf: str

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"cookie": self.cookie}, timeout=30)

    def get(self, path: str) -> Any:
        with self._client() as c:
            res = c.get(path)
        assert res.status_code == 200, res.text
        return res.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        with self._client() as c:
            res = c.post(path, json=body, headers={"x-csrf-token": self.csrf})
        assert res.status_code == 200, res.text
        return res.json()

    def pairing_string(self, policy: dict[str, Any] | None = None, app: str = "python app") -> str:
        body: dict[str, Any] = {"app_name": app, "ttl_secs": 300}
        if policy is not None:
            body["policy"] = policy
        text = self.post("/admin/api/pairings", body)["pairing_string"]
        assert isinstance(text, str)
        return text


@pytest.fixture(scope="session")
def gateway() -> str:
    return env("PAIRGATE_TEST_GATEWAY")


@pytest.fixture(scope="session")
def owner(gateway: str) -> Owner:
    return Owner(gateway, env("PAIRGATE_TEST_OWNER_COOKIE"), env("PAIRGATE_TEST_OWNER_CSRF"))


@pytest.fixture(scope="session")
def cli_pairing_string() -> str:
    """Made by `pairgate pair create --require-body-hash` (proofs without `bsh` are refused)."""
    return env("PAIRGATE_TEST_PAIRING")


@pytest.fixture(scope="session")
def short_ttl_pairing_string() -> str:
    """For a second gateway whose access tokens live 3 seconds."""
    return env("PAIRGATE_TEST_SHORT_TTL_PAIRING")
