// What the end-to-end tests get from tests/e2e/sdk_typescript.rs: running gateways (wired to the
// fake provider) and an owner session on each, used over the owner admin API to create pairings,
// approve or deny consent requests and revoke grants. Missing variables fail loudly.

import assert from "node:assert/strict";

export interface TestGateway {
  url: string;
  cookie: string;
  csrf: string;
}

function need(name: string): string {
  const v = process.env[name];
  if (!v) {
    throw new Error(
      `${name} is not set: the end-to-end tests need a running gateway; run them with ` +
        "`cargo test -p pairgate --test e2e -- sdk_typescript` (or `cargo xtask test`)",
    );
  }
  return v;
}

function gateway(prefix: string): TestGateway {
  return { url: need(`${prefix}_URL`), cookie: need(`${prefix}_COOKIE`), csrf: need(`${prefix}_CSRF`) };
}

/** `dpop.require_nonce = true`, default token lifetimes, every provider routed to the fake. */
export function mainGateway(): TestGateway {
  return gateway("PAIRGATE_TS_MAIN");
}

/** `tokens.access_ttl = "1s"`, no nonces: for refreshing expired tokens. */
export function shortGateway(): TestGateway {
  return gateway("PAIRGATE_TS_SHORT");
}

/** The text every non-streamed fake answer carries (tests/src/fake.rs `REPLY`). */
export const REPLY = "Hello from the fake provider";

/** The text a streamed fake answer carries. */
export const STREAMED = "tok0 tok1 tok2 ";

export async function ownerPost(gw: TestGateway, path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${gw.url}${path}`, {
    method: "POST",
    headers: { cookie: gw.cookie, "x-csrf-token": gw.csrf, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 200, `${path}: ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

export async function ownerGet(gw: TestGateway, path: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${gw.url}${path}`, { headers: { cookie: gw.cookie } });
  const text = await res.text();
  assert.equal(res.status, 200, `${path}: ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/** A fresh pairing string from the owner, with `policy` decided up front. */
export async function pairingString(gw: TestGateway, policy: Record<string, unknown> = {}, appName = "ts app"): Promise<string> {
  const created = await ownerPost(gw, "/admin/api/pairings", { app_name: appName, ttl_secs: 300, policy });
  assert.equal(typeof created.pairing_string, "string");
  return created.pairing_string as string;
}

export async function revoke(gw: TestGateway, grantId: string): Promise<void> {
  const g = await ownerPost(gw, `/admin/api/grants/${grantId}/revoke`, {});
  assert.equal(g.status, "revoked");
}

/** Records every call a client makes through it, with the status it got. */
export class RecordingFetch {
  readonly calls: { method: string; path: string; status: number; challenge: string | null }[] = [];

  readonly fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const res = await fetch(input, init);
    const url = new URL(input instanceof Request ? input.url : input.toString());
    this.calls.push({ method: init?.method ?? "GET", path: url.pathname, status: res.status, challenge: res.headers.get("www-authenticate") });
    return res;
  };

  paths(): string[] {
    return this.calls.map((c) => `${c.method} ${c.path} ${c.status}`);
  }
}
