// The SDK's own behaviour against a real gateway: pairing with either key type into a 0600 session
// file and resuming from it, nonce challenges retried once, refresh before expiry and after an
// expired-token answer, the consent flow approved and denied by the owner, key rotation, and
// errors that never echo a secret.

import assert from "node:assert/strict";
import { mkdtemp, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import {
  Client,
  ConsentDeniedError,
  FileStorage,
  GatewayError,
  MemoryStorage,
  PairingStringError,
  PendingConsent,
  SessionError,
} from "../../src/node.js";
import { mainGateway, ownerGet, ownerPost, pairingString, RecordingFetch, shortGateway } from "./gateway.js";

async function grantOf(client: Client): Promise<Record<string, unknown>> {
  const res = await client.request("/v1/grant");
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text) as Record<string, unknown>;
}

test("pairs with either key type into a 0600 session file and resumes from it", async () => {
  const gw = mainGateway();
  const dir = await mkdtemp(join(tmpdir(), "pairgate-ts-"));
  for (const keyKind of ["ed25519", "p256"] as const) {
    const path = join(dir, `${keyKind}.json`);
    const storage = new FileStorage(path);
    assert.equal(await Client.fromStorage(storage), null, "no session yet");
    const rec = new RecordingFetch();
    const client = await Client.pair(await pairingString(gw, {}, `ts ${keyKind}`), { keyKind, appName: "ignored: the owner named it", fetch: rec.fetch }, storage);
    // The gateway requires nonces: the first proof had none, so pairing took a retry.
    assert.deepEqual(rec.paths(), ["POST /oauth/token 400", "POST /oauth/token 200"]);
    assert.equal(((await stat(path)).mode & 0o777).toString(8), "600");
    const grant = await grantOf(client);
    assert.equal(grant.id, client.grantId);
    assert.equal(grant.key_thumbprint, client.keyThumbprint);
    assert.equal(grant.key_alg, keyKind === "ed25519" ? "EdDSA" : "ES256");
    assert.equal(grant.app_name, `ts ${keyKind}`, "the owner's name for the pairing wins");
    assert.equal(rec.calls.at(-1)?.status, 200, "the nonce from the token answer was used: no retry");

    const resumed = await Client.fromStorage(storage);
    assert.ok(resumed);
    assert.equal(resumed.keyThumbprint, client.keyThumbprint);
    assert.equal((await grantOf(resumed)).id, client.grantId);
    assert.ok(!JSON.stringify(client).includes((await storage.load())!.access_token), "JSON of a client shows no token");
  }
});

test("a stale nonce is answered with a challenge and retried once with the new one", async () => {
  const gw = mainGateway();
  const storage = new MemoryStorage();
  const first = await Client.pair(await pairingString(gw), {}, storage);
  await grantOf(first);
  const session = (await storage.load())!;
  await storage.save({ ...session, nonce: "not-the-current-nonce" });
  const rec = new RecordingFetch();
  const client = (await Client.fromStorage(storage, { fetch: rec.fetch }))!;
  const grant = await grantOf(client);
  assert.equal(grant.id, first.grantId);
  assert.deepEqual(rec.paths(), ["GET /v1/grant 401", "GET /v1/grant 200"]);
  assert.match(rec.calls[0]!.challenge ?? "", /use_dpop_nonce/);
});

test("a token about to expire is refreshed before the request; the old refresh token is dead", async () => {
  const gw = mainGateway();
  const storage = new MemoryStorage();
  await Client.pair(await pairingString(gw), {}, storage);
  const before = (await storage.load())!;
  await storage.save({ ...before, expires_at: before.expires_at - 3600 });
  const rec = new RecordingFetch();
  const client = (await Client.fromStorage(storage, { fetch: rec.fetch }))!;
  await grantOf(client);
  assert.deepEqual(rec.paths(), ["POST /oauth/token 200", "GET /v1/grant 200"]);
  const after = (await storage.load())!;
  assert.notEqual(after.access_token, before.access_token);
  assert.notEqual(after.refresh_token, before.refresh_token);
  assert.ok(after.expires_at > before.expires_at - 3600);

  // Replaying the old refresh token fails: refresh tokens are single-use.
  const replay = new MemoryStorage();
  await replay.save({ ...before, expires_at: 0 });
  const stale = (await Client.fromStorage(replay))!;
  await assert.rejects(stale.refresh(), (e: unknown) => e instanceof GatewayError && e.code === "invalid_grant" && !e.message.includes(before.refresh_token!));
});

