// @pairgate/sdk: pair an app with a pairgate gateway and sign every request with a key only the app
// holds (DPoP, RFC 9449). WebCrypto and fetch only: runs in Node 20+ and modern browsers.

export { b64urlDecode, b64urlEncode } from "./b64.js";
export { Client, type FetchLike, type PairOptions, REFRESH_MARGIN_SECS } from "./client.js";
export { PendingConsent } from "./consent.js";
export { accessTokenHash, bodyHash, createProof, newJti, proofClaimsJson, proofHeaderJson, type ProofInput } from "./dpop.js";
export {
  ConsentDeniedError,
  ConsentExpiredError,
  GatewayError,
  PairgateError,
  type PairingStringProblem,
  PairingStringError,
  SessionError,
  StorageError,
} from "./errors.js";
export { fingerprintOf, jwkThumbprint, type KeyKind, type PrivateJwk, type PublicJwk, SigningKey, thumbprintInput } from "./keys.js";
export { normalizeUserCode, PAIRING_PREFIX, PairingString, USER_CODE_ALPHABET } from "./pairing.js";
export { MemoryStorage, type Storage, type StoredSession } from "./storage.js";
