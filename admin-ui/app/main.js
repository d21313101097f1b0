// The console's entry: owner setup (from the one-time link), login (password, passkey, or both),
// and the hash router that renders one page at a time into <main>.

import { ApiError, get, post, setCsrf, whenLoggedOut } from './api.js';
import { button, cleanups, fill, h, field, toast } from './dom.js';
import * as webauthn from './webauthn.js';
import * as overview from './overview.js';
import * as pairings from './pairings.js';
import * as consents from './consents.js';
import * as apps from './apps.js';
import * as credentials from './credentials.js';
import * as plugins from './plugins.js';
import * as usage from './usage.js';
import * as audit from './audit.js';
import * as account from './account.js';

/**
 * @typedef {import('../api-types').SessionView} SessionView
 * @typedef {import('../api-types').LoginView} LoginView
 * @typedef {import('../api-types').PasskeyChallenge} PasskeyChallenge
 */

/** @type {Record<string, { title: string, render: (main: HTMLElement) => Promise<void> }>} */
const PAGES = {
  overview: { title: 'Overview', render: overview.render },
  pairings: { title: 'Pairings', render: pairings.render },
  consents: { title: 'Consent requests', render: consents.render },
  apps: { title: 'Apps', render: apps.render },
  credentials: { title: 'Credentials', render: credentials.render },
  plugins: { title: 'Plugins', render: plugins.render },
  usage: { title: 'Usage', render: usage.render },
  audit: { title: 'Audit log', render: audit.render },
  account: { title: 'Account', render: account.render },
};

const main = /** @type {HTMLElement} */ (document.getElementById('main'));

/**
 * Where to go once signed in: the consent request named by the device flow's verification URI
 * (`/admin/consent?user_code=CODE`), or the overview.
 */
function afterSignIn() {
  if (location.pathname === '/admin/consent') {
    const code = new URLSearchParams(location.search).get('user_code');
    if (code) return `/admin/#/consents?user_code=${encodeURIComponent(code.trim())}`;
    return '/admin/#/consents';
  }
  return '/admin/#/overview';
}
const nav = /** @type {HTMLElement} */ (document.getElementById('nav'));

