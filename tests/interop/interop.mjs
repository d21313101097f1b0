// pairgate through generic libraries only, no pairgate code: oauth4webapi for discovery, the
// pairing grant (as a generic grant), refresh and the device flow (RFC 8628 with RFC 9449's
// `dpop_jkt`), the `dpop` package for resource proofs (with pairgate's `bsh` body-hash claim as an
// additional claim), and the official `openai` package with a fetch that signs each request.
// Run by tests/e2e/interop.rs: PAIRGATE_URL and PAIRGATE_PAIRING in the environment; it prints
// `USER_CODE <code>` when the owner must approve a device request, and `INTEROP OK` at the end.

import { createHash } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import * as DPoP from 'dpop';
import OpenAI from 'openai';

const base = process.env.PAIRGATE_URL;
const pairingCode = process.env.PAIRGATE_PAIRING;
if (!base || !pairingCode) throw new Error('set PAIRGATE_URL and PAIRGATE_PAIRING');
const insecure = { [oauth.allowInsecureRequests]: true };

const issuer = new URL(base);
const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
);
const client = { client_id: 'pairgate-interop' };

/** Retries a token-endpoint call once when the server asks for a DPoP nonce. */
async function withNonce(/** @type {() => Promise<any>} */ call) {
  try {
    return await call();
  } catch (e) {
    if (oauth.isDPoPNonceError(e)) return await call();
    throw e;
  }
}

/** A fetch for the `openai` package: every request carries the access token and a fresh proof. */
function signingFetch(/** @type {CryptoKeyPair} */ keyPair, /** @type {() => string} */ token) {
  let nonce;
  return async (/** @type {any} */ input, /** @type {any} */ init = {}) => {
    const url = new URL(typeof input === 'string' ? input : input.url);
    const method = (init.method ?? 'GET').toUpperCase();
    const body = typeof init.body === 'string' ? init.body : init.body ? Buffer.from(await new Response(init.body).arrayBuffer()) : '';
    const send = async () => {
      const htu = url.origin + url.pathname;
      const bsh = createHash('sha256').update(body).digest('base64url');
      const proof = await DPoP.generateProof(keyPair, htu, method, nonce, token(), { bsh });
      const headers = new Headers(init.headers);
      headers.set('authorization', `DPoP ${token()}`);
      headers.set('dpop', proof);
      const res = await fetch(url, { ...init, method, headers, body: body === '' ? undefined : body });
      nonce = res.headers.get('dpop-nonce') ?? nonce;
      return res;
    };
    const res = await send();
    if (res.status === 401 && (res.headers.get('www-authenticate') ?? '').includes('use_dpop_nonce')) return send();
    return res;
  };
}

async function chatTwice(/** @type {CryptoKeyPair} */ keyPair, /** @type {() => string} */ token) {
  const openai = new OpenAI({ apiKey: 'unused', baseURL: `${base}/v1`, fetch: signingFetch(keyPair, token) });
  const chat = await openai.chat.completions.create({
    model: 'openai/gpt-4o-mini',
    max_tokens: 20,
    messages: [{ role: 'user', content: 'hello' }],
  });
  if (!chat.choices[0]?.message?.content) throw new Error(`no answer: ${JSON.stringify(chat)}`);
  const stream = await openai.chat.completions.create({
    model: 'openai/gpt-4o-mini',
    max_tokens: 20,
    stream: true,
    messages: [{ role: 'user', content: 'hello' }],
  });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  if (!text) throw new Error('the stream carried no text');
}

// 1. A pairing string, redeemed as a generic grant with a proof by a key made here.
const keyPair = await oauth.generateKeyPair('Ed25519');
const dpop = oauth.DPoP(client, keyPair);
let tokens = await withNonce(async () => oauth.processGenericTokenEndpointResponse(
  as, client,
  await oauth.genericTokenEndpointRequest(as, client, oauth.None(), 'urn:pairgate:params:oauth:grant-type:pairing',
    { pairing_code: pairingCode, client_name: 'interop' }, { DPoP: dpop, ...insecure }),
));
if (tokens.token_type.toLowerCase() !== 'dpop') throw new Error(`token_type ${tokens.token_type}`);
await chatTwice(keyPair, () => tokens.access_token);

// 2. Refresh, then the new access token works.
const before = tokens.access_token;
tokens = await withNonce(async () => oauth.processRefreshTokenResponse(
  as, client,
  await oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token, { DPoP: dpop, ...insecure }),
));
if (tokens.access_token === before) throw new Error('refresh returned the same access token');
await chatTwice(keyPair, () => tokens.access_token);

// 3. The device flow: the key is named by `dpop_jkt` (RFC 9449 §10), with no proof on the
// device authorization request; the owner approves; the token poll proves that key.
const deviceKeys = await oauth.generateKeyPair('ES256');
const jkt = await DPoP.calculateThumbprint(deviceKeys.publicKey);
const device = await oauth.processDeviceAuthorizationResponse(
  as, client,
  await oauth.deviceAuthorizationRequest(as, client, oauth.None(), { client_name: 'interop device', dpop_jkt: jkt }, insecure),
);
console.log(`USER_CODE ${device.user_code}`);
const deviceDpop = oauth.DPoP(client, deviceKeys);
let interval = device.interval ?? 1;
let deviceTokens;
for (let i = 0; i < 60 && !deviceTokens; i++) {
  await new Promise((r) => setTimeout(r, interval * 1000));
  try {
    deviceTokens = await withNonce(async () => oauth.processDeviceCodeResponse(
      as, client,
      await oauth.deviceCodeGrantRequest(as, client, oauth.None(), device.device_code, { DPoP: deviceDpop, ...insecure }),
    ));
  } catch (e) {
    const code = e instanceof oauth.ResponseBodyError ? e.error : '';
    if (code === 'slow_down') interval += 1;
    else if (code !== 'authorization_pending') throw e;
  }
}
if (!deviceTokens) throw new Error('the device request was never approved');
await chatTwice(deviceKeys, () => deviceTokens.access_token);

console.log('INTEROP OK');
