// The app's signing key over WebCrypto: Ed25519 or P-256, its public JWK, RFC 7638 thumbprint,
// fingerprint and the private JWK an SDK stores (protocol §4).

import { b64urlDecode, b64urlEncode, buf, concatBytes, hexToBytes, sha256, subtle, utf8 } from "./b64.js";
import { SessionError } from "./errors.js";

/** The key types an app can hold. Ed25519 unless the platform needs P-256. */
export type KeyKind = "ed25519" | "p256";

/** A public JWK with exactly the required members (protocol §4.1). */
export type PublicJwk =
  | { crv: "Ed25519"; kty: "OKP"; x: string }
  | { crv: "P-256"; kty: "EC"; x: string; y: string };

/** The stored form: the public JWK plus `d` (protocol §4.4). Never goes on the wire. */
export type PrivateJwk = PublicJwk & { d: string };

const ED25519 = { name: "Ed25519" } as const;
const P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
const ES256_SIGN = { name: "ECDSA", hash: "SHA-256" } as const;
const PRIVATE_MEMBERS = ["p", "q", "dp", "dq", "qi", "oth", "k"];

// PKCS#8 wrappers for a raw Ed25519 seed and a raw P-256 scalar (no embedded public key).
const ED25519_PKCS8_PREFIX = "302e020100300506032b657004220420";
const P256_PKCS8_PREFIX = "3041020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420";

function coordinate(jwk: Record<string, unknown>, name: string): string {
  const v = jwk[name];
  if (typeof v !== "string") throw new SessionError(`the stored key has no ${name}`);
  const bytes = b64urlDecode(v);
  if (bytes === null || bytes.length !== 32) throw new SessionError(`the stored key's ${name} is not 32 bytes of base64url`);
  return v;
}

function publicPart(s: PrivateJwk): PublicJwk {
  return s.kty === "OKP" ? { crv: s.crv, kty: s.kty, x: s.x } : { crv: s.crv, kty: s.kty, x: s.x, y: s.y };
}

/** RFC 7638 thumbprint input: the required members in lexicographic order, no whitespace. */
export function thumbprintInput(jwk: PublicJwk): string {
  return jwk.kty === "OKP"
    ? JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x })
    : JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
}

/** RFC 7638 JWK SHA-256 thumbprint, base64url (43 characters). */
export async function jwkThumbprint(jwk: PublicJwk): Promise<string> {
  return b64urlEncode(await sha256(utf8(thumbprintInput(jwk))));
}

/** The first 16 characters of a thumbprint in four groups of four (protocol §4.3). */
export function fingerprintOf(thumbprint: string): string {
  return [0, 4, 8, 12].map((i) => thumbprint.slice(i, i + 4)).join("-");
}

/**
 * An app's private key. The private half lives in ES private fields, so neither
 * `console.log`/`util.inspect` nor `JSON.stringify` shows it.
 */
export class SigningKey {
  /** Which key type this is. */
  readonly kind: KeyKind;
  /** RFC 7638 thumbprint of the public key: its identity on the gateway (`cnf.jkt`). */
  readonly thumbprint: string;
  readonly #privateKey: CryptoKey;
  readonly #stored: PrivateJwk;

  private constructor(kind: KeyKind, privateKey: CryptoKey, stored: PrivateJwk, thumbprint: string) {
    this.kind = kind;
    this.#privateKey = privateKey;
    this.#stored = stored;
    this.thumbprint = thumbprint;
  }

  /** A fresh key from the platform's CSPRNG. */
  static async generate(kind: KeyKind = "ed25519"): Promise<SigningKey> {
    const pair = (await subtle().generateKey(kind === "ed25519" ? ED25519 : P256, true, ["sign", "verify"])) as CryptoKeyPair;
    const jwk = await subtle().exportKey("jwk", pair.privateKey);
    return SigningKey.fromPrivateJwk(jwk);
  }

