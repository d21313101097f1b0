// Consent requests: what the app asked for, its key fingerprint (the app shows the same one),
// approve (optionally narrowed by editing the policy) or deny. `#/consents?user_code=CODE` shows
// that one request: the device flow's verification URI (`/admin/consent?user_code=CODE`) leads
// here, after sign-in when needed.

import { get, post } from './api.js';
import { button, fill, h, time, toast } from './dom.js';

/**
 * @typedef {import('../api-types').PendingView} PendingView
 * @typedef {import('../api-types').ListOf<PendingView>} Pending
 */

/** A user code as typed or linked, for comparison: upper case, letters only. @param {string} code */
function normalize(code) {
  return code.toUpperCase().replace(/[^A-Z]/g, '');
}

/** The user code the page is focused on (`#/consents?user_code=...`), if any. */
function focused() {
  const query = location.hash.split('?')[1] ?? '';
  const code = new URLSearchParams(query).get('user_code');
  return code ? code.trim() : null;
}

/** @param {PendingView} c */
function card(c) {
  const id = `consent-${c.user_code}`;
  const policy = h('textarea', { id: `${id}-policy`, rows: 8, spellcheck: 'false' });
  policy.value = JSON.stringify(c.requested_policy, null, 2);
  const err = h('p', { class: 'error', role: 'alert' });
  const section = h('section', { class: 'card consent', 'aria-labelledby': `${id}-title`, 'data-user-code': c.user_code },
    h('h2', { id: `${id}-title` }, c.app_name),
    h('dl', { class: 'grid' },
      h('div', {}, h('dt', {}, 'User code'), h('dd', {}, h('code', {}, c.user_code))),
      h('div', {}, h('dt', {}, 'Key fingerprint'), h('dd', {}, h('code', { class: 'fingerprint' }, c.key_fingerprint), h('span', { class: 'hint' }, ' (check the app shows the same)'))),
      h('div', {}, h('dt', {}, 'Asked'), h('dd', {}, time(c.created_at))),
      h('div', {}, h('dt', {}, 'Expires'), h('dd', {}, time(c.expires_at)))),
    h('label', { for: policy.id }, 'Policy to grant ', h('span', { class: 'hint' }, '(edit to narrow what the app asked for; it can never be widened)')),
    policy, err,
    h('div', { class: 'actions' },
      button('Approve', async () => {
        err.textContent = '';
        let edited;
        try {
          edited = JSON.parse(policy.value);
        } catch {
          err.textContent = 'The policy is not valid JSON.';
          return;
        }
        await post(`/admin/api/consents/${encodeURIComponent(c.user_code)}/approve`, { policy: edited });
        toast(`Approved ${c.app_name}.`);
        fill(section, h('p', {}, `Approved ${c.app_name}.`));
      }, 'primary'),
      button('Deny', async () => {
        await post(`/admin/api/consents/${encodeURIComponent(c.user_code)}/deny`);
        toast(`Denied ${c.app_name}.`);
        fill(section, h('p', {}, `Denied ${c.app_name}.`));
      }, 'danger')));
  return section;
}

/** @param {HTMLElement} root */
export async function render(root) {
  /** @type {Pending} */
  const pending = await get('/admin/api/consents');
  const code = focused();
  if (code !== null) {
    const all = h('p', {}, h('a', { href: '#/consents' }, 'All consent requests'));
    const c = pending.data.find((p) => normalize(p.user_code) === normalize(code));
    if (!c) {
      root.append(
        h('p', { role: 'status' }, 'No pending request has the code ', h('code', {}, code),
          ': it was already approved or denied, it expired, or the code is mistyped.'),
        all);
      return;
    }
    root.append(
      h('p', {}, 'An app asks for access to this gateway. Compare the key fingerprint with the one the app shows, then approve or deny.'),
      card(c), all);
    return;
  }
  if (pending.data.length === 0) {
    root.append(h('p', {}, 'No pending consent requests.'));
    return;
  }
  for (const c of pending.data) root.append(card(c));
}
