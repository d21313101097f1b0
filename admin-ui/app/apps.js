// Apps (grants): policy, remaining limits and budgets, last use, key fingerprint; edit the
// limits; suspend, resume, revoke; issue or revoke the optional bearer key.

import { get, post, put } from './api.js';
import { button, fill, h, table, time, toast } from './dom.js';
import { policyFields, policyOver } from './policy_form.js';

/**
 * @typedef {import('../api-types').GrantView} GrantView
 * @typedef {import('../api-types').RemainingView} RemainingView
 * @typedef {import('../api-types').ListOf<GrantView>} Grants
 * @typedef {import('../api-types').GrantPolicy} GrantPolicy
 * @typedef {import('../api-types').ListOf<import('../api-types').CatalogueModel>} Models
 */

/**
 * The "Edit limits" form: the pairing form's policy controls, filled in with the grant's
 * policy; saving replaces the policy (fields the form does not show are kept).
 * @param {HTMLElement} panel
 * @param {GrantView} g
 * @param {() => Promise<void>} reload
 */
async function editForm(panel, g, reload) {
  /** @type {Models} */
  const models = await get('/admin/api/models');
  const current = /** @type {Partial<GrantPolicy>} */ (g.policy);
  const err = h('p', { class: 'error', role: 'alert' });
  const titleId = `edit-${g.id}`;
  const form = h('form', { class: 'card', 'aria-labelledby': titleId },
    h('h3', { id: titleId }, `Edit limits of ${g.app_name}`),
    h('p', { class: 'hint' }, 'Applies from the app\'s next request. Spending so far counts against a lowered budget.'),
    policyFields(models.data, current),
    err,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Save limits'),
      button('Cancel', async () => fill(panel))));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    try {
      await put(`/admin/api/grants/${encodeURIComponent(g.id)}/policy`, { policy: policyOver(form, current) });
      toast(`${g.app_name}: limits saved.`);
      await reload();
    } catch (e) {
      err.textContent = e instanceof Error ? e.message : String(e);
    }
  });
  fill(panel, form);
  const first = form.querySelector('input');
  if (first) first.focus();
}

/**
 * @param {HTMLElement} box
 * @param {GrantView} g
 * @param {() => Promise<void>} reload
 */
async function details(box, g, reload) {
  /** @type {RemainingView} */
  const r = await get(`/admin/api/grants/${encodeURIComponent(g.id)}/remaining`);
  const secret = h('div', {});
  const panel = h('div', {});
  /** @param {string} action */
  const act = (action) => async () => {
    if (action === 'revoke' && !window.confirm(`Revoke ${g.app_name}? The app loses access at once.`)) return;
    await post(`/admin/api/grants/${encodeURIComponent(g.id)}/${action}`);
    toast(`${g.app_name}: ${action}d.`);
    await reload();
  };
  fill(box,
    h('h3', {}, 'Policy'), h('pre', {}, JSON.stringify(g.policy, null, 2)),
    h('h3', {}, 'Remaining'), h('pre', {}, Object.keys(r.remaining).length ? JSON.stringify(r.remaining, null, 2) : 'No limits set.'),
    h('div', { class: 'actions' },
      g.status !== 'revoked' ? button('Edit limits', async () => editForm(panel, g, reload)) : null,
      g.status === 'active' ? button('Suspend', act('suspend')) : null,
      g.status === 'suspended' ? button('Resume', act('resume')) : null,
      g.status !== 'revoked' ? button('Revoke', act('revoke'), 'danger') : null,
      g.status !== 'revoked' ? button('Issue bearer key', async () => {
        if (!window.confirm('A bearer key works without the app\'s private key. Issue one anyway?')) return;
        /** @type {{ bearer_key: string, expires_at: number, warning: string }} */
        const b = await post(`/admin/api/grants/${encodeURIComponent(g.id)}/bearer`, {});
        fill(secret, h('p', { class: 'hint' }, b.warning, '. Shown once; expires ', time(b.expires_at), '.'),
          h('input', { class: 'mono secret-once', readonly: true, value: b.bearer_key, size: 60, 'aria-label': 'Bearer key' }));
      }) : null,
      g.status !== 'revoked' ? button('Revoke bearer key', async () => {
        await post(`/admin/api/grants/${encodeURIComponent(g.id)}/bearer/revoke`);
        toast('Bearer key revoked.');
      }) : null),
    panel, secret);
}

/** @param {HTMLElement} root */
export async function render(root) {
  const list = h('div', {});
  const load = async () => {
    /** @type {Grants} */
    const grants = await get('/admin/api/grants');
    fill(list, table('Paired apps', ['App', 'Status', 'Key fingerprint', 'Last used', 'Created', ''],
      grants.data.map((g) => {
        const box = h('div', {});
        const d = h('details', { 'data-grant-id': g.id }, h('summary', {}, 'Details'), box);
        d.addEventListener('toggle', () => {
          if (d.open) details(box, g, load).catch((e) => fill(box, h('p', { class: 'error' }, String(e))));
        });
        return [g.app_name, h('span', { class: `status-${g.status}` }, g.status), h('code', {}, g.key_fingerprint),
          time(g.last_used_at), time(g.created_at), d];
      })));
  };
  await load();
  root.append(list);
}
