// Test helper: verifies a compact DPoP proof the way a gateway would for the checks an SDK can get
// wrong (typ, alg, jwk, signature over the signing input, htm, htu, iat, ath, nonce, bsh).

import assert from "node:assert/strict";

import { accessTokenHash, b64urlDecode, bodyHash, type PublicJwk } from "../src/index.js";

export interface Expected {
  htm: string;
  htu: string;
  /** The verifier's clock: the proof's iat must be within [now - 60, now + 10]. */
  now: number;
  accessToken?: string;
  nonce?: string;
  body: Uint8Array;
  jwk?: PublicJwk;
}

function json(part: string): Record<string, unknown> {
  const bytes = b64urlDecode(part);
  assert.ok(bytes, "each part is strict base64url");
  return JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
}

/** Verifies `proof`; returns its header and claims. Throws an assertion error on any mismatch. */
export async function verifyProof(proof: string, e: Expected): Promise<{ header: Record<string, unknown>; claims: Record<string, unknown> }> {
  assert.ok(proof.length <= 8192, "at most 8192 bytes");
  const parts = proof.split(".");
  assert.equal(parts.length, 3, "three parts");
  const [h, c, s] = parts as [string, string, string];
  const header = json(h);
  const claims = json(c);
  assert.equal(header.typ, "dpop+jwt");
  const jwk = header.jwk as PublicJwk;
  if (e.jwk) assert.deepEqual(jwk, e.jwk);
  const ed = jwk.kty === "OKP";
  assert.equal(header.alg, ed ? "EdDSA" : "ES256");
  const algorithm = ed ? { name: "Ed25519" } : { name: "ECDSA", namedCurve: "P-256" };
  const key = await crypto.subtle.importKey("jwk", jwk as JsonWebKey, algorithm, false, ["verify"]);
  const signature = b64urlDecode(s);
  assert.ok(signature && signature.length === 64, "a 64-byte signature (raw r||s for ES256)");
  const ok = await crypto.subtle.verify(ed ? { name: "Ed25519" } : { name: "ECDSA", hash: "SHA-256" }, key, new Uint8Array(signature), new TextEncoder().encode(`${h}.${c}`));
  assert.ok(ok, "the signature verifies");
  assert.equal(typeof claims.jti, "string");
  assert.ok((claims.jti as string).length >= 1 && (claims.jti as string).length <= 128);
  assert.equal(claims.htm, e.htm);
  assert.equal(claims.htu, e.htu);
  assert.ok(Number.isInteger(claims.iat), "iat is an integer");
  assert.ok((claims.iat as number) >= e.now - 60 && (claims.iat as number) <= e.now + 10, "iat within the window");
  if (e.accessToken !== undefined) assert.equal(claims.ath, await accessTokenHash(e.accessToken));
  else assert.equal(claims.ath, undefined);
  assert.equal(claims.nonce, e.nonce);
  assert.equal(claims.bsh, await bodyHash(e.body));
  return { header, claims };
}
