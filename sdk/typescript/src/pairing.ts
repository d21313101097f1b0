// Pairing strings (`pgpair1.<payload>.<check>`, protocol §3) and user codes (protocol §2.1).

import { b64urlDecode, b64urlEncode, concatBytes, sha256, utf8 } from "./b64.js";
import { PairingStringError } from "./errors.js";

export const PAIRING_PREFIX = "pgpair1";
export const MAX_PAIRING_STRING_LEN = 2048;
const ID_LEN = 16;
const SECRET_LEN = 32;
const CHECK_CHARS = 6;
const B64URL = /^[A-Za-z0-9_-]*$/;

/** A decoded pairing string. The secret is an ES private field: never logged or serialised. */
export class PairingString {
  /** The pairing id as the owner sees it: `pr_` + base64url (25 characters). */
  readonly pairingId: string;
  /** The gateway's public base URL, byte-for-byte as embedded. */
  readonly gatewayUrl: string;
  readonly #id: Uint8Array;
  readonly #secret: Uint8Array;

  constructor(id: Uint8Array, secret: Uint8Array, gatewayUrl: string) {
    if (id.length !== ID_LEN || secret.length !== SECRET_LEN) throw new PairingStringError("malformed");
    if (!validGatewayUrl(gatewayUrl)) throw new PairingStringError("bad_url");
    this.#id = id.slice();
    this.#secret = secret.slice();
    this.gatewayUrl = gatewayUrl;
    this.pairingId = `pr_${b64urlEncode(id)}`;
  }

  /** Parses a pairing string, ignoring surrounding whitespace; each failure has its own `problem`. */
  static async parse(input: string): Promise<PairingString> {
    const text = input.trim();
    if (utf8(text).length > MAX_PAIRING_STRING_LEN) throw new PairingStringError("too_long");
    if (!text.startsWith(`${PAIRING_PREFIX}.`)) throw new PairingStringError("wrong_prefix");
    const rest = text.slice(PAIRING_PREFIX.length + 1);
    const dot = rest.lastIndexOf(".");
    if (dot < 0) throw new PairingStringError("malformed");
    const payload = rest.slice(0, dot);
    const check = rest.slice(dot + 1);
    if (check.length !== CHECK_CHARS || !B64URL.test(check) || !B64URL.test(payload)) throw new PairingStringError("malformed");
    if ((await checksum(`${PAIRING_PREFIX}.${payload}`)) !== check) throw new PairingStringError("bad_checksum");
    const raw = b64urlDecode(payload);
    if (raw === null || raw.length <= ID_LEN + SECRET_LEN) throw new PairingStringError("malformed");
    let url: string;
    try {
      url = new TextDecoder("utf-8", { fatal: true }).decode(raw.subarray(ID_LEN + SECRET_LEN));
    } catch {
      throw new PairingStringError("bad_url");
    }
    return new PairingString(raw.subarray(0, ID_LEN), raw.subarray(ID_LEN, ID_LEN + SECRET_LEN), url);
  }

  /** The text form. Deliberate: it contains the secret. */
  async encode(): Promise<string> {
    const body = `${PAIRING_PREFIX}.${b64urlEncode(concatBytes(this.#id, this.#secret, utf8(this.gatewayUrl)))}`;
    return `${body}.${await checksum(body)}`;
  }

  /** Never prints the secret. */
  toJSON(): { pairingId: string; gatewayUrl: string } {
    return { pairingId: this.pairingId, gatewayUrl: this.gatewayUrl };
  }
}

async function checksum(body: string): Promise<string> {
  return b64urlEncode((await sha256(utf8(body))).subarray(0, 4));
}

/** Printable ASCII without `\`, http(s), a host, no userinfo, query or fragment (protocol §3). */
export function validGatewayUrl(text: string): boolean {
  if (text.length === 0 || ![...text].every((c) => c > " " && c <= "~" && c !== "\\")) return false;
  const lower = text.toLowerCase();
  if (!lower.startsWith("https://") && !lower.startsWith("http://")) return false;
  if (text.includes("?") || text.includes("#")) return false;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return false;
  }
  return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "" && url.username === "" && url.password === "";
}

/** True for `localhost` and loopback addresses, where plain `http` is fine. */
export function isLoopbackUrl(text: string): boolean {
  try {
    const host = new URL(text).hostname;
    return host === "localhost" || host.endsWith(".localhost") || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
  } catch {
    return false;
  }
}

/** The user-code alphabet: 20 upper-case consonants. */
export const USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ";

/**
 * Normalises a typed user code to `XXXX-XXXX` (removes `-` and whitespace, upper-cases ASCII);
 * `null` when it is not exactly 8 characters of the alphabet.
 */
export function normalizeUserCode(input: string): string | null {
  if (utf8(input).length > 64) return null;
  const chars = [...input].filter((c) => c !== "-" && !/\s/u.test(c)).map((c) => (c >= "a" && c <= "z" ? c.toUpperCase() : c));
  if (chars.length !== 8 || !chars.every((c) => USER_CODE_ALPHABET.includes(c))) return null;
  return `${chars.slice(0, 4).join("")}-${chars.slice(4).join("")}`;
}