function currentPage() {
  const name = location.hash.replace(/^#\/?/, '').split('?')[0] || 'overview';
  return name in PAGES ? name : 'overview';
}

/** Stops what the page shown last left running (refreshes, countdowns). */
function leavePage() {
  while (cleanups.length) cleanups.pop()?.();
}

async function route() {
  leavePage();
  const t = document.getElementById('toast');
  if (t) t.textContent = '';
  const name = currentPage();
  const page = PAGES[name];
  for (const a of nav.querySelectorAll('a')) {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${page.title} · pairgate`;
  fill(main, h('h1', {}, page.title), h('p', {}, 'Loading…'));
  try {
    const container = h('div', {});
    await page.render(container);
    fill(main, h('h1', {}, page.title), container);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    fill(main, h('h1', {}, page.title), h('p', { class: 'error', role: 'alert' }, e instanceof Error ? e.message : String(e)));
  }
  main.focus();
}

/** @param {SessionView} s */
function loggedIn(s) {
  setCsrf(s.csrf_token);
  nav.hidden = false;
  if (location.pathname !== '/admin/') history.replaceState(null, '', afterSignIn());
  route();
}

/**
 * Completes a sign-in with a passkey: the browser's dialog, then the gateway's check.
 * @param {PasskeyChallenge} ch
 * @returns {Promise<SessionView>}
 */
async function passkeySignIn(ch) {
  const credential = await webauthn.get(ch.options);
  return post('/admin/api/login/passkey/finish', { challenge_id: ch.challenge_id, credential });
}

function showLogin() {
  leavePage();
  nav.hidden = true;
  document.title = 'Sign in · pairgate';
  const user = h('input', { name: 'username', autocomplete: 'username webauthn', required: true });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const err = h('p', { class: 'error', role: 'alert' });
  const status = h('p', { class: 'hint', role: 'status' });
  const waiting = location.pathname === '/admin/consent'
    ? h('p', { class: 'hint' }, 'An app is waiting for your approval: sign in to review its request.')
    : null;
  // Offered only when both the browser and the gateway can use passkeys (an IP-address
  // public_url, say, makes them unavailable on the gateway).
  const passkeyRow = h('div', { class: 'actions', hidden: true },
    button('Sign in with a passkey', async () => {
      err.textContent = '';
      try {
        loggedIn(await passkeySignIn(await post('/admin/api/login/passkey/start')));
      } catch (e) {
        err.textContent = e instanceof Error ? e.message : String(e);
      }
    }));
  if (webauthn.supported()) {
    get('/admin/api/login/passkey/options')
      .then((/** @type {{ passkeys: boolean }} */ o) => { passkeyRow.hidden = !o.passkeys; })
      .catch(() => { passkeyRow.hidden = true; });
  }
  const form = h('form', { class: 'card login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Sign in'), waiting,
    field('Username', user), field('Password', pass), err, status,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    passkeyRow);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    try {
      /** @type {LoginView} */
      const r = await post('/admin/api/login', { username: user.value, password: pass.value });
      if ('passkey_required' in r) {
        // The password was right; the owner requires a passkey as well.
        status.textContent = 'Now confirm with your passkey…';
        try {
          loggedIn(await passkeySignIn(r.passkey_required));
        } finally {
          status.textContent = '';
        }
      } else {
        loggedIn(r);
      }
    } catch (e) {
      err.textContent = e instanceof ApiError && e.code === 'owner_required'
        ? 'Wrong username or password.'
        : e instanceof Error ? e.message : String(e);
      pass.select();
    }
  });
  fill(main, form);
  user.focus();
}

/**
 * Whether a setup link is still good, asked without using it: the gateway checks the token
 * before the username and password, so an empty account is refused for being empty only when the
 * token is valid, and nothing is created.
 * @param {string} token
 */
async function setupLinkValid(token) {
  try {
    await post('/admin/api/setup', { token, username: '', password: '' });
  } catch (e) {
    return !(e instanceof ApiError && e.code === 'invalid_setup_token');
  }
  return true;
}

/** @param {string} token */
async function showSetup(token) {
  leavePage();
  nav.hidden = true;
  document.title = 'Create the owner · pairgate';
  if (!(await setupLinkValid(token))) {
    fill(main, h('section', { class: 'card login', 'aria-labelledby': 'setup-title' },
      h('h1', { id: 'setup-title' }, 'This setup link cannot be used'),
      h('p', {}, 'It was already used to create the owner account, or the gateway has restarted since (a new link is logged at every start until an owner exists).'),
      h('p', {}, h('a', { href: '/admin/' }, 'Sign in to the console'))));
    return;
  }
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, value: 'owner' });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 12 });
  const again = h('input', { name: 'again', type: 'password', autocomplete: 'new-password', required: true, minlength: 12 });
  const err = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'card login', 'aria-labelledby': 'setup-title' },
    h('h1', { id: 'setup-title' }, 'Create the owner account'),
    h('p', { class: 'hint' }, 'This one-time link creates the only account of this gateway.'),
    field('Username', user), field('Password', pass, '(12 characters or more)'), field('Password again', again), err,
    h('button', { type: 'submit', class: 'primary' }, 'Create account'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    if (pass.value !== again.value) {
      err.textContent = 'The passwords differ.';
      return;
    }
    try {
      loggedIn(await post('/admin/api/setup', { token, username: user.value, password: pass.value }));
      toast('Owner account created.');
    } catch (e) {
      err.textContent = e instanceof Error ? e.message : String(e);
    }
  });
  fill(main, form);
  pass.focus();
}

export async function start() {
  whenLoggedOut(showLogin);
  window.addEventListener('hashchange', () => {
    if (!nav.hidden) route();
  });
  if (location.pathname.endsWith('/setup')) {
    const token = location.hash.slice(1);
    // The token is single-use; keep it out of the history and of any later Referer.
    history.replaceState(null, '', '/admin/setup');
    await showSetup(token);
    return;
  }
  try {
    loggedIn(await get('/admin/api/session'));
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) showLogin();
  }
}

start();
