// The signing client: pairs once, then signs every request with the app's own key (DPoP with
// `ath` and `bsh`), refreshing tokens before they expire and retrying once when the gateway asks
// for a fresh nonce. `client.fetch` is a drop-in `fetch` for clients such as the `openai` package.

import { PendingConsent } from "./consent.js";
import { createProof, newJti } from "./dpop.js";
import { GatewayError, PairgateError, SessionError } from "./errors.js";
import { type KeyKind, SigningKey } from "./keys.js";
import { isLoopbackUrl, PairingString } from "./pairing.js";
import { MemoryStorage, type Storage, type StoredSession } from "./storage.js";

/** Refresh the access token when it has less than this many seconds left. */
export const REFRESH_MARGIN_SECS = 30;
export const GRANT_TYPE_PAIRING = "urn:pairgate:params:oauth:grant-type:pairing";
export const GRANT_TYPE_DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code";
export const GRANT_TYPE_REFRESH = "refresh_token";

/** The `fetch` signature the SDK calls and offers. */
export type FetchLike = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;

/** How to pair (and how to talk to the gateway afterwards). */
export interface PairOptions {
  /** The key type to generate: Ed25519 (default) or P-256. */
  keyKind?: KeyKind;
  /** The name the owner sees for this app. */
  appName?: string;
  /** The `fetch` used underneath (timeouts, proxies, tests); `globalThis.fetch` otherwise. */
  fetch?: FetchLike;
  /** Use this gateway URL instead of the one in the pairing string. */
  gatewayUrl?: string;
  /** Receives warnings (plain http to a non-loopback host); `console.warn` otherwise. */
  onWarning?: (message: string) => void;
}

/** What to do after a response. */
type Retry = "no" | "nonce" | "refresh";

/** Integer Unix seconds now. */
export function nowSecs(): number {
  return Math.floor(Date.now() / 1000);
}

export function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

export function defaultFetch(): FetchLike {
  if (typeof globalThis.fetch !== "function") throw new PairgateError("no global fetch; pass PairOptions.fetch");
  return globalThis.fetch.bind(globalThis);
}

export function warnIfPlainHttp(url: string, opts: PairOptions): void {
  if (url.toLowerCase().startsWith("http://") && !isLoopbackUrl(url)) {
    (opts.onWarning ?? console.warn)(`pairgate: ${new URL(url).host} is reached over plain http; tokens and proofs travel unencrypted`);
  }
}

/** Signs one request's proof. */
async function sign(key: SigningKey, method: string, url: string, token: string | undefined, nonce: string | null, body: Uint8Array): Promise<string> {
  return createProof(key, { htm: method, htu: url, iat: nowSecs(), jti: newJti(), accessToken: token, nonce: nonce ?? undefined, body });
}

/** A nonce holder shared across the attempts of one flow. */
export interface NonceCell {
  nonce: string | null;
}

/** A POST to an OAuth endpoint with a proof by `key`, retried once with a server nonce. */
export async function oauthPost(fetchFn: FetchLike, url: string, key: SigningKey, form: [string, string][], cell: NonceCell): Promise<Record<string, unknown>> {
  const body = new TextEncoder().encode(new URLSearchParams(form).toString());
  for (let attempt = 0; attempt < 2; attempt++) {
    const proof = await sign(key, "POST", url, undefined, cell.nonce, body);
    const res = await fetchFn(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", dpop: proof },
      body,
    });
    const n = res.headers.get("dpop-nonce");
    if (n !== null) cell.nonce = n;
    const text = await res.text();
    if (res.ok) {
      try {
        const v: unknown = JSON.parse(text);
        if (typeof v === "object" && v !== null) return v as Record<string, unknown>;
      } catch {
        // fall through
      }
      throw new SessionError("the gateway's answer is not a JSON object");
    }
    const err = GatewayError.fromBody(res.status, text);
    if (attempt === 0 && err.code === "use_dpop_nonce" && cell.nonce !== null) continue;
    throw err;
  }
  throw new SessionError("the gateway kept asking for a new nonce");
}

/** The token response (protocol §7), checked. */
export interface TokenResponse {
  access_token: string;
  expires_in: number;
  refresh_token: string | null;
  grant_id: string;
}

export function tokenResponse(input: unknown): TokenResponse {
  const v = (typeof input === "object" && input !== null ? input : {}) as Record<string, unknown>;
  if (typeof v.access_token !== "string" || typeof v.expires_in !== "number" || typeof v.grant_id !== "string") {
    throw new SessionError("unexpected token response");
  }
  if (v.token_type !== undefined && v.token_type !== "DPoP") throw new SessionError("the gateway issued a token that is not DPoP-bound");
  return {
    access_token: v.access_token,
    expires_in: v.expires_in,
    refresh_token: typeof v.refresh_token === "string" ? v.refresh_token : null,
    grant_id: v.grant_id,
  };
}

