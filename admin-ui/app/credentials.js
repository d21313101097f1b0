// Credentials: add (for one of the enabled providers), rotate (with a grace period), test (decrypt
// or fetch now, then one cheap authenticated call to the provider; the result stays on the row
// with its time and latency), delete. A value is sent once and never shown again: the
// list shows a fingerprint and the last characters.

import { get, post } from './api.js';
import { button, field, fill, h, intVal, local, table, toast, val } from './dom.js';

/**
 * @typedef {import('../api-types').CredentialInfo} CredentialInfo
 * @typedef {import('../api-types').CredentialTest} CredentialTest
 * @typedef {import('../api-types').ListOf<CredentialInfo>} Credentials
 * @typedef {import('../api-types').PluginsView} PluginsView
 */

/** The last test of each credential (by id), kept while the console is open. */
/** @type {Map<string, { at: number, test: CredentialTest }>} */
const tests = new Map();

/** @type {Record<string, string>} */
const OUTCOME = { ok: 'works', rejected: 'key refused', unreachable: 'unreachable', timeout: 'timed out', provider_error: 'provider error', not_testable: 'not testable' };

/**
 * The "Last test" cell of a credential.
 * @param {string} id
 */
function lastTest(id) {
  const t = tests.get(id);
  if (!t) return h('span', { class: 'hint' }, 'not tested yet');
  const pc = t.test.provider_check;
  const good = pc.outcome === 'ok';
  return h('div', { class: 'test-result', title: pc.message },
    h('strong', { class: good ? 'ok' : pc.outcome === 'not_testable' ? 'hint' : 'error' }, OUTCOME[pc.outcome] ?? pc.outcome),
    pc.status !== null ? ` (HTTP ${pc.status})` : '',
    pc.latency_ms !== null ? `, ${pc.latency_ms} ms` : '',
    h('br', {}),
    h('span', { class: 'hint' }, `decrypts here (${t.test.resolved_fingerprint}); ${local(t.at)}`),
    good ? null : h('div', { class: 'hint' }, pc.message));
}


/** @param {HTMLElement} root */
export async function render(root) {
  const list = h('div', {});
  const panel = h('div', {});
  /** @type {PluginsView} */
  const plugins = await get('/admin/api/plugins');
  // Providers whose plugin sends a key (a local runtime such as Ollama needs none).
  const enabled = plugins.providers.filter((p) => p.needs_credential).map((p) => p.id).sort();
  const load = async () => {
    /** @type {Credentials} */
    const creds = await get('/admin/api/credentials');
    fill(list, table('Provider keys (values are never shown)',
      ['Provider', 'Name', 'Kind', 'Fingerprint', 'Ends with', 'Added', 'Rotated', 'Old value usable until', 'Last test', ''],
      creds.data.map((c) => [c.provider, c.name, c.kind + (c.source ? ` (${c.source})` : ''), h('code', {}, c.fingerprint), h('code', {}, '…' + c.last4),
        local(c.created_at), local(c.rotated_at), local(c.grace_until), lastTest(c.id),
        h('div', { class: 'actions' },
          button('Test against provider', async () => {
            /** @type {CredentialTest} */
            const r = await post(`/admin/api/credentials/${encodeURIComponent(c.id)}/check`);
            tests.set(c.id, { at: Date.now(), test: r });
            toast(`${c.provider}/${c.name}: ${OUTCOME[r.provider_check.outcome] ?? r.provider_check.outcome}.`);
            await load();
          }),
          c.kind === 'stored' ? button('Rotate', async () => rotateForm(panel, c, load)) : null,
          button('Delete', async () => {
            if (!window.confirm(`Delete ${c.provider}/${c.name}? Apps using it fail until a new key is added.`)) return;
            await post(`/admin/api/credentials/${encodeURIComponent(c.id)}/delete`);
            tests.delete(c.id);
            toast(`Deleted ${c.provider}/${c.name}.`);
            await load();
          }, 'danger'))]),
      [], 'No provider keys yet. Add one above (an OpenAI or Anthropic API key, say); then create a pairing for an app.'));
  };
  const err = h('p', { class: 'error', role: 'alert' });
  const value = h('input', { name: 'value', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const provider = h('select', { name: 'provider', required: true },
    h('option', { value: '' }, 'choose…'), enabled.map((p) => h('option', { value: p }, p)));
  const form = h('form', { class: 'card', 'aria-labelledby': 'add-title' },
    h('h2', { id: 'add-title' }, 'Add a provider key'),
    h('div', { class: 'grid' },
      field('Provider', provider, '(enabled in the configuration)'),
      field('Name', h('input', { name: 'name', placeholder: 'default' })),
      field('Key', value, '(sent once, sealed, never shown again)')),
    err, h('button', { type: 'submit', class: 'primary' }, 'Add key'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    try {
      if (!enabled.includes(provider.value)) throw new Error('Choose one of the enabled providers.');
      /** @type {CredentialInfo} */
      const c = await post('/admin/api/credentials', { provider: provider.value, name: val(form, 'name') || undefined, value: value.value });
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
