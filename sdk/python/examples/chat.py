"""Pair once with a pairing string, then chat through the official `openai` package.

    PAIRGATE_PAIRING='pgpair1...' python examples/chat.py

The session (key and tokens) is kept in PAIRGATE_SESSION (default `pairgate-session.json`,
mode 0600); later runs reuse it and need no pairing string."""

from __future__ import annotations

import os

import httpx
from openai import OpenAI

import pairgate


def main() -> None:
    storage = pairgate.FileStorage(os.environ.get("PAIRGATE_SESSION", "pairgate-session.json"))
    session = pairgate.Session.from_storage(storage)
    if session is None:
        session = pairgate.pair(os.environ["PAIRGATE_PAIRING"], storage, app_name="chat example")
        print(f"paired: grant {session.grant_id}, key {session.key_fingerprint}")
    client = OpenAI(
        base_url=session.base_url, api_key="unused", http_client=httpx.Client(auth=session.auth())
    )
    stream = client.chat.completions.create(
        model=os.environ.get("PAIRGATE_MODEL", "openai/gpt-4o-mini"),
        messages=[{"role": "user", "content": "Say hello in five words."}],
        stream=True,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()


if __name__ == "__main__":
    main()
