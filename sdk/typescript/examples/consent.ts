// Runnable example: no pairing string, ask the gateway's owner instead (device flow). Shows the
// user code and this app's key fingerprint, waits for the owner's decision, saves the session.
//   node dist/examples/consent.js https://gateway.example
// The owner approves with `pairgate consent approve CODE` or in the admin UI, after checking
// that the fingerprint matches.

import { Client, ConsentDeniedError, FileStorage } from "@pairgate/sdk/node";

const gateway = process.argv[2] ?? process.env.PAIRGATE_URL;
if (!gateway) {
  console.error("usage: node dist/examples/consent.js GATEWAY_URL");
  process.exit(2);
}
const storage = new FileStorage(process.env.PAIRGATE_SESSION ?? "pairgate-session.json");
const policy = { models: ["openai/gpt-4o-mini"], requests_per_minute: 30 };
const pending = await Client.requestConsent(gateway, "consent example", policy, {}, storage);
console.log(`user code: ${pending.userCode}`);
console.log(`key fingerprint: ${pending.keyFingerprint}`);
console.log(`approve at: ${pending.verificationUriComplete}`);
try {
  const client = await pending.wait();
  console.log(`approved: grant ${client.grantId}`);
} catch (e) {
  if (e instanceof ConsentDeniedError) {
    console.error("the owner denied the request");
    process.exit(1);
  }
  throw e;
}
