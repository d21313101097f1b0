// Consent requests: what the app asked for, its key fingerprint (the app shows the same one),
// approve (optionally narrowed by editing the policy) or deny.

import { get, post } from './api.js';
import { button, fill, h, time, toast } from './dom.js';

/**
 * @typedef {import('../api-types').PendingView} PendingView
 * @typedef {import('../api-types').ListOf<PendingView>} Pending
 */

/** @param {HTMLElement} root */
export async function render(root) {
  /** @type {Pending} */
  const pending = await get('/admin/api/consents');
  if (pending.data.length === 0) {
    root.append(h('p', {}, 'No pending consent requests.'));
    return;
  }
  for (const c of pending.data) {
    const id = `consent-${c.user_code}`;
    const policy = h('textarea', { id: `${id}-policy`, rows: 8, spellcheck: 'false' });
    policy.value = JSON.stringify(c.requested_policy, null, 2);
    const err = h('p', { class: 'error', role: 'alert' });
    const card = h('section', { class: 'card consent', 'aria-labelledby': `${id}-title`, 'data-user-code': c.user_code },
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
          fill(card, h('p', {}, `Approved ${c.app_name}.`));
        }, 'primary'),
        button('Deny', async () => {
          await post(`/admin/api/consents/${encodeURIComponent(c.user_code)}/deny`);
          toast(`Denied ${c.app_name}.`);
          fill(card, h('p', {}, `Denied ${c.app_name}.`));
        }, 'danger')));
    root.append(card);
  }
}
