"""DPoP proofs (RFC 9449) with pairgate's `bsh` body-digest claim, made exactly as
docs/protocol.md section 5.4 says so that the shared test vectors are byte-reproducible."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from ._b64 import b64e
from .keys import SigningKey

#: `H("")`: the body digest of an empty body.
EMPTY_BODY_HASH = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def sha256_b64(data: bytes) -> str:
    """`H(x)`: base64url(SHA-256(x)), 43 characters."""
    return b64e(hashlib.sha256(data).digest())


def access_token_hash(token: str) -> str:
    """The `ath` claim: `H(ASCII access token)`."""
    return sha256_b64(token.encode("ascii"))


def body_hash(body: bytes) -> str:
    """The `bsh` claim: `H(the exact body bytes sent)`."""
    return sha256_b64(body)


def new_jti() -> str:
    """16 random bytes, base64url (22 characters)."""
    return b64e(os.urandom(16))


def header_json(key: SigningKey, alg: str | None = None) -> str:
    return _compact({"typ": "dpop+jwt", "alg": alg or key.default_alg, "jwk": key.public_jwk()})


def claims_json(
    *,
    jti: str,
    htm: str,
    htu: str,
    iat: int,
    access_token: str | None = None,
    nonce: str | None = None,
    body: bytes | None = None,
) -> str:
    """Claims in the fixed order jti, htm, htu, iat, ath, nonce, bsh (absent ones omitted)."""
    claims: dict[str, Any] = {"jti": jti, "htm": htm, "htu": htu, "iat": int(iat)}
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    if body is not None:
        claims["bsh"] = body_hash(body)
    return _compact(claims)


def create_proof(
    key: SigningKey,
    *,
    htm: str,
    htu: str,
    iat: int,
    jti: str | None = None,
    access_token: str | None = None,
    nonce: str | None = None,
    body: bytes | None = None,
    alg: str | None = None,
) -> str:
    """A compact JWS: base64url(header) "." base64url(claims) "." base64url(signature)."""
    claims = claims_json(
        jti=jti if jti is not None else new_jti(),
        htm=htm,
        htu=htu,
        iat=iat,
        access_token=access_token,
        nonce=nonce,
        body=body,
    )
    signing_input = f"{b64e(header_json(key, alg).encode())}.{b64e(claims.encode())}"
    return f"{signing_input}.{b64e(key.sign(signing_input.encode('ascii')))}"
