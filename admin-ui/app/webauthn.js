// WebAuthn in the browser: turns the gateway's options (webauthn-rs JSON, binary fields as
// base64url strings) into what navigator.credentials expects, and the credential it returns back
// into that JSON.

/** @param {string} s base64url, with or without padding */
export function fromB64url(s) {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** @param {ArrayBuffer} buf */
export function toB64url(buf) {
  let bin = '';
  for (const b of new Uint8Array(buf)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Whether this browser offers WebAuthn here (it needs https, or http://localhost). */
export function supported() {
  return window.isSecureContext && typeof window.PublicKeyCredential === 'function';
}

/**
 * The credential as JSON around its encoded response, with the client extension results the
 * gateway understands (others are dropped).
 * @param {PublicKeyCredential} cred
 * @param {Record<string, unknown>} response
 */
function encode(cred, response) {
  const all = /** @type {Record<string, unknown>} */ (cred.getClientExtensionResults());
  /** @type {Record<string, unknown>} */
  const extensions = {};
  for (const k of ['appid', 'credProps']) if (k in all) extensions[k] = all[k];
  return { id: cred.id, rawId: toB64url(cred.rawId), type: cred.type, response, extensions };
}

/**
 * @param {any} list
 * @returns {PublicKeyCredentialDescriptor[] | undefined}
 */
function descriptors(list) {
  if (!Array.isArray(list)) return undefined;
  return list.map((/** @type {any} */ c) => ({ ...c, id: fromB64url(c.id) }));
}

/**
 * Creates a passkey from registration options (`{ publicKey }`); returns the JSON to send back.
 * @param {import('../api-types').JsonValue} options
 */
export async function create(options) {
  const pk = /** @type {any} */ (options).publicKey;
  /** @type {PublicKeyCredentialCreationOptions} */
  const publicKey = {
    ...pk,
    challenge: fromB64url(pk.challenge),
    user: { ...pk.user, id: fromB64url(pk.user.id) },
    excludeCredentials: descriptors(pk.excludeCredentials),
  };
  const cred = /** @type {PublicKeyCredential | null} */ (await navigator.credentials.create({ publicKey }));
  if (!cred) throw new Error('No passkey was created.');
  const res = /** @type {AuthenticatorAttestationResponse} */ (cred.response);
  return encode(cred, {
    attestationObject: toB64url(res.attestationObject),
    clientDataJSON: toB64url(res.clientDataJSON),
    transports: typeof res.getTransports === 'function' ? res.getTransports() : [],
  });
}

/**
 * Signs a sign-in challenge (`{ publicKey }`) with a passkey; returns the JSON to send back.
 * @param {import('../api-types').JsonValue} options
 */
export async function get(options) {
  const pk = /** @type {any} */ (options).publicKey;
  /** @type {PublicKeyCredentialRequestOptions} */
  const publicKey = { ...pk, challenge: fromB64url(pk.challenge), allowCredentials: descriptors(pk.allowCredentials) };
  const cred = /** @type {PublicKeyCredential | null} */ (await navigator.credentials.get({ publicKey }));
  if (!cred) throw new Error('No passkey was used.');
  const res = /** @type {AuthenticatorAssertionResponse} */ (cred.response);
  return encode(cred, {
    authenticatorData: toB64url(res.authenticatorData),
    clientDataJSON: toB64url(res.clientDataJSON),
    signature: toB64url(res.signature),
    userHandle: res.userHandle ? toB64url(res.userHandle) : null,
  });
}
