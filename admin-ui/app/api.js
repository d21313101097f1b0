// The admin JSON API client: same-origin fetch with the session cookie, the CSRF token on every
// state-changing request, and errors turned into `ApiError` with the server's message.

let csrf = '';

/** @param {string} token */
export function setCsrf(token) {
  csrf = token;
}

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Called when a request finds no session (the page then shows the login form). */
/** @type {() => void} */
let onLoggedOut = () => {};

/** @param {() => void} f */
export function whenLoggedOut(f) {
  onLoggedOut = f;
}

/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
export async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json' };
  if (method !== 'GET') {
    headers['content-type'] = 'application/json';
    headers['x-csrf-token'] = csrf;
  }
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  /** @type {any} */
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const code = json?.error?.code ?? 'error';
    const message = json?.error?.message ?? `${method} ${path} failed with ${res.status}`;
    // A refused login answers 401 too: that form shows its own error.
    if (res.status === 401 && code === 'owner_required' && !path.endsWith('/login')) onLoggedOut();
    throw new ApiError(res.status, code, message);
  }
  return json;
}

/**
 * @template T
 * @param {string} path
 * @returns {Promise<T>}
 */
export function get(path) {
  return api('GET', path);
}

/**
 * @template T
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<T>}
 */
export function post(path, body) {
  return api('POST', path, body ?? {});
}

/**
 * @template T
 * @param {string} path
 * @param {unknown} body
 * @returns {Promise<T>}
 */
export function put(path, body) {
  return api('PUT', path, body);
}
