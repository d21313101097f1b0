// Checks every value of the shared test vectors (sdk/test-vectors/vectors.json) that applies to an
// SDK: keys from private_hex and private_jwk, thumbprints, fingerprints, ath, bsh, header and claims
// JSON, the proofs (Ed25519 byte-for-byte; ES256 by its signing input and signatures, see below),
// the pairing string and id, and the user-code normalisations.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  accessTokenHash,
  b64urlDecode,
  b64urlEncode,
  bodyHash,
  createProof,
  fingerprintOf,
  jwkThumbprint,
  type KeyKind,
  normalizeUserCode,
  PairingString,
  PairingStringError,
  proofClaimsJson,
  proofHeaderJson,
  type PublicJwk,
  SigningKey,
  thumbprintInput,
} from "../src/index.js";
import { hexToBytes } from "../src/b64.js";
import { verifyProof } from "./verify.js";

interface ProofVector {
  alg: string;
  htm: string;
  htu: string;
  iat: number;
  jti: string;
  access_token: string;
  body: string;
  ath: string;
  bsh: string;
  header_json: string;
  claims_json: string;
  compact: string;
}

interface KeyVector {
  private_hex: string;
  private_jwk: Record<string, string>;
  public_jwk: PublicJwk;
  thumbprint_input: string;
  thumbprint: string;
  fingerprint: string;
  proof: ProofVector;
}

interface Vectors {
  ed25519: KeyVector;
  p256: KeyVector;
  pairing: { id_hex: string; secret_hex: string; gateway_url: string; pairing_id: string; encoded: string };
  user_codes: { input: string; normalized: string | null }[];
  pairing_errors: { input: string; error: string }[];
}

const vectors = JSON.parse(readFileSync(new URL("../../../test-vectors/vectors.json", import.meta.url), "utf8")) as Vectors;
const enc = new TextEncoder();

const cases: [KeyKind, KeyVector][] = [
  ["ed25519", vectors.ed25519],
  ["p256", vectors.p256],
];

for (const [kind, v] of cases) {
  test(`${kind}: keys from private_hex and private_jwk give the vector's JWKs, thumbprint and fingerprint`, async () => {
    const fromHex = await SigningKey.fromPrivateBytes(kind, hexToBytes(v.private_hex));
    const fromJwk = await SigningKey.fromPrivateJwk(v.private_jwk);
    for (const key of [fromHex, fromJwk]) {
      assert.equal(key.kind, kind);
      assert.deepEqual(key.publicJwk, v.public_jwk);
      assert.deepEqual(key.toPrivateJwk(), v.private_jwk);
      assert.equal(JSON.stringify(key.toPrivateJwk()), JSON.stringify(v.private_jwk), "members in lexicographic order");
      assert.equal(key.thumbprint, v.thumbprint);
      assert.equal(key.fingerprint, v.fingerprint);
      assert.equal(key.alg, v.proof.alg);
    }
    assert.equal(thumbprintInput(v.public_jwk), v.thumbprint_input);
    assert.equal(await jwkThumbprint(v.public_jwk), v.thumbprint);
    assert.equal(fingerprintOf(v.thumbprint), v.fingerprint);
  });

  test(`${kind}: ath, bsh, header and claims JSON are byte-identical to the vector`, async () => {
    const key = await SigningKey.fromPrivateJwk(v.private_jwk);
    const p = v.proof;
    assert.equal(await accessTokenHash(p.access_token), p.ath);
    assert.equal(await bodyHash(enc.encode(p.body)), p.bsh);
    assert.equal(proofHeaderJson(key), p.header_json);
    const claims = await proofClaimsJson({ htm: p.htm, htu: p.htu, iat: p.iat, jti: p.jti, accessToken: p.access_token, body: enc.encode(p.body) });
    assert.equal(claims, p.claims_json);
  });

  test(`${kind}: the vector's proof verifies with now = iat, its token and body`, async () => {
    const p = v.proof;
    const { claims } = await verifyProof(p.compact, { htm: p.htm, htu: p.htu, now: p.iat, accessToken: p.access_token, body: enc.encode(p.body), jwk: v.public_jwk });
    assert.equal(claims.jti, p.jti);
    assert.equal(await jwkThumbprint(v.public_jwk), v.thumbprint);
  });

  test(`${kind}: our proof for the vector's input matches it (${kind === "ed25519" ? "byte-for-byte" : "same signing input, valid signature"})`, async () => {
    const key = await SigningKey.fromPrivateBytes(kind, hexToBytes(v.private_hex));
    const p = v.proof;
    const ours = await createProof(key, { htm: p.htm, htu: p.htu, iat: p.iat, jti: p.jti, accessToken: p.access_token, body: enc.encode(p.body) });
    const signingInput = (s: string) => s.split(".").slice(0, 2).join(".");
    assert.equal(signingInput(ours), signingInput(p.compact));
    assert.equal(signingInput(ours), `${b64urlEncode(enc.encode(p.header_json))}.${b64urlEncode(enc.encode(p.claims_json))}`);
    if (kind === "ed25519") {
      // Ed25519 is deterministic (RFC 8032): the whole proof must be identical.
      assert.equal(ours, p.compact);
    } else {
      // WebCrypto's ECDSA draws a random nonce (no RFC 6979), so the signature differs from the
      // vector's; both must verify under the vector's public key.
      await verifyProof(ours, { htm: p.htm, htu: p.htu, now: p.iat, accessToken: p.access_token, body: enc.encode(p.body), jwk: v.public_jwk });
      const again = await createProof(key, { htm: p.htm, htu: p.htu, iat: p.iat, jti: p.jti, accessToken: p.access_token, body: enc.encode(p.body) });
      assert.notEqual(again, ours, "randomised ECDSA nonces: a repeat gives another signature");
    }
  });
}

