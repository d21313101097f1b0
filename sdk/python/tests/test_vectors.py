"""Checks every value of the shared test vectors (sdk/test-vectors/vectors.json), the same file
the Rust and TypeScript suites check, so the implementations cannot drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import pairgate
from pairgate._b64 import b64d, b64e
from pairgate.proof import claims_json, header_json

VECTORS_PATH = Path(__file__).resolve().parents[2] / "test-vectors" / "vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
KINDS = {"ed25519": pairgate.KeyKind.ED25519, "p256": pairgate.KeyKind.P256}


def key_of(name: str) -> pairgate.SigningKey:
    v = VECTORS[name]
    return pairgate.SigningKey.from_private_bytes(KINDS[name], bytes.fromhex(v["private_hex"]))


@pytest.mark.parametrize("name", sorted(KINDS))
def test_keys_jwks_thumbprints_and_fingerprints(name: str) -> None:
    v, key = VECTORS[name], key_of(name)
    assert key.public_jwk() == v["public_jwk"]
    assert list(key.public_jwk()) == sorted(v["public_jwk"]), "required members, sorted"
    assert key.private_jwk() == v["private_jwk"]
    assert key.thumbprint_input() == v["thumbprint_input"]
    assert key.thumbprint() == v["thumbprint"]
    assert key.fingerprint() == v["fingerprint"]
    assert pairgate.fingerprint(v["thumbprint"]) == v["fingerprint"]
    loaded = pairgate.SigningKey.from_private_jwk(v["private_jwk"])
    assert loaded.thumbprint() == v["thumbprint"]
    tampered = dict(
        v["private_jwk"], x=VECTORS["ed25519" if name == "p256" else "p256"]["public_jwk"]["x"]
    )
    with pytest.raises(ValueError):
        pairgate.SigningKey.from_private_jwk(tampered)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_proofs_are_byte_for_byte_the_vectors(name: str) -> None:
    p, key = VECTORS[name]["proof"], key_of(name)
    body = p["body"].encode()
    assert pairgate.access_token_hash(p["access_token"]) == p["ath"]
    assert pairgate.body_hash(body) == p["bsh"]
    assert header_json(key, p["alg"]) == p["header_json"]
    claims = claims_json(
        jti=p["jti"],
        htm=p["htm"],
        htu=p["htu"],
        iat=p["iat"],
        access_token=p["access_token"],
        body=body,
    )
    assert claims == p["claims_json"]
    compact = pairgate.create_proof(
        key,
        htm=p["htm"],
        htu=p["htu"],
        iat=p["iat"],
        jti=p["jti"],
        access_token=p["access_token"],
        body=body,
        alg=p["alg"],
    )
    assert compact == p["compact"]
    verify(compact, now=p["iat"], htm=p["htm"], htu=p["htu"], token=p["access_token"], body=body)


def verify(compact: str, *, now: int, htm: str, htu: str, token: str, body: bytes) -> None:
    """The checks of docs/protocol.md 5.6 that a client can make on its own proof."""
    h64, c64, s64 = compact.split(".")
    header, claims, sig = json.loads(b64d(h64)), json.loads(b64d(c64)), b64d(s64)
    assert header["typ"] == "dpop+jwt"
    jwk = header["jwk"]
    signing_input = f"{h64}.{c64}".encode()
    if jwk["kty"] == "OKP":
        assert header["alg"] in ("EdDSA", "Ed25519")
        ed25519.Ed25519PublicKey.from_public_bytes(b64d(jwk["x"])).verify(sig, signing_input)
    else:
        assert header["alg"] == "ES256" and len(sig) == 64
        public = ec.EllipticCurvePublicNumbers(
            int.from_bytes(b64d(jwk["x"]), "big"),
            int.from_bytes(b64d(jwk["y"]), "big"),
            ec.SECP256R1(),
        ).public_key()
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    assert (claims["htm"], claims["htu"]) == (htm, htu)
    assert now - 60 <= claims["iat"] <= now + 10
    assert claims["ath"] == pairgate.access_token_hash(token)
    assert claims["bsh"] == pairgate.body_hash(body)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_proof_over_another_body_does_not_verify(name: str) -> None:
    p = VECTORS[name]["proof"]
    with pytest.raises(AssertionError):
        verify(
            p["compact"],
            now=p["iat"],
            htm=p["htm"],
            htu=p["htu"],
            token=p["access_token"],
            body=b"{}",
        )
    forged = p["compact"][:-4] + ("AAAA" if not p["compact"].endswith("AAAA") else "BBBB")
    with pytest.raises((InvalidSignature, ValueError)):
        verify(
            forged,
            now=p["iat"],
            htm=p["htm"],
            htu=p["htu"],
            token=p["access_token"],
            body=p["body"].encode(),
        )


def test_empty_body_hash() -> None:
    assert pairgate.body_hash(b"") == pairgate.proof.EMPTY_BODY_HASH


def test_pairing_string_encodes_and_parses() -> None:
    v = VECTORS["pairing"]
    built = pairgate.PairingString(
        pairing_id=bytes.fromhex(v["id_hex"]),
        secret=bytes.fromhex(v["secret_hex"]),
        gateway_url=v["gateway_url"],
    )
    assert built.encode() == v["encoded"]
    parsed = pairgate.PairingString.parse("  " + v["encoded"] + "\n")
    assert parsed == built
    assert parsed.id == v["pairing_id"]
    assert v["secret_hex"] not in repr(parsed) and "secret" not in repr(parsed)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda s: "x" * 2049, "too long"),
        (lambda s: "pgpair2" + s[7:], "wrong prefix"),
        (lambda s: s.replace(".", "", 2), "wrong prefix"),
        (lambda s: s[: s.rindex(".")], "malformed"),
        (lambda s: s[:-1], "malformed"),
        (lambda s: s[:20] + s[21:], "checksum"),
        (lambda s: s[:20] + "+" + s[21:], "malformed"),
    ],
)
def test_bad_pairing_strings_are_refused_without_echoing_them(mangle: Any, message: str) -> None:
    bad = mangle(VECTORS["pairing"]["encoded"])
    with pytest.raises(pairgate.PairingStringError) as err:
        pairgate.PairingString.parse(bad)
    assert message in str(err.value)
    assert VECTORS["pairing"]["encoded"][8:30] not in str(err.value)


def test_pairing_string_with_a_bad_url_is_refused() -> None:
    for url in [
        "ftp://gateway.example",
        "https://u:p@gateway.example",
        "https://g.example/?q",
        "https://",
    ]:
        payload = b64e(bytes(48) + url.encode())
        text = f"pgpair1.{payload}.{pairgate.pairing._check(payload)}"
        with pytest.raises(pairgate.PairingStringError, match="URL"):
            pairgate.PairingString.parse(text)


@pytest.mark.parametrize("case", VECTORS["user_codes"], ids=lambda c: repr(c["input"]))
def test_user_code_normalisation(case: dict[str, Any]) -> None:
    assert pairgate.normalize_user_code(case["input"]) == case["normalized"]
    if case["normalized"] is not None:
        assert pairgate.normalize_user_code(case["normalized"]) == case["normalized"], "idempotent"
