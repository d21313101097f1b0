// The consent flow for apps without a pairing string (RFC 8628 device flow, protocol §8.3): ask the
// owner, show the user code and the key fingerprint, poll until the owner decides.

import {
  Client,
  type FetchLike,
  GRANT_TYPE_DEVICE_CODE,
  type NonceCell,
  oauthPost,
  defaultFetch,
  type PairOptions,
  sessionFrom,
  tokenResponse,
  trimSlash,
  warnIfPlainHttp,
} from "./client.js";
import { ConsentDeniedError, ConsentExpiredError, GatewayError, SessionError } from "./errors.js";
import { SigningKey } from "./keys.js";
import { MemoryStorage, type Storage } from "./storage.js";

/** A consent request waiting for the owner. */
export class PendingConsent {
  /** Show this to your user: the owner finds the request by it. */
  readonly userCode: string;
  readonly verificationUri: string;
  readonly verificationUriComplete: string;
  /** The fingerprint of this app's key, as the owner sees it: show it to your user. */
  readonly keyFingerprint: string;
  /** Seconds the request stays open. */
  readonly expiresIn: number;
  /** Seconds between polls (grows when the gateway says `slow_down`). */
  interval: number;
  readonly #deviceCode: string;
  readonly #gatewayUrl: string;
  readonly #key: SigningKey;
  readonly #fetch: FetchLike;
  readonly #storage: Storage;
  readonly #nonce: NonceCell;

  private constructor(v: Record<string, unknown>, gatewayUrl: string, key: SigningKey, fetchFn: FetchLike, storage: Storage, nonce: NonceCell) {
    const s = (k: string): string => {
      const x = v[k];
      if (typeof x !== "string") throw new SessionError(`the device authorization answer has no ${k}`);
      return x;
    };
    this.userCode = s("user_code");
    this.verificationUri = s("verification_uri");
    this.verificationUriComplete = s("verification_uri_complete");
    this.#deviceCode = s("device_code");
    this.keyFingerprint = key.fingerprint;
    this.expiresIn = typeof v.expires_in === "number" ? v.expires_in : 0;
    this.interval = Math.max(1, typeof v.interval === "number" ? v.interval : 5);
    this.#gatewayUrl = gatewayUrl;
    this.#key = key;
    this.#fetch = fetchFn;
    this.#storage = storage;
    this.#nonce = nonce;
  }

  /** Asks the owner of the gateway at `gatewayUrl` for a grant with `policy` (a grant policy object). */
  static async request(gatewayUrl: string, appName: string, policy: Record<string, unknown>, opts: PairOptions = {}, storage: Storage = new MemoryStorage()): Promise<PendingConsent> {
    const gateway = trimSlash(gatewayUrl);
    warnIfPlainHttp(gateway, opts);
    const fetchFn = opts.fetch ?? defaultFetch();
    const key = await SigningKey.generate(opts.keyKind ?? "ed25519");
    const nonce: NonceCell = { nonce: null };
    const form: [string, string][] = [
      ["client_name", appName],
      ["policy", JSON.stringify(policy)],
    ];
    const v = await oauthPost(fetchFn, `${gateway}/oauth/device_authorization`, key, form, nonce);
    return new PendingConsent(v, gateway, key, fetchFn, storage, nonce);
  }

  /** Polls once: `null` while the owner has not decided; throws when denied or expired. */
  async pollOnce(): Promise<Client | null> {
    const form: [string, string][] = [
      ["grant_type", GRANT_TYPE_DEVICE_CODE],
      ["device_code", this.#deviceCode],
    ];
    let v: Record<string, unknown>;
    try {
      v = await oauthPost(this.#fetch, `${this.#gatewayUrl}/oauth/token`, this.#key, form, this.#nonce);
    } catch (e) {
      if (!(e instanceof GatewayError)) throw e;
      switch (e.code) {
        case "authorization_pending":
          return null;
        case "slow_down":
          this.interval += 5;
          return null;
        case "access_denied":
          throw new ConsentDeniedError();
        case "expired_token":
          throw new ConsentExpiredError();
        default:
          throw e;
      }
    }
    const session = sessionFrom(this.#gatewayUrl, this.#key, tokenResponse(v), this.#nonce.nonce);
    await this.#storage.save(session);
    return new Client({ fetch: this.#fetch, storage: this.#storage, key: this.#key, session });
  }

  /** Polls at the gateway's interval until the owner approves (or denies, or it expires). */
  async wait(signal?: AbortSignal): Promise<Client> {
    for (;;) {
      signal?.throwIfAborted();
      const client = await this.pollOnce();
      if (client !== null) return client;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, this.interval * 1000);
        signal?.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(signal.reason);
        }, { once: true });
      });
    }
  }

  /** Never prints the device code or the key. */
  toJSON(): { userCode: string; keyFingerprint: string } {
    return { userCode: this.userCode, keyFingerprint: this.keyFingerprint };
  }
}
