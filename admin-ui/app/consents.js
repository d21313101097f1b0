// Consent requests: what the app asked for (as a summary), its key fingerprint (the app shows the
// same one), approve (optionally narrowed with the policy form) or deny; the list refreshes
// itself while open. `#/consents?user_code=CODE` shows that one request, its form open: the
// device flow's verification URI (`/admin/consent?user_code=CODE`) leads here, after sign-in
// when needed.

import { get, post } from './api.js';
import { button, fill, h, local, poll, toast } from './dom.js';
import { policyContext, policyFields, policyOver } from './policy_form.js';
import { policySummary } from './policy_summary.js';

/**
 * @typedef {import('../api-types').PendingView} PendingView
 * @typedef {import('../api-types').ListOf<PendingView>} Pending
 * @typedef {import('../api-types').GrantPolicy} GrantPolicy
 * @typedef {import('./policy_form.js').PolicyContext} PolicyContext
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

/**
 * @param {PendingView} c
 * @param {PolicyContext} ctx
 * @param {boolean} [open] the policy form shown at once
 */
function card(c, ctx, open = false) {
  const id = `consent-${c.user_code}`;
  const requested = /** @type {Partial<GrantPolicy>} */ (c.requested_policy);
  const err = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { 'aria-label': `Policy to grant ${c.app_name}` },
    h('details', { open },
      h('summary', {}, 'Narrow what it gets ', h('span', { class: 'hint' }, '(optional: fewer models, lower limits; never more than it asked for)')),
      policyFields(ctx, requested)),
    err,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Approve'),
      button('Deny', async () => {
        await post(`/admin/api/consents/${encodeURIComponent(c.user_code)}/deny`);
        toast(`Denied ${c.app_name}.`);
        fill(section, h('p', {}, `Denied ${c.app_name}.`));
      }, 'danger')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const submit = /** @type {HTMLButtonElement} */ (form.querySelector('button[type="submit"]'));
    submit.disabled = true;
    try {
      await post(`/admin/api/consents/${encodeURIComponent(c.user_code)}/approve`, { policy: policyOver(form, requested) });
      toast(`Approved ${c.app_name}.`);
      fill(section, h('p', {}, `Approved ${c.app_name}.`));
    } catch (e) {
      err.textContent = e instanceof Error ? e.message : String(e);
    } finally {
      submit.disabled = false;
    }
  });
  const section = h('section', { class: 'card consent', 'aria-labelledby': `${id}-title`, 'data-user-code': c.user_code },
    h('h2', { id: `${id}-title` }, c.app_name),
    h('dl', { class: 'grid' },
      h('div', {}, h('dt', {}, 'User code'), h('dd', {}, h('code', {}, c.user_code))),
      h('div', {}, h('dt', {}, 'Key fingerprint'), h('dd', {}, h('code', { class: 'fingerprint' }, c.key_fingerprint), h('span', { class: 'hint' }, ' (check the app shows the same)'))),
      h('div', {}, h('dt', {}, 'Asked'), h('dd', {}, local(c.created_at))),
      h('div', {}, h('dt', {}, 'Expires'), h('dd', {}, local(c.expires_at)))),
    h('h3', {}, 'It asks for'),
    policySummary(requested),
    form);
  return section;
}

/** @param {HTMLElement} root */
export async function render(root) {
  /** @type {[Pending, PolicyContext]} */
  const [pending, ctx] = await Promise.all([get('/admin/api/consents'), policyContext()]);
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
      card(c, ctx, true), all);
    return;
  }
  const empty = h('p', { class: 'empty' }, 'No pending consent requests. An app that asks for access with the device flow appears here by itself.');
  const list = h('div', {});
  /** @param {PendingView[]} rows */
  const show = (rows) => {
    // Cards being read or edited stay as they are: only new requests are added, gone ones removed.
    const codes = new Set(rows.map((c) => c.user_code));
    for (const el of list.querySelectorAll('section.consent')) {
      const s = /** @type {HTMLElement} */ (el);
      if (!codes.has(s.dataset.userCode ?? '') && s.querySelector('form')) s.remove();
    }
    for (const c of rows) {
      if (!list.querySelector(`section[data-user-code="${CSS.escape(c.user_code)}"]`)) list.append(card(c, ctx));
    }
    empty.hidden = list.querySelector('section.consent') !== null;
  };
  show(pending.data);
  poll(async () => {
    /** @type {Pending} */
    const p = await get('/admin/api/consents');
    show(p.data);
  });
  root.append(empty, list);
}
