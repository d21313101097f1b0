// Overview: active grants, requests and spend today, errors, pending consent requests.

import { get } from './api.js';
import { h, num, table, time, usd } from './dom.js';

/** @typedef {import('../api-types').Overview} Overview */

/**
 * @param {string} label
 * @param {string | number} value
 * @param {string} [href]
 */
function stat(label, value, href) {
  const v = href ? h('a', { href }, String(value)) : String(value);
  return h('div', {}, h('dt', {}, label), h('dd', {}, v));
}

/** @param {HTMLElement} root */
export async function render(root) {
  /** @type {Overview} */
  const o = await get('/admin/api/overview');
  const t = o.today;
  root.append(
    h('dl', { class: 'stats', 'aria-label': 'Today' },
      stat('Active apps', o.active_grants, '#/apps'),
      stat('Suspended apps', o.suspended_grants, '#/apps'),
      stat('Pending consent requests', o.pending_consents, '#/consents'),
      stat('Unused pairings', o.open_pairings, '#/pairings'),
      stat('Requests today', num(t.requests), '#/usage'),
      stat('Errors today', num(t.errors), '#/usage'),
      stat('Tokens today', num(t.input_tokens + t.output_tokens)),
      stat('Spend today', usd(t.cost_micros))),
    h('h2', {}, 'Recent errors'),
    table('Failed requests today, newest first',
      ['Time', 'App', 'Model', 'Status', 'Error', 'Request id'],
      o.recent_errors.map((r) => [time(r.created_at), r.app_name ?? '–', r.model ?? '–', String(r.status), r.error_code ?? '–', h('code', {}, r.request_id)])));
}
