// Pairings: create a pairing with its policy (providers, models from the plugins' catalogues,
// limits, budgets, expiry), show it once as a copyable string and a QR code with a countdown;
// list unused pairings and cancel them.

import { get, post } from './api.js';
import { button, cleanups, field, fill, h, intVal, table, time, toast, val } from './dom.js';

/**
 * @typedef {import('../api-types').CatalogueModel} CatalogueModel
 * @typedef {import('../api-types').CreatedPairing} CreatedPairing
 * @typedef {import('../api-types').PairingRow} PairingRow
 * @typedef {import('../api-types').GrantPolicy} GrantPolicy
 * @typedef {import('../api-types').QrView} QrView
 * @typedef {import('../api-types').ListOf<CatalogueModel>} Models
 * @typedef {import('../api-types').ListOf<PairingRow>} Pairings
 */

/**
 * The policy the form describes; only what the owner filled in (the server fills defaults).
 * @param {HTMLFormElement} form
 * @returns {Partial<GrantPolicy>}
 */
export function policyOf(form) {
  /** @type {Partial<GrantPolicy>} */
  const p = {};
  const providers = [...form.querySelectorAll('input[name="provider"]:checked')].map((e) => /** @type {HTMLInputElement} */ (e).value);
  if (providers.length > 0) p.providers = providers;
  const select = /** @type {HTMLSelectElement} */ (form.elements.namedItem('models'));
  const models = [...select.selectedOptions].map((o) => o.value);
  if (models.length > 0) {
    p.models = models;
  } else if (providers.length > 0) {
    p.models = providers.map((x) => `${x}/*`);
  }
  const rpm = intVal(form, 'rpm');
  if (rpm !== undefined) p.requests_per_minute = rpm;
  const tpm = intVal(form, 'tpm');
  if (tpm !== undefined) p.tokens_per_minute = tpm;
  const maxOut = intVal(form, 'max_output');
  if (maxOut !== undefined) p.max_output_tokens = maxOut;
  const tokens = intVal(form, 'tokens_daily');
  const tokensMonth = intVal(form, 'tokens_monthly');
  if (tokens !== undefined || tokensMonth !== undefined) {
    p.token_budget = { daily: tokens ?? null, monthly: tokensMonth ?? null, lifetime: null };
  }
  const cost = val(form, 'cost_daily');
  const costMonth = val(form, 'cost_monthly');
  if (cost !== '' || costMonth !== '') {
    const micros = (/** @type {string} */ v) => (v === '' ? null : Math.round(Number(v) * 1e6));
    p.cost_budget_micros = { daily: micros(cost), monthly: micros(costMonth), lifetime: null };
  }
  const days = intVal(form, 'expires_days');
  if (days !== undefined && days > 0) p.expires_at = Date.now() + days * 86400000;
  return p;
}

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
  /** @type {[Models, Pairings]} */
  const [models, pairings] = await Promise.all([get('/admin/api/models'), get('/admin/api/pairings')]);
  const catalogue = models.data;
  const providers = [...new Set(catalogue.map((m) => m.provider))];
  const created = h('div', {});
  const list = h('div', {});
  const err = h('p', { class: 'error', role: 'alert' });
  const modelSelect = h('select', { name: 'models', multiple: true, size: 8 },
    catalogue.map((m) => h('option', { value: m.id }, m.id)));
  const form = h('form', { class: 'card', 'aria-labelledby': 'new-title' },
    h('h2', { id: 'new-title' }, 'Create a pairing'),
    h('div', { class: 'grid' },
      field('App name', h('input', { name: 'app_name', placeholder: 'my app' })),
      field('Pairing valid for (minutes)', h('input', { name: 'ttl_min', type: 'number', min: 1, value: 10 })),
      field('Access expires after (days)', h('input', { name: 'expires_days', type: 'number', min: 1 }), '(empty: never)')),
    h('fieldset', {},
      h('legend', {}, 'Providers ', h('span', { class: 'hint' }, '(none checked: all)')),
      h('div', { class: 'checks' }, providers.map((p) => h('label', {}, h('input', { type: 'checkbox', name: 'provider', value: p }), p)))),
    field('Models', modelSelect, '(none selected: every model of the chosen providers)'),
    h('div', { class: 'grid' },
      field('Requests per minute', h('input', { name: 'rpm', type: 'number', min: 1 })),
      field('Tokens per minute', h('input', { name: 'tpm', type: 'number', min: 1 })),
      field('Max output tokens per request', h('input', { name: 'max_output', type: 'number', min: 1 })),
      field('Daily token budget', h('input', { name: 'tokens_daily', type: 'number', min: 1 })),
      field('Monthly token budget', h('input', { name: 'tokens_monthly', type: 'number', min: 1 })),
      field('Daily cost budget (USD)', h('input', { name: 'cost_daily', type: 'number', min: 0, step: '0.01' })),
      field('Monthly cost budget (USD)', h('input', { name: 'cost_monthly', type: 'number', min: 0, step: '0.01' }))),
    err,
    h('button', { type: 'submit', class: 'primary' }, 'Create pairing'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    try {
      const ttl = intVal(form, 'ttl_min') ?? 10;
      /** @type {CreatedPairing} */
      const c = await post('/admin/api/pairings', {
        app_name: val(form, 'app_name') || undefined,
        ttl_secs: ttl * 60,
        policy: policyOf(form),
      });
      await showCreated(created, c);
      await renderList(list);
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
      }, 'danger')])));
}
