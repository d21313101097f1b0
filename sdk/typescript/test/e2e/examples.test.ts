// The runnable examples, run as a user would (`node dist/examples/…`) against the real gateway:
// chat pairs and then resumes from its session file; consent waits for the owner's approval.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { mainGateway, ownerPost, pairingString, STREAMED } from "./gateway.js";

const examples = fileURLToPath(new URL("../../examples/", import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs an example; `onLine` sees each stdout line as it arrives. */
function run(name: string, args: string[], env: Record<string, string>, onLine?: (line: string) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(examples, name), ...args], { env: { PATH: process.env.PATH ?? "", ...env } });
    let stdout = "";
    let stderr = "";
    let pending = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        onLine?.(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill(), 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test("examples/chat pairs, streams the answer, then resumes from its 0600 session file", async () => {
  const gw = mainGateway();
  const session = join(await mkdtemp(join(tmpdir(), "pairgate-ts-")), "session.json");
  const first = await run("chat.js", ["hello"], { PAIRING: await pairingString(gw), PAIRGATE_SESSION: session });
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.stdout, `${STREAMED}\n`);
  assert.match(first.stderr, /^paired: grant \S+, key \S{4}-\S{4}-\S{4}-\S{4}\n$/);
  assert.equal((await stat(session)).mode & 0o777, 0o600);
  const again = await run("chat.js", ["hello again"], { PAIRGATE_SESSION: session });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout, `${STREAMED}\n`);
  assert.equal(again.stderr, "", "no second pairing");
  const none = await run("chat.js", [], { PAIRGATE_SESSION: join(tmpdir(), "pairgate-ts-missing-session.json") });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /set PAIRING/);
});

test("examples/consent shows the code and fingerprint and finishes once the owner approves", async () => {
  const gw = mainGateway();
  const session = join(await mkdtemp(join(tmpdir(), "pairgate-ts-")), "session.json");
  let approval: Promise<unknown> | undefined;
  const result = await run("consent.js", [gw.url], { PAIRGATE_SESSION: session }, (line) => {
    const code = /^user code: (\S+)$/.exec(line)?.[1];
    if (code) approval = ownerPost(gw, `/admin/api/consents/${code}/approve`, {});
  });
  assert.ok(approval, `no user code shown: ${result.stdout}`);
  await approval;
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^key fingerprint: \S{4}-\S{4}-\S{4}-\S{4}$/m);
  assert.match(result.stdout, /^approved: grant \S+$/m);
  assert.equal((await stat(session)).mode & 0o777, 0o600);
});