test("an expired token answered with invalid_token is refreshed and the request retried", async () => {
  const gw = shortGateway(); // access tokens live one second
  const storage = new MemoryStorage();
  await Client.pair(await pairingString(gw), {}, storage);
  const s = (await storage.load())!;
  // Pretend the token is good for an hour, so the client does not refresh ahead of time.
  await storage.save({ ...s, expires_at: s.expires_at + 3600 });
  await new Promise((r) => setTimeout(r, 2100));
  const rec = new RecordingFetch();
  const client = (await Client.fromStorage(storage, { fetch: rec.fetch }))!;
  await grantOf(client);
  assert.deepEqual(rec.paths(), ["GET /v1/grant 401", "POST /oauth/token 200", "GET /v1/grant 200"]);
  assert.match(rec.calls[0]!.challenge ?? "", /invalid_token/);
});

test("consent: the owner sees the app's fingerprint, approves (narrowing) or denies", async () => {
  const gw = mainGateway();
  const wanted = { models: ["openai/*"], requests_per_minute: 100 };
  const pending = await PendingConsent.request(gw.url, "ts consent", wanted, { keyKind: "p256" });
  assert.match(pending.userCode, /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
  assert.ok(pending.verificationUriComplete.includes(pending.userCode));
  assert.equal(await pending.pollOnce(), null, "pending until the owner decides");
  const list = (await ownerGet(gw, "/admin/api/consents")).data as Record<string, unknown>[];
  const mine = list.find((c) => c.user_code === pending.userCode);
  assert.ok(mine, "the owner lists the request");
  assert.equal(mine.key_fingerprint, pending.keyFingerprint, "the owner and the app see the same fingerprint");
  await ownerPost(gw, `/admin/api/consents/${pending.userCode}/approve`, { policy: { models: ["openai/gpt-4o-mini"], requests_per_minute: 10 } });
  pending.interval = 1;
  const client = await pending.wait(AbortSignal.timeout(20_000));
  const grant = await grantOf(client);
  assert.equal(grant.origin, "consent");
  assert.deepEqual((grant.policy as Record<string, unknown>).models, ["openai/gpt-4o-mini"]);
  assert.equal(client.keyFingerprint, pending.keyFingerprint);

  const denied = await Client.requestConsent(gw.url, "ts denied", {});
  await ownerPost(gw, `/admin/api/consents/${denied.userCode}/deny`, {});
  await assert.rejects(denied.pollOnce(), ConsentDeniedError);
});

test("rotating the key moves the grant to the new key; the old key's session stops working", async () => {
  const gw = mainGateway();
  const storage = new MemoryStorage();
  const client = await Client.pair(await pairingString(gw), {}, storage);
  const old = (await storage.load())!;
  const oldThumbprint = client.keyThumbprint;
  await client.rotateKey("p256");
  assert.notEqual(client.keyThumbprint, oldThumbprint);
  const grant = await grantOf(client);
  assert.equal(grant.key_thumbprint, client.keyThumbprint);
  assert.equal(grant.key_alg, "ES256");
  assert.equal((await storage.load())!.private_jwk.kty, "EC", "the new key was saved");

  const oldStorage = new MemoryStorage();
  await oldStorage.save(old);
  const oldClient = (await Client.fromStorage(oldStorage))!;
  const res = await oldClient.request("/v1/grant");
  assert.equal(res.status, 401);
});

test("errors name the problem and never echo the pairing string, tokens or keys", async () => {
  const gw = mainGateway();
  const s = await pairingString(gw);
  const client = await Client.pair(s);
  await assert.rejects(Client.pair(s), (e: unknown) => {
    assert.ok(e instanceof GatewayError, String(e));
    assert.equal(e.code, "pairing_already_used");
    assert.equal(e.status, 400);
    assert.ok(!e.message.includes(s) && !e.message.includes(s.split(".")[1]!));
    return true;
  });
  const truncated = s.slice(0, -1);
  await assert.rejects(Client.pair(truncated), (e: unknown) => e instanceof PairingStringError && e.problem === "malformed" && !e.message.includes(truncated));
  const typo = `${s.slice(0, 20)}${s[20] === "A" ? "B" : "A"}${s.slice(21)}`;
  await assert.rejects(Client.pair(typo), (e: unknown) => e instanceof PairingStringError && e.problem === "bad_checksum");
  await assert.rejects(Client.pair(`x${s}`), (e: unknown) => e instanceof PairingStringError && e.problem === "wrong_prefix");
  await assert.rejects(client.fetch("http://127.0.0.1:9/v1/models"), SessionError, "the token never goes to another origin");
});
