// DPoP proofs (RFC 9449) as the protocol fixes them: header and claims in a fixed member order,
// `ath` over the access token and pairgate's `bsh` over the exact body bytes (protocol §5).

import { b64urlEncode, randomBytes, sha256, utf8 } from "./b64.js";
import type { SigningKey } from "./keys.js";

/** What a proof is bound to. */
export interface ProofInput {
  /** The HTTP method exactly as sent. */
  htm: string;
  /** The request URL (query and fragment are ignored by the verifier). */
  htu: string;
  /** Creation time, integer Unix seconds. */
  iat: number;
  /** Unique per proof; `newJti()` gives 16 random bytes. */
  jti: string;
  /** Adds `ath` when present. */
  accessToken?: string | undefined;
  /** The latest `DPoP-Nonce` the gateway sent. */
  nonce?: string | undefined;
  /** Adds `bsh` over these exact bytes when present (the SDK always sends it). */
  body?: Uint8Array | undefined;
}

/** `H(x)` of the protocol: base64url(SHA-256(x)). */
export async function hashB64(bytes: Uint8Array): Promise<string> {
  return b64urlEncode(await sha256(bytes));
}

/** `ath`: the hash of the ASCII access token. */
export function accessTokenHash(token: string): Promise<string> {
  return hashB64(utf8(token));
}

/** `bsh`: the hash of the raw request body bytes. */
export function bodyHash(body: Uint8Array): Promise<string> {
  return hashB64(body);
}

/** A fresh `jti`: 16 random bytes, base64url (22 characters). */
export function newJti(): string {
  return b64urlEncode(randomBytes(16));
}

/** `{"typ":"dpop+jwt","alg":…,"jwk":…}` with the JWK's required members only. */
export function proofHeaderJson(key: SigningKey): string {
  return JSON.stringify({ typ: "dpop+jwt", alg: key.alg, jwk: key.publicJwk });
}

/** The claims in the order `jti`, `htm`, `htu`, `iat`, `ath`, `nonce`, `bsh`, compact. */
export async function proofClaimsJson(input: ProofInput): Promise<string> {
  if (!Number.isSafeInteger(input.iat)) throw new TypeError("iat must be an integer number of seconds");
  const claims: Record<string, string | number> = { jti: input.jti, htm: input.htm, htu: input.htu, iat: input.iat };
  if (input.accessToken !== undefined) claims.ath = await accessTokenHash(input.accessToken);
  if (input.nonce !== undefined) claims.nonce = input.nonce;
  if (input.body !== undefined) claims.bsh = await bodyHash(input.body);
  return JSON.stringify(claims);
}

/** A compact JWS DPoP proof by `key` for `input`. */
export async function createProof(key: SigningKey, input: ProofInput): Promise<string> {
  const signingInput = `${b64urlEncode(utf8(proofHeaderJson(key)))}.${b64urlEncode(utf8(await proofClaimsJson(input)))}`;
  const signature = await key.sign(utf8(signingInput));
  return `${signingInput}.${b64urlEncode(signature)}`;
}
