// Credentials: add, rotate (with a grace period), test (decrypt or fetch now, then one cheap
// authenticated call to the provider), delete. A value is sent once and never shown again: the
// list shows a fingerprint and the last characters.

import { get, post } from './api.js';
import { button, field, fill, h, intVal, table, time, toast, val } from './dom.js';

/**
 * @typedef {import('../api-types').CredentialInfo} CredentialInfo
 * @typedef {import('../api-types').CredentialTest} CredentialTest
 * @typedef {import('../api-types').ListOf<CredentialInfo>} Credentials
 */

/** @param {HTMLElement} root */
export async function render(root) {
  const list = h('div', {});
  const panel = h('div', {});
  const load = async () => {
    /** @type {Credentials} */
    const creds = await get('/admin/api/credentials');
    fill(list, table('Provider keys (values are never shown)',
      ['Provider', 'Name', 'Kind', 'Fingerprint', 'Ends with', 'Created', 'Rotated', 'Old value usable until', ''],
      creds.data.map((c) => [c.provider, c.name, c.kind + (c.source ? ` (${c.source})` : ''), h('code', {}, c.fingerprint), h('code', {}, '…' + c.last4),
        time(c.created_at), time(c.rotated_at), time(c.grace_until),
        h('div', { class: 'actions' },
          button('Test against provider', async () => {
            /** @type {CredentialTest} */
            const r = await post(`/admin/api/credentials/${encodeURIComponent(c.id)}/check`);
            const pc = r.provider_check;
            const latency = pc.latency_ms === null ? '' : ` in ${pc.latency_ms} ms`;
            toast(`${c.provider}/${c.name}: decrypts here (fingerprint ${r.resolved_fingerprint}); provider: ${pc.outcome.replace('_', ' ')}${latency}. ${pc.message}`);
          }),
          c.kind === 'stored' ? button('Rotate', async () => rotateForm(panel, c, load)) : null,
          button('Delete', async () => {
            if (!window.confirm(`Delete ${c.provider}/${c.name}? Apps using it fail until a new key is added.`)) return;
            await post(`/admin/api/credentials/${encodeURIComponent(c.id)}/delete`);
            toast(`Deleted ${c.provider}/${c.name}.`);
            await load();
          }, 'danger'))])));
  };
  const err = h('p', { class: 'error', role: 'alert' });
  const value = h('input', { name: 'value', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const form = h('form', { class: 'card', 'aria-labelledby': 'add-title' },
    h('h2', { id: 'add-title' }, 'Add a provider key'),
    h('div', { class: 'grid' },
      field('Provider', h('input', { name: 'provider', required: true, list: 'known-providers', placeholder: 'openai' })),
      field('Name', h('input', { name: 'name', placeholder: 'default' })),
      field('Key', value, '(sent once, sealed, never shown again)')),
    h('datalist', { id: 'known-providers' }, ['openai', 'anthropic', 'gemini', 'resend'].map((p) => h('option', { value: p }))),
    err, h('button', { type: 'submit', class: 'primary' }, 'Add key'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    try {
      /** @type {CredentialInfo} */
      const c = await post('/admin/api/credentials', { provider: val(form, 'provider'), name: val(form, 'name') || undefined, value: value.value });
      form.reset();
      toast(`Added ${c.provider}/${c.name} (fingerprint ${c.fingerprint}).`);
      await load();
    } catch (e) {
      err.textContent = e instanceof Error ? e.message : String(e);
    } finally {
      value.value = '';
    }
  });
  await load();
  root.append(form, panel, list);
}

/**
 * @param {HTMLElement} panel
 * @param {CredentialInfo} c
 * @param {() => Promise<void>} reload
 */
function rotateForm(panel, c, reload) {
  const value = h('input', { name: 'value', type: 'password', autocomplete: 'off', required: true });
  const err = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'card', 'aria-labelledby': 'rotate-title' },
    h('h2', { id: 'rotate-title' }, `Rotate ${c.provider}/${c.name}`),
    h('div', { class: 'grid' },
      field('New key', value),
      field('Old key stays usable for (minutes)', h('input', { name: 'grace_min', type: 'number', min: 0, value: 60 }))),
    err,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Rotate'),
      button('Cancel', async () => fill(panel))));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await post(`/admin/api/credentials/${encodeURIComponent(c.id)}/rotate`, { value: value.value, grace_secs: (intVal(form, 'grace_min') ?? 60) * 60 });
      fill(panel);
      toast(`Rotated ${c.provider}/${c.name}.`);
      await reload();
    } catch (e) {
      err.textContent = e instanceof Error ? e.message : String(e);
    } finally {
      value.value = '';
    }
  });
  fill(panel, form);
  value.focus();
}
