// The official `openai` npm package, unchanged, paired through the SDK's signing fetch against a
// real `pairgate serve` and the fake provider: chat (streamed and not), embeddings, models, a rate
// limit and a revoked grant surfacing as the package's own OpenAI-shaped error classes.

import assert from "node:assert/strict";
import { test } from "node:test";

import OpenAI, { AuthenticationError, RateLimitError } from "openai";

import { Client } from "../../src/index.js";
import { mainGateway, pairingString, REPLY, revoke, STREAMED } from "./gateway.js";

const MODEL = "openai/gpt-4o-mini";
const EMBEDDING = "openai/text-embedding-3-small";
const messages = [
  { role: "system" as const, content: "be brief" },
  { role: "user" as const, content: "hello" },
];

async function paired(policy: Record<string, unknown> = {}, keyKind: "ed25519" | "p256" = "ed25519"): Promise<{ client: Client; openai: OpenAI }> {
  const gw = mainGateway();
  const client = await Client.pair(await pairingString(gw, policy), { keyKind, appName: "openai-node" });
  // maxRetries 0: a refusal must reach the test, not be retried away.
  const openai = new OpenAI({ ...client.openaiOptions(), maxRetries: 0 });
  return { client, openai };
}

test("chat, streamed chat, embeddings and models work through the openai package", async () => {
  for (const keyKind of ["ed25519", "p256"] as const) {
    const { client, openai } = await paired({}, keyKind);
    assert.equal(client.baseURL, `${mainGateway().url}/v1`);

    const chat = await openai.chat.completions.create({ model: MODEL, messages });
    assert.equal(chat.object, "chat.completion");
    assert.equal(chat.choices[0]?.message.content, REPLY);
    assert.equal(chat.usage?.prompt_tokens, 11);

    const stream = await openai.chat.completions.create({ model: MODEL, messages, stream: true });
    let text = "";
    let chunks = 0;
    for await (const chunk of stream) {
      assert.equal(chunk.object, "chat.completion.chunk");
      text += chunk.choices[0]?.delta?.content ?? "";
      chunks++;
    }
    assert.equal(text, STREAMED, `${keyKind}: streamed text`);
    assert.ok(chunks >= 3, `${keyKind}: ${chunks} chunks arrived one by one`);

    const emb = await openai.embeddings.create({ model: EMBEDDING, input: "hi", encoding_format: "float" });
    assert.deepEqual(emb.data[0]?.embedding, [0.1, 0.2, 0.3]);

    const ids: string[] = [];
    for await (const m of openai.models.list()) ids.push(m.id);
    assert.ok(ids.includes(MODEL), `models: ${ids.join(", ")}`);
    const one = await openai.models.retrieve(MODEL);
    assert.equal(one.id, MODEL);
  }
});

test("a model outside the grant is refused with PermissionDeniedError", async () => {
  const { openai } = await paired({ models: [MODEL] });
  await assert.rejects(openai.chat.completions.create({ model: "openai/gpt-4o", messages }), (e: unknown) => {
    assert.ok(e instanceof OpenAI.PermissionDeniedError, `got ${String(e)}`);
    assert.equal(e.status, 403);
    assert.equal(e.code, "model_not_allowed");
    return true;
  });
});

test("the grant's rate limit surfaces as RateLimitError with OpenAI's fields and headers", async () => {
  const { openai } = await paired({ requests_per_minute: 1 });
  const ok = await openai.chat.completions.create({ model: MODEL, messages });
  assert.equal(ok.choices[0]?.message.content, REPLY);
  await assert.rejects(openai.chat.completions.create({ model: MODEL, messages }), (e: unknown) => {
    assert.ok(e instanceof RateLimitError, `got ${String(e)}`);
    assert.ok(e instanceof OpenAI.APIError);
    assert.equal(e.status, 429);
    assert.equal(e.code, "rate_limit_exceeded");
    assert.equal(e.type, "rate_limit_error");
    assert.equal(e.param, null);
    assert.equal(e.headers?.get("x-ratelimit-limit-requests"), "1");
    assert.ok(e.headers?.get("retry-after"), "a Retry-After tells the client when to come back");
    assert.ok(e.message.length > 0);
    return true;
  });
  // Streams are refused the same way, before any chunk.
  await assert.rejects(openai.chat.completions.create({ model: MODEL, messages, stream: true }), RateLimitError);
});

test("a grant revoked by the owner mid-session surfaces as AuthenticationError", async () => {
  const { client, openai } = await paired();
  const before = await openai.chat.completions.create({ model: MODEL, messages });
  assert.equal(before.choices[0]?.message.content, REPLY);
  await revoke(mainGateway(), client.grantId);
  for (const call of [
    () => openai.chat.completions.create({ model: MODEL, messages }),
    () => openai.chat.completions.create({ model: MODEL, messages, stream: true }),
    () => openai.models.list(),
  ]) {
    await assert.rejects(call(), (e: unknown) => {
      assert.ok(e instanceof AuthenticationError, `got ${String(e)}`);
      assert.equal(e.status, 401);
      assert.equal(e.code, "grant_revoked");
      assert.equal(e.type, "authentication_error");
      assert.ok(!e.message.includes("DPoP "), "no token in the error");
      return true;
    });
  }
});