test("a stored key whose public part belongs to another key is refused", async () => {
  const mixed = { ...vectors.ed25519.private_jwk, x: (await SigningKey.generate("ed25519")).publicJwk.x };
  await assert.rejects(SigningKey.fromPrivateJwk(mixed), /does not match|not a valid key/);
  const mixedEc = { ...vectors.p256.private_jwk, y: vectors.p256.private_jwk.x };
  await assert.rejects(SigningKey.fromPrivateJwk(mixedEc), (e: Error) => !e.message.includes(vectors.p256.private_jwk.d!));
  await assert.rejects(SigningKey.fromPrivateJwk({ ...vectors.ed25519.private_jwk, kty: "oct" }), /neither/);
  await assert.rejects(SigningKey.fromPrivateJwk({ ...vectors.ed25519.private_jwk, d: "AA" }), /32 bytes/);
});

test("the pairing vector encodes and parses to its id, secret and URL", async () => {
  const v = vectors.pairing;
  const built = new PairingString(hexToBytes(v.id_hex), hexToBytes(v.secret_hex), v.gateway_url);
  assert.equal(await built.encode(), v.encoded);
  assert.equal(built.pairingId, v.pairing_id);
  const parsed = await PairingString.parse(`  ${v.encoded}\n`);
  assert.equal(parsed.gatewayUrl, v.gateway_url);
  assert.equal(parsed.pairingId, v.pairing_id);
  assert.equal(await parsed.encode(), v.encoded);
  assert.ok(!JSON.stringify(parsed).includes(v.encoded.split(".")[1]!), "JSON of a pairing string never shows the secret");
});

test("every pairing_errors input is refused with the named error, never echoing the input", async () => {
  assert.ok(vectors.pairing_errors.length >= 5);
  const seen = new Set<string>();
  for (const { input, error } of vectors.pairing_errors) {
    await assert.rejects(PairingString.parse(input), (e: unknown) => {
      assert.ok(e instanceof PairingStringError, String(e));
      assert.equal(e.problem, error, input.slice(0, 80));
      assert.ok(!e.message.includes(input.slice(8, 40)), "the message never quotes the input");
      return true;
    });
    seen.add(error);
  }
  assert.deepEqual([...seen].sort(), ["bad_checksum", "bad_url", "malformed", "too_long", "wrong_prefix"]);
});

test("every user-code vector normalises as stored (null = rejected)", () => {
  for (const { input, normalized } of vectors.user_codes) {
    assert.equal(normalizeUserCode(input), normalized, JSON.stringify(input));
    if (normalized !== null) assert.equal(normalizeUserCode(normalized), normalized, "idempotent");
  }
});

test("base64url decoding is strict (padding, +, /, whitespace, len % 4 == 1, non-canonical)", () => {
  assert.deepEqual(b64urlDecode("AQID"), new Uint8Array([1, 2, 3]));
  for (const bad of ["AQ==", "A+ID", "A/ID", "AQ I", "AQIDB", "AR"]) assert.equal(b64urlDecode(bad), null, bad);
  assert.deepEqual(b64urlDecode("AQ"), new Uint8Array([1]));
});
