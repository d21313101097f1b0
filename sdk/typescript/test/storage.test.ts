// Session storage: the file store keeps the Rust SDK's JSON layout with mode 0600 and atomic
// replacement, refuses a broken file without quoting it; the memory store hands out copies.

import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { inspect } from "node:util";

import { Client, FileStorage, MemoryStorage, SessionError, SigningKey, type StoredSession } from "../src/node.js";

async function session(): Promise<StoredSession> {
  return {
    gateway_url: "http://127.0.0.1:1",
    private_jwk: (await SigningKey.generate("ed25519")).toPrivateJwk(),
    access_token: "secret-access",
    refresh_token: "secret-refresh",
    expires_at: 1,
    grant_id: "gr_1",
    nonce: null,
  };
}

test("the file store round-trips with owner-only permissions and leaves no temporary file", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pairgate-ts-"));
  const path = join(dir, "s.json");
  const s = new FileStorage(path);
  assert.equal(await s.load(), null);
  const value = await session();
  await s.save(value);
  await s.save({ ...value, grant_id: "gr_2" });
  assert.deepEqual(await s.load(), { ...value, grant_id: "gr_2" });
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.deepEqual(await readdir(dir), ["s.json"]);
  // Same member names as the Rust SDK's StoredSession, so the SDKs read each other's files.
  assert.deepEqual(Object.keys(JSON.parse(await readFile(path, "utf8"))).sort(), ["access_token", "expires_at", "gateway_url", "grant_id", "nonce", "private_jwk", "refresh_token"]);
});

test("a file in the Rust SDK's layout without optional members loads", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pairgate-ts-"));
  const path = join(dir, "rust.json");
  const { nonce: _n, ...rest } = await session();
  await writeFile(path, JSON.stringify({ ...rest, refresh_token: null }));
  const loaded = await new FileStorage(path).load();
  assert.equal(loaded?.nonce, null);
  assert.equal(loaded?.refresh_token, null);
  const client = await Client.fromStorage(new FileStorage(path));
  assert.equal(client?.grantId, "gr_1");
  await assert.rejects(client!.refresh(), (e: unknown) => e instanceof SessionError && /pair again/.test(e.message));
});

test("a broken session file is refused without quoting its contents", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pairgate-ts-"));
  const path = join(dir, "bad.json");
  await writeFile(path, '{"access_token": "secret-access", ');
  await assert.rejects(new FileStorage(path).load(), (e: unknown) => e instanceof SessionError && !e.message.includes("secret-access"));
  await writeFile(path, JSON.stringify({ access_token: "secret-access" }));
  await assert.rejects(new FileStorage(path).load(), (e: unknown) => e instanceof SessionError && /gateway_url/.test(e.message) && !e.message.includes("secret-access"));
});

test("the memory store keeps copies; keys and clients never print secrets", async () => {
  const m = new MemoryStorage();
  assert.equal(await m.load(), null);
  const value = await session();
  await m.save(value);
  value.grant_id = "changed";
  assert.equal((await m.load())?.grant_id, "gr_1");
  const key = await SigningKey.fromPrivateJwk(value.private_jwk);
  const client = (await Client.fromStorage(m))!;
  for (const shown of [inspect(key), JSON.stringify(key), inspect(client), JSON.stringify(client), inspect(m)]) {
    assert.ok(!shown.includes(value.private_jwk.d) && !shown.includes("secret-access") && !shown.includes("secret-refresh"), shown);
  }
});
