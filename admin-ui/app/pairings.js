// Pairings: create a pairing for a named app with its policy (policy_form.js; a pairing with no
// limit at all is confirmed first), show it once as a copyable string and a QR code with a countdown;
// list unused pairings and cancel them.

import { get, post } from './api.js';
import { button, cleanups, field, fill, h, intVal, table, time, toast, val } from './dom.js';
import { hasLimits, policyContext, policyFields, policyOf } from './policy_form.js';

/**
 * @typedef {import('../api-types').CreatedPairing} CreatedPairing
 * @typedef {import('../api-types').PairingRow} PairingRow
 * @typedef {import('../api-types').QrView} QrView
 * @typedef {import('../api-types').ListOf<PairingRow>} Pairings
 */

/**
 * Shows a pairing once: string, copy button, QR code, countdown.
 * @param {HTMLElement} box
 * @param {CreatedPairing} created
 */
async function showCreated(box, created) {
  const input = h('input', { id: 'pairing-string', class: 'mono secret-once', readonly: true, value: created.pairing_string, size: 60, 'aria-describedby': 'pairing-hint' });
  const countdown = h('span', { class: 'countdown', id: 'pairing-countdown', 'aria-live': 'off' });
  /** @type {QrView} */
  const qr = await post('/admin/api/qr', { text: created.pairing_string });
  const img = h('img', { alt: 'QR code of the pairing string', src: 'data:image/svg+xml;base64,' + btoa(qr.svg) });
  const tick = () => {
    const left = Math.max(0, Math.round((created.expires_at - Date.now()) / 1000));
    countdown.textContent = left > 0 ? `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}` : 'expired';
  };
  tick();
  const timer = window.setInterval(tick, 1000);
  cleanups.push(() => window.clearInterval(timer));
  fill(box,
    h('section', { class: 'card', 'aria-labelledby': 'created-title' },
      h('h2', { id: 'created-title' }, 'New pairing'),
      h('p', { id: 'pairing-hint', class: 'hint' }, 'Give this string to the app (or scan the code). It is shown only now and works once. Expires in ', countdown, '.'),
      field('Pairing string', input),
      h('div', { class: 'actions' },
        button('Copy', async () => {
          await navigator.clipboard.writeText(created.pairing_string).catch(() => {
            input.select();
          });
          toast('Copied.');
        })),
      h('div', { class: 'qr' }, img)));
  input.focus();
  input.select();
}

/** @param {HTMLElement} root */
export async function render(root) {
  /** @type {[import('./policy_form.js').PolicyContext, Pairings]} */
  const [ctx, pairings] = await Promise.all([policyContext(), get('/admin/api/pairings')]);
  const created = h('div', {});
  const list = h('div', {});
  const err = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'card', 'aria-labelledby': 'new-title' },
    h('h2', { id: 'new-title' }, 'Create a pairing'),
    h('div', { class: 'grid' },
      field('App name', h('input', { name: 'app_name', placeholder: 'my app', required: true, maxlength: 100 }), '(shown in Apps and Usage)'),
      field('Pairing valid for (minutes)', h('input', { name: 'ttl_min', type: 'number', min: 1, value: 10 }))),
    ctx.keys === 0
      ? h('p', { class: 'warn' }, 'No provider key yet: add one on the ', h('a', { href: '#/credentials' }, 'Credentials'), ' page first, or the app\'s requests will fail.')
      : null,
    policyFields(ctx),
    err,
    h('button', { type: 'submit', class: 'primary' }, 'Create pairing'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    try {
      const ttl = intVal(form, 'ttl_min') ?? 10;
      const name = val(form, 'app_name');
      if (!name) throw new Error('Name the app: its name is how you will recognise it in Apps and Usage.');
      const policy = policyOf(form);
      if (!hasLimits(policy) && !window.confirm(`${name} would have no limits at all: no rate limit, no budget, no end date. Create the pairing anyway?`)) return;
      /** @type {CreatedPairing} */
      const c = await post('/admin/api/pairings', {
        app_name: name,
        ttl_secs: ttl * 60,
        policy,
      });
      await showCreated(created, c);
      await renderList(list);
      created.scrollIntoView({ block: 'nearest' });
    } catch (e) {
      err.textContent = e instanceof Error ? e.message : String(e);
    }
  });
  renderRows(list, pairings.data);
  root.append(form, created, h('h2', {}, 'Unused pairings'), list);
}

/** @param {HTMLElement} list */
async function renderList(list) {
  /** @type {Pairings} */
  const p = await get('/admin/api/pairings');
  renderRows(list, p.data);
}

/**
 * @param {HTMLElement} list
 * @param {PairingRow[]} rows
 */
function renderRows(list, rows) {
  fill(list, table('Pairings not redeemed yet (their strings cannot be shown again)',
    ['App', 'Id', 'Created', 'Expires', ''],
    rows.map((r) => [r.app_name ?? '–', h('code', {}, r.id), time(r.created_at), time(r.expires_at),
      button('Cancel', async () => {
        await post(`/admin/api/pairings/${encodeURIComponent(r.id)}/cancel`);
        toast('Pairing cancelled.');
        await renderList(list);
      }, 'danger')]), [], 'No unused pairings. Create one above, then give its string to the app.'));
}
