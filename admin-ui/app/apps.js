// Apps (grants): spend over 30 days on the list; details as a readable summary of the policy with
// budget bars and reset times (policy_summary.js); edit the limits; suspend, resume, revoke;
// issue or revoke the optional bearer key.

import { get, post, put } from './api.js';
import { button, fill, h, local, table, time, toast, usd } from './dom.js';
import { policyContext, policyFields, policyOver } from './policy_form.js';
import { policySummary } from './policy_summary.js';

/**
 * @typedef {import('../api-types').GrantView} GrantView
 * @typedef {import('../api-types').RemainingView} RemainingView
 * @typedef {import('../api-types').ListOf<GrantView>} Grants
 * @typedef {import('../api-types').GrantPolicy} GrantPolicy
 * @typedef {import('../api-types').UsageRollup} UsageRollup
 */

/**
 * The "Edit limits" form: the pairing form's policy controls, filled in with the grant's
 * policy; saving replaces the policy (fields the form does not show are kept).
 * @param {HTMLElement} panel
 * @param {GrantView} g
 * @param {() => Promise<void>} reload
 */
async function editForm(panel, g, reload) {
  const ctx = await policyContext();
  const current = /** @type {Partial<GrantPolicy>} */ (g.policy);
  const err = h('p', { class: 'error', role: 'alert' });
  const titleId = `edit-${g.id}`;
  const form = h('form', { class: 'card', 'aria-labelledby': titleId },
    h('h3', { id: titleId }, `Edit limits of ${g.app_name}`),
    h('p', { class: 'hint' }, 'Applies from the app\'s next request. Spending so far counts against a lowered budget.'),
    policyFields(ctx, current),
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
  const titleId = `app-${g.id}-title`;
  box.setAttribute('aria-labelledby', titleId);
  box.dataset.grantId = g.id;
  fill(box,
    h('h2', { id: titleId }, g.app_name, ' ', h('span', { class: `status-${g.status}` }, g.status)),
    h('p', { class: 'hint' }, `Paired ${local(g.created_at)} by ${g.origin}; key ${g.key_alg}. Last used ${g.last_used_at ? local(g.last_used_at) : 'never'}.`),
    policySummary(/** @type {Partial<GrantPolicy>} */ (g.policy), r.remaining),
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
  const box = h('section', { class: 'card app-details', hidden: true });
  /** @type {string | null} */
  let open = null;
  /** @param {GrantView} g */
  const show = async (g) => {
    open = g.id;
    box.hidden = false;
    await details(box, g, load);
  };
  const load = async () => {
    /** @type {[Grants, UsageRollup]} */
    const [grants, usage] = await Promise.all([get('/admin/api/grants'), get('/admin/api/usage/rollup')]);
    /** @type {Map<string, number>} */
    const spend = new Map();
    for (const u of usage.rows) {
      if (u.grant_id) spend.set(u.grant_id, (spend.get(u.grant_id) ?? 0) + u.cost_micros);
    }
    fill(list, table('Paired apps; spend over the last 30 days', ['App', 'Status', 'Spend (30 days)', 'Key fingerprint', 'Last used', 'Paired', ''],
      grants.data.map((g) => [g.app_name, h('span', { class: `status-${g.status}` }, g.status), usd(spend.get(g.id) ?? 0),
        h('code', {}, g.key_fingerprint), local(g.last_used_at), local(g.created_at),
        button('Details', async () => {
          await show(g);
          box.scrollIntoView({ block: 'start' });
        })]),
      ['Spend (30 days)'],
      h('span', {}, 'No apps yet. ', h('a', { href: '#/credentials' }, 'Add a provider key'), ', then ', h('a', { href: '#/pairings' }, 'create a pairing'), ' and give its string to the app.')));
    const current = grants.data.find((g) => g.id === open);
    if (current) await show(current);
  };
  await load();
  root.append(list, box);
}
