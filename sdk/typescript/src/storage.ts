// Where an app keeps its key and tokens between runs. The core ships the in-memory store; the file
// store (0600) is in the `@pairgate/sdk/node` entry point so this module stays browser-safe.

import type { PrivateJwk } from "./keys.js";

/**
 * Everything a paired app must keep. Same JSON as the Rust SDK's `StoredSession`, so a session file
 * written by one SDK is readable by the others.
 */
export interface StoredSession {
  gateway_url: string;
  private_jwk: PrivateJwk;
  access_token: string;
  refresh_token: string | null;
  /** Unix seconds at which the access token expires. */
  expires_at: number;
  grant_id: string;
  /** The last server nonce seen, if the gateway uses nonces. */
  nonce: string | null;
}

/** A place to keep the session. */
export interface Storage {
  load(): Promise<StoredSession | null>;
  save(session: StoredSession): Promise<void>;
}

/** Keeps the session in memory only (lost when the process ends). */
export class MemoryStorage implements Storage {
  #session: StoredSession | null = null;

  async load(): Promise<StoredSession | null> {
    return this.#session === null ? null : structuredClone(this.#session);
  }

  async save(session: StoredSession): Promise<void> {
    this.#session = structuredClone(session);
  }
}

/** Checks the shape of a parsed session; the message names the field, never its value. */
export function checkSession(v: unknown): StoredSession {
  const s = (typeof v === "object" && v !== null ? v : {}) as Record<string, unknown>;
  const need = (name: string, ok: boolean) => {
    if (!ok) throw new TypeError(`field ${name} is missing or has the wrong type`);
  };
  need("gateway_url", typeof s.gateway_url === "string");
  need("private_jwk", typeof s.private_jwk === "object" && s.private_jwk !== null);
  need("access_token", typeof s.access_token === "string");
  need("refresh_token", s.refresh_token === undefined || s.refresh_token === null || typeof s.refresh_token === "string");
  need("expires_at", Number.isSafeInteger(s.expires_at));
  need("grant_id", typeof s.grant_id === "string");
  need("nonce", s.nonce === undefined || s.nonce === null || typeof s.nonce === "string");
  return {
    gateway_url: s.gateway_url as string,
    private_jwk: s.private_jwk as PrivateJwk,
    access_token: s.access_token as string,
    refresh_token: (s.refresh_token as string | null | undefined) ?? null,
    expires_at: s.expires_at as number,
    grant_id: s.grant_id as string,
    nonce: (s.nonce as string | null | undefined) ?? null,
  };
}
