"""The app's signing key: Ed25519 or ECDSA P-256, its public JWK, thumbprint and fingerprint
(docs/protocol.md section 4), and the private JWK the SDK stores."""

from __future__ import annotations

import hashlib
import hmac
import json
from enum import Enum
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from ._b64 import b64d, b64e


class KeyKind(str, Enum):
    """The key types the gateway accepts."""

    ED25519 = "Ed25519"
    P256 = "P-256"


_PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SigningKey:
    """A private key able to sign DPoP proofs. `repr` never shows the private part."""

    def __init__(self, key: _PrivateKey) -> None:
        if isinstance(key, ec.EllipticCurvePrivateKey) and not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("only the P-256 curve is supported")
        self._key = key

    @classmethod
    def generate(cls, kind: KeyKind = KeyKind.ED25519) -> SigningKey:
        """A new random key from the operating system's secure generator."""
        if KeyKind(kind) is KeyKind.ED25519:
            return cls(ed25519.Ed25519PrivateKey.generate())
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_private_bytes(cls, kind: KeyKind, private: bytes) -> SigningKey:
        """Ed25519: the 32-byte seed; P-256: the 32-byte big-endian scalar."""
        if len(private) != 32:
            raise ValueError("a private key is 32 bytes")
        if KeyKind(kind) is KeyKind.ED25519:
            return cls(ed25519.Ed25519PrivateKey.from_private_bytes(private))
        return cls(ec.derive_private_key(int.from_bytes(private, "big"), ec.SECP256R1()))

    @classmethod
    def from_private_jwk(cls, jwk: dict[str, Any]) -> SigningKey:
        """Loads a stored private JWK, checking that its public part matches the private one."""
        try:
            kty, crv, d = jwk["kty"], jwk["crv"], b64d(jwk["d"])
            if (kty, crv) == ("OKP", "Ed25519"):
                key = cls.from_private_bytes(KeyKind.ED25519, d)
            elif (kty, crv) == ("EC", "P-256"):
                key = cls.from_private_bytes(KeyKind.P256, d)
            else:
                raise ValueError("unsupported key type")
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a usable private JWK: {type(e).__name__}") from None
        public = key.public_jwk()
        if any(jwk.get(k) != v for k, v in public.items()):
            raise ValueError("the private JWK's public part does not match its private part")
        return key

    @property
    def kind(self) -> KeyKind:
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return KeyKind.ED25519
        return KeyKind.P256

    @property
    def default_alg(self) -> str:
        """The `alg` this SDK writes: `EdDSA` or `ES256`."""
        return "EdDSA" if self.kind is KeyKind.ED25519 else "ES256"

    def _private_bytes(self) -> bytes:
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return self._key.private_numbers().private_value.to_bytes(32, "big")

    def public_jwk(self) -> dict[str, str]:
        """The public JWK with its required members only, in lexicographic order."""
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            x = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            return {"crv": "Ed25519", "kty": "OKP", "x": b64e(x)}
        point = self._key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return {"crv": "P-256", "kty": "EC", "x": b64e(point[1:33]), "y": b64e(point[33:65])}

    def private_jwk(self) -> dict[str, str]:
        """The public JWK plus `d`: for the SDK's own storage only, never the wire."""
        jwk = dict(self.public_jwk())
        jwk["d"] = b64e(self._private_bytes())
        return dict(sorted(jwk.items()))

    def thumbprint_input(self) -> str:
        return _compact(self.public_jwk())

    def thumbprint(self) -> str:
        """RFC 7638 SHA-256 thumbprint (`jkt`), base64url."""
        return b64e(hashlib.sha256(self.thumbprint_input().encode()).digest())

    def fingerprint(self) -> str:
        """What a human compares during consent: the thumbprint's first 16 characters, 4 x 4."""
        return fingerprint(self.thumbprint())

    def sign(self, message: bytes) -> bytes:
        """Ed25519: 64 bytes (RFC 8032); ES256: raw r || s over SHA-256, RFC 6979 nonces."""
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(message)
        der = self._key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def same_as(self, other: SigningKey) -> bool:
        return hmac.compare_digest(self.thumbprint(), other.thumbprint())

    def __repr__(self) -> str:
        return f"SigningKey({self.kind.value}, thumbprint={self.thumbprint()})"


def fingerprint(thumbprint: str) -> str:
    """`kPrK_qmxVWaYVA9w...` becomes `kPrK-_qmx-VWaY-VA9w`."""
    head = thumbprint[:16]
    return "-".join(head[i : i + 4] for i in range(0, 16, 4))
