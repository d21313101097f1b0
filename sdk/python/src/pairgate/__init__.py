"""pairgate: pair an app with a pairgate gateway and sign every request with a key only the app
holds (DPoP, RFC 9449, with pairgate's body digest). The wire protocol is docs/protocol.md.

    session = pairgate.pair(pairing_string, pairgate.FileStorage("session.json"))
    client = OpenAI(base_url=session.base_url, api_key="unused",
                    http_client=httpx.Client(auth=session.auth()))
"""

from .auth import PairgateAuth
from .consent import PendingConsent, request_consent, request_consent_async
from .errors import (
    ConsentDenied,
    ConsentExpired,
    GatewayError,
    PairgateError,
    PairingStringError,
    SessionError,
    StorageError,
)
from .keys import KeyKind, SigningKey, fingerprint
from .pairing import PairingString
from .proof import access_token_hash, body_hash, create_proof
from .session import Session, pair, pair_async
from .storage import FileStorage, MemoryStorage, Storage, StoredSession
from .user_code import normalize_user_code

__all__ = [
    "ConsentDenied",
    "ConsentExpired",
    "FileStorage",
    "GatewayError",
    "KeyKind",
    "MemoryStorage",
    "PairgateAuth",
    "PairgateError",
    "PairingString",
    "PairingStringError",
    "PendingConsent",
    "Session",
    "SessionError",
    "SigningKey",
    "Storage",
    "StorageError",
    "StoredSession",
    "access_token_hash",
    "body_hash",
    "create_proof",
    "fingerprint",
    "normalize_user_code",
    "pair",
    "pair_async",
    "request_consent",
    "request_consent_async",
]
__version__ = "0.1.0"