  /** Imports a raw private key: the 32-byte Ed25519 seed or the 32-byte big-endian P-256 scalar. */
  static async fromPrivateBytes(kind: KeyKind, bytes: Uint8Array): Promise<SigningKey> {
    if (bytes.length !== 32) throw new SessionError("a private key is 32 bytes");
    const prefix = hexToBytes(kind === "ed25519" ? ED25519_PKCS8_PREFIX : P256_PKCS8_PREFIX);
    const key = await subtle().importKey("pkcs8", buf(concatBytes(prefix, bytes)), kind === "ed25519" ? ED25519 : P256, true, ["sign"]);
    return SigningKey.fromPrivateJwk(await subtle().exportKey("jwk", key));
  }

  /**
   * Loads a stored private JWK (protocol §4.4), checking that the public part matches the private
   * one. Error messages never contain key material.
   */
  static async fromPrivateJwk(input: unknown): Promise<SigningKey> {
    if (typeof input !== "object" || input === null || Array.isArray(input)) throw new SessionError("the stored key is not a JWK object");
    const jwk = input as Record<string, unknown>;
    if (PRIVATE_MEMBERS.some((m) => m in jwk)) throw new SessionError("the stored key has unexpected private members");
    let stored: PrivateJwk;
    let kind: KeyKind;
    if (jwk.kty === "OKP" && jwk.crv === "Ed25519") {
      kind = "ed25519";
      stored = { crv: "Ed25519", d: coordinate(jwk, "d"), kty: "OKP", x: coordinate(jwk, "x") };
    } else if (jwk.kty === "EC" && jwk.crv === "P-256") {
      kind = "p256";
      stored = { crv: "P-256", d: coordinate(jwk, "d"), kty: "EC", x: coordinate(jwk, "x"), y: coordinate(jwk, "y") };
    } else {
      throw new SessionError("the stored key is neither an Ed25519 nor a P-256 JWK");
    }
    const algorithm = kind === "ed25519" ? ED25519 : P256;
    let privateKey: CryptoKey;
    let publicKey: CryptoKey;
    const pub = publicPart(stored);
    try {
      privateKey = await subtle().importKey("jwk", { ...stored, ext: false }, algorithm, false, ["sign"]);
      publicKey = await subtle().importKey("jwk", pub, algorithm, true, ["verify"]);
    } catch {
      throw new SessionError("the stored key is not a valid key");
    }
    // The public half must belong to the private half: sign with one, verify with the other.
    const probe = utf8("pairgate key check");
    const signature = new Uint8Array(await subtle().sign(kind === "ed25519" ? ED25519 : ES256_SIGN, privateKey, buf(probe)));
    if (!(await subtle().verify(kind === "ed25519" ? ED25519 : ES256_SIGN, publicKey, buf(signature), buf(probe)))) {
      throw new SessionError("the stored key's public part does not match its private part");
    }
    const thumbprint = await jwkThumbprint(pub);
    return new SigningKey(kind, privateKey, stored, thumbprint);
  }

  /** The JWS `alg` this key signs with: `EdDSA` or `ES256`. */
  get alg(): "EdDSA" | "ES256" {
    return this.kind === "ed25519" ? "EdDSA" : "ES256";
  }

  /** The public JWK, required members only, in thumbprint order. */
  get publicJwk(): PublicJwk {
    return publicPart(this.#stored);
  }

  /** The short form of the thumbprint a human compares during consent. */
  get fingerprint(): string {
    return fingerprintOf(this.thumbprint);
  }

  /** The private JWK to store (members in lexicographic order). Keep it secret. */
  toPrivateJwk(): PrivateJwk {
    return { ...this.#stored };
  }

  /** A JWS signature: 64 bytes either way (ES256 as raw `r ‖ s`, not DER). */
  async sign(message: Uint8Array): Promise<Uint8Array> {
    const alg = this.kind === "ed25519" ? ED25519 : ES256_SIGN;
    return new Uint8Array(await subtle().sign(alg, this.#privateKey, buf(message)));
  }

  /** Never prints key material. */
  toJSON(): { kind: KeyKind; thumbprint: string } {
    return { kind: this.kind, thumbprint: this.thumbprint };
  }
}
