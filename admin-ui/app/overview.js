// Overview: active grants, requests and spend today, errors, pending consent requests; what to do
// next while the gateway is new (add a key, then create a pairing); refreshed every few seconds.

import { get } from './api.js';
import { fill, h, local, num, poll, table, usd } from './dom.js';

/**
 * @typedef {import('../api-types').Overview} Overview
 * @typedef {import('../api-types').ListOf<import('../api-types').CredentialInfo>} Credentials
 */

/**
 * @param {string} label
 * @param {string | number} value
 * @param {string} [href]
 */
function stat(label, value, href) {
  const v = href ? h('a', { href }, String(value)) : String(value);
  return h('div', {}, h('dt', {}, label), h('dd', {}, v));
}

/**
 * The next step for a new owner, if any.
 * @param {Overview} o
 * @param {number} keys
 */
function nextStep(o, keys) {
  if (keys === 0) {
    return h('div', { class: 'card next-step' }, h('strong', {}, 'Start here: '),
      h('a', { href: '#/credentials' }, 'add a provider key'), ' (an OpenAI or Anthropic API key, say). Then create a pairing for your first app.');
  }
  if (o.active_grants + o.suspended_grants + o.revoked_grants === 0 && o.pending_consents === 0) {
    return h('div', { class: 'card next-step' }, h('strong', {}, 'Next: '),
      h('a', { href: '#/pairings' }, 'create a pairing'), ' and give its string to an app; or let an app ask for access with the device flow.');
  }
  if (o.pending_consents > 0) {
    return h('div', { class: 'card next-step' },
      h('a', { href: '#/consents' }, `${o.pending_consents} app${o.pending_consents > 1 ? 's ask' : ' asks'} for access`), ': review and approve or deny.');
  }
  return null;
}

/** @param {HTMLElement} box */
async function show(box) {
  /** @type {[Overview, Credentials]} */
  const [o, creds] = await Promise.all([get('/admin/api/overview'), get('/admin/api/credentials')]);
  const t = o.today;
  fill(box,
    nextStep(o, creds.data.length),
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
    table('Failed requests today (UTC), newest first',
      ['Time', 'App', 'Model', 'Status', 'Error', 'Request id'],
      o.recent_errors.map((r) => [local(r.created_at), r.app_name ?? '–', r.model ?? '–', String(r.status), r.error_code ?? '–', h('code', {}, r.request_id)]),
      [], 'No failed requests today.'),
    h('p', { class: 'hint' }, `Updated ${new Date().toLocaleTimeString()}; refreshes every few seconds.`));
}

/** @param {HTMLElement} root */
export async function render(root) {
  const box = h('div', {});
  await show(box);
  poll(() => show(box));
  root.append(box);
}
