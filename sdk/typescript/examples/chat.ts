// Runnable example: pair once with a pairing string, keep the session in a 0600 file, then chat
// through the official `openai` package (streamed). Run after `npm run build`:
//   PAIRING='pgpair1…' node dist/examples/chat.js "Say hello"
// Later runs resume from the session file (PAIRGATE_SESSION, default ./pairgate-session.json).

import OpenAI from "openai";

import { Client, FileStorage } from "@pairgate/sdk/node";

const storage = new FileStorage(process.env.PAIRGATE_SESSION ?? "pairgate-session.json");
let client = await Client.fromStorage(storage);
if (client === null) {
  const pairing = process.env.PAIRING;
  if (!pairing) {
    console.error("no saved session: set PAIRING to the pgpair1… string the gateway's owner gave you");
    process.exit(2);
  }
  client = await Client.pair(pairing, { appName: "chat example" }, storage);
  console.error(`paired: grant ${client.grantId}, key ${client.keyFingerprint}`);
}

const openai = new OpenAI(client.openaiOptions());
const stream = await openai.chat.completions.create({
  model: process.env.MODEL ?? "openai/gpt-4o-mini",
  messages: [{ role: "user", content: process.argv[2] ?? "Say hello" }],
  stream: true,
});
for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? "");
process.stdout.write("\n");