export function sessionFrom(gatewayUrl: string, key: SigningKey, t: TokenResponse, nonce: string | null): StoredSession {
  return {
    gateway_url: trimSlash(gatewayUrl),
    private_jwk: key.toPrivateJwk(),
    access_token: t.access_token,
    refresh_token: t.refresh_token,
    expires_at: nowSecs() + t.expires_in,
    grant_id: t.grant_id,
    nonce,
  };
}

/** The parts a client is made of (internal: use `pair`, `fromStorage` or a consent request). */
export interface ClientParts {
  fetch: FetchLike;
  storage: Storage;
  key: SigningKey;
  session: StoredSession;
}

/** A paired app's client. Every request it sends is signed with the app's key. */
export class Client {
  readonly #fetch: FetchLike;
  readonly #storage: Storage;
  #key: SigningKey;
  #session: StoredSession;
  #refreshing: Promise<void> | null = null;

  /** Internal; use `Client.pair`, `Client.fromStorage` or `Client.requestConsent`. */
  constructor(parts: ClientParts) {
    this.#fetch = parts.fetch;
    this.#storage = parts.storage;
    this.#key = parts.key;
    this.#session = parts.session;
  }

  /** Redeems a pairing string: generates a key pair here and binds it to a new grant. */
  static async pair(pairingString: string, opts: PairOptions = {}, storage: Storage = new MemoryStorage()): Promise<Client> {
    const parsed = await PairingString.parse(pairingString);
    const gateway = trimSlash(opts.gatewayUrl ?? parsed.gatewayUrl);
    warnIfPlainHttp(gateway, opts);
    const fetchFn = opts.fetch ?? defaultFetch();
    const key = await SigningKey.generate(opts.keyKind ?? "ed25519");
    const cell: NonceCell = { nonce: null };
    const form: [string, string][] = [
      ["grant_type", GRANT_TYPE_PAIRING],
      ["pairing_code", pairingString.trim()],
    ];
    if (opts.appName !== undefined) form.push(["client_name", opts.appName]);
    const t = tokenResponse(await oauthPost(fetchFn, `${gateway}/oauth/token`, key, form, cell));
    const session = sessionFrom(gateway, key, t, cell.nonce);
    await storage.save(session);
    return new Client({ fetch: fetchFn, storage, key, session });
  }

  /**
   * Asks the owner of the gateway at `gatewayUrl` for a grant with `policy` (no pairing string):
   * show `userCode` and `keyFingerprint` to your user, then `await pending.wait()`.
   */
  static requestConsent(gatewayUrl: string, appName: string, policy: Record<string, unknown>, opts: PairOptions = {}, storage: Storage = new MemoryStorage()): Promise<PendingConsent> {
    return PendingConsent.request(gatewayUrl, appName, policy, opts, storage);
  }

  /** Resumes a session saved by an earlier run; `null` when there is none. */
  static async fromStorage(storage: Storage, opts: PairOptions = {}): Promise<Client | null> {
    const session = await storage.load();
    if (session === null) return null;
    const key = await SigningKey.fromPrivateJwk(session.private_jwk);
    return new Client({ fetch: opts.fetch ?? defaultFetch(), storage, key, session });
  }

  /** The grant this client uses. */
  get grantId(): string {
    return this.#session.grant_id;
  }

  /** The gateway's base URL, without a trailing slash. */
  get gatewayUrl(): string {
    return this.#session.gateway_url;
  }

  /** The OpenAI-compatible base URL: `<gateway>/v1`. */
  get baseURL(): string {
    return `${this.#session.gateway_url}/v1`;
  }

  /** RFC 7638 thumbprint of the app's current key. */
  get keyThumbprint(): string {
    return this.#key.thumbprint;
  }

  /** The short fingerprint the owner sees for this app's key. */
  get keyFingerprint(): string {
    return this.#key.fingerprint;
  }

  /** Options for `new OpenAI(...)` (the `openai` package): base URL, a dummy key, the signing fetch. */
  openaiOptions(): { baseURL: string; apiKey: string; fetch: FetchLike } {
    return { baseURL: this.baseURL, apiKey: "unused", fetch: this.fetch };
  }

