// A policy as a person reads it: what an app may call, its limits with units, and (with what
// `GET /admin/api/grants/{id}/remaining` answers) each budget as a bar with its reset time in
// local time. Used by the Apps page and the consent requests.

import { h, local, num, usd } from './dom.js';

/**
 * @typedef {import('../api-types').GrantPolicy} GrantPolicy
 * @typedef {{ limit: number, remaining: number, reset_ms?: number }} RateLeft
 * @typedef {{ limit: number, spent?: number, used?: number, reserved: number, remaining: number, resets_at: number | null }} WindowLeft
 */

const WINDOWS = /** @type {const} */ ([['daily', 'today (UTC)'], ['monthly', 'this month (UTC)'], ['lifetime', 'in all']]);

/**
 * One row of the summary.
 * @param {string} term
 * @param {...(string | Node | null)} desc
 */
function row(term, ...desc) {
  return h('div', {}, h('dt', {}, term), h('dd', {}, ...desc));
}

/** @param {string[] | undefined} list @param {string} all */
const names = (list, all) => (!list || list.length === 0 || list.includes('*') ? all : list.join(', '));

/**
 * A bar of how much of a budget is used, with the numbers in words.
 * @param {string} label
 * @param {WindowLeft} w
 * @param {(n: number) => string} fmt
 */
function bar(label, w, fmt) {
  const used = (w.spent ?? w.used ?? 0) + w.reserved;
  const share = w.limit > 0 ? Math.min(1, used / w.limit) : 1;
  const level = share >= 0.9 ? 'high' : share >= 0.7 ? 'mid' : 'low';
  return h('div', { class: 'budget' },
    h('div', { class: 'budget-text' }, h('strong', {}, label), ' ',
      `${fmt(used)} of ${fmt(w.limit)} used, ${fmt(w.remaining)} left`,
      w.resets_at ? h('span', { class: 'hint' }, ` · resets ${local(w.resets_at)}`) : null),
    h('progress', { class: `level-${level}`, max: w.limit || 1, value: Math.min(used, w.limit || 1), 'aria-label': `${label}: ${Math.round(share * 100)}% used` }));
}

/**
 * The budgets of one kind: with the remaining view when known, else the configured limits.
 * @param {string} what
 * @param {import('../api-types').Budget | undefined} b
 * @param {Record<string, WindowLeft> | undefined} left
 * @param {(n: number) => string} fmt
 */
function budgets(what, b, left, fmt) {
  /** @type {Node[]} */
  const out = [];
  for (const [k, words] of WINDOWS) {
    const limit = b?.[k];
    if (limit === null || limit === undefined) continue;
    const w = left?.[k];
    out.push(w ? bar(`${what} ${words}`, w, fmt) : h('div', {}, `${what}: at most ${fmt(limit)} ${words}`));
  }
  return out;
}

/**
 * @param {string} label
 * @param {number | null | undefined} limit
 * @param {string} unit
 * @param {RateLeft | undefined} left
 */
function rate(label, limit, unit, left) {
  if (limit === null || limit === undefined) return null;
  const now = left ? h('span', { class: 'hint' }, ` (${num(left.remaining)} available now${left.remaining < left.limit && left.reset_ms ? `, all again in ${Math.ceil(left.reset_ms / 1000)} s` : ''})`) : null;
  return h('div', {}, `${label}: ${num(limit)} ${unit}`, now);
}

/**
 * The summary of a policy, with what remains of its limits when given.
 * @param {Partial<GrantPolicy>} p
 * @param {Record<string, any>} [remaining]
 */
export function policySummary(p, remaining) {
  const r = remaining ?? {};
  const rates = [
    rate('Requests', p.requests_per_minute, 'per minute', r.requests_per_minute),
    rate('Requests', p.requests_per_day, 'per day', r.requests_per_day),
    rate('Tokens', p.tokens_per_minute, 'per minute', r.tokens_per_minute),
    p.max_concurrent ? h('div', {}, `At most ${num(p.max_concurrent)} requests at once`) : null,
    p.max_output_tokens ? h('div', {}, `Answers of at most ${num(p.max_output_tokens)} output tokens (${p.output_tokens_mode === 'reject' ? 'longer requests are refused' : 'longer requests are shortened'})`) : null,
  ].filter((x) => x !== null);
  const money = [
    ...budgets('Spend', p.cost_budget_micros, r.cost_budget_micros, usd),
    ...budgets('Tokens', p.token_budget, r.token_budget, num),
  ];
  /** @type {Record<string, WindowLeft>} */
  const quotas = r.quotas ?? {};
  const quotaBars = Object.entries(quotas).map(([name, q]) => bar(name, q, num));
  const features = [
    p.allow_streaming === false ? 'no streaming' : null,
    p.allow_tools === false ? 'no tools' : null,
    p.allow_images === false ? 'no images' : null,
    p.require_body_hash ? 'proofs must cover the body' : null,
  ].filter((x) => x !== null);
  return h('dl', { class: 'summary' },
    row('Providers', names(p.providers, 'all providers')),
    row('Models', names(p.models, 'every model')),
    p.endpoints ? row('Endpoints', p.endpoints.length ? p.endpoints.join(', ') : 'none') : null,
    row('Limits', ...(rates.length ? rates : ['no rate limits'])),
    row('Budgets', ...(money.length ? money : ['no budget: spending is not capped'])),
    quotaBars.length ? row('Plugin quotas', ...quotaBars) : null,
    row('Access', p.expires_at ? `until ${local(p.expires_at)}` : 'no end date',
      p.not_before ? `, from ${local(p.not_before)}` : '',
      p.source_ips?.length ? `, only from ${p.source_ips.join(', ')}` : ''),
    features.length ? row('Restrictions', features.join(', ')) : null);
}