  /** Exchanges the refresh token for a new token pair now (concurrent callers share one exchange). */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#doRefresh().finally(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  async #doRefresh(): Promise<void> {
    const { refresh_token: refresh, gateway_url: gateway, nonce } = this.#session;
    if (refresh === null) throw new SessionError("no refresh token; pair again");
    const key = this.#key;
    const cell: NonceCell = { nonce };
    const form: [string, string][] = [
      ["grant_type", GRANT_TYPE_REFRESH],
      ["refresh_token", refresh],
    ];
    const t = tokenResponse(await oauthPost(this.#fetch, `${gateway}/oauth/token`, key, form, cell));
    const session = sessionFrom(gateway, key, t, cell.nonce);
    await this.#storage.save(session);
    this.#session = session;
  }

  async #ensureFresh(): Promise<void> {
    if (this.#session.expires_at - nowSecs() < REFRESH_MARGIN_SECS) await this.refresh();
  }

  /** Records a nonce the gateway sent; says whether the response asks for a retry. */
  #observe(res: Response): Retry {
    const n = res.headers.get("dpop-nonce");
    if (n !== null) this.#session = { ...this.#session, nonce: n };
    if (res.status !== 401) return "no";
    const challenge = res.headers.get("www-authenticate") ?? "";
    if (challenge.includes("use_dpop_nonce")) return "nonce";
    if (challenge.includes("invalid_token") && challenge.includes("expired")) return "refresh";
    return "no";
  }

  /**
   * A `fetch` that signs: adds `Authorization: DPoP <token>` and a fresh proof binding method, URL,
   * token and the exact body bytes; refreshes the token first when it is about to expire; retries
   * once on a nonce challenge or an expired token. Responses (streams included) are returned as
   * they arrive. Only URLs under the paired gateway are accepted, so the token never leaves it.
   */
  readonly fetch: FetchLike = async (input, init) => {
    const streamed = typeof ReadableStream !== "undefined" && init?.body instanceof ReadableStream;
    const req = new Request(input, streamed ? ({ ...init, duplex: "half" } as RequestInit) : init);
    const base = this.#session.gateway_url;
    if (req.url !== base && !req.url.startsWith(`${base}/`)) {
      throw new SessionError("refusing to sign a request for a URL outside the paired gateway");
    }
    const hasBody = req.body !== null;
    const body = hasBody ? new Uint8Array(await req.arrayBuffer()) : new Uint8Array(0);
    await this.#ensureFresh();
    for (let attempt = 0; ; attempt++) {
      const headers = new Headers(req.headers);
      const { access_token: token, nonce } = this.#session;
      headers.set("authorization", `DPoP ${token}`);
      headers.set("dpop", await sign(this.#key, req.method, req.url, token, nonce, body));
      const res = await this.#fetch(req.url, {
        method: req.method,
        headers,
        body: hasBody ? body : null,
        signal: req.signal,
        redirect: req.redirect,
      });
      const retry = this.#observe(res);
      if (attempt > 0 || retry === "no") return res;
      await res.body?.cancel().catch(() => undefined);
      if (retry === "refresh") await this.refresh();
    }
  };

  /** A signed request to a gateway path such as `/v1/grant`. */
  request(path: string, init?: RequestInit): Promise<Response> {
    return this.fetch(`${this.#session.gateway_url}${path}`, init);
  }

  /** Moves the grant to a freshly generated key, proving possession of both keys. */
  async rotateKey(kind: KeyKind = "ed25519"): Promise<void> {
    await this.#ensureFresh();
    const newKey = await SigningKey.generate(kind);
    const gateway = this.#session.gateway_url;
    const url = `${gateway}/v1/grant/rotate-key`;
    const oldKey = this.#key;
    const token = this.#session.access_token;
    let nonce = this.#session.nonce;
    const empty = new Uint8Array(0);
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await this.#fetch(url, {
        method: "POST",
        headers: {
          authorization: `DPoP ${token}`,
          dpop: await sign(oldKey, "POST", url, token, nonce, empty),
          "new-dpop": await sign(newKey, "POST", url, token, nonce, empty),
        },
      });
      const n = res.headers.get("dpop-nonce");
      if (n !== null) nonce = n;
      const text = await res.text();
      if (res.ok) {
        let v: unknown;
        try {
          v = JSON.parse(text);
        } catch {
          throw new SessionError("the gateway's answer is not JSON");
        }
        const session = sessionFrom(gateway, newKey, tokenResponse(v), nonce);
        await this.#storage.save(session);
        this.#key = newKey;
        this.#session = session;
        return;
      }
      const err = GatewayError.fromBody(res.status, text);
      if (!(attempt === 0 && err.code === "use_dpop_nonce")) throw err;
    }
    throw new SessionError("the gateway kept asking for a new nonce");
  }

  /** Never prints tokens or keys. */
  toJSON(): { grantId: string; gatewayUrl: string; keyThumbprint: string } {
    return { grantId: this.grantId, gatewayUrl: this.gatewayUrl, keyThumbprint: this.keyThumbprint };
  }
}
