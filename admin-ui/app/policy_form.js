// The policy part of a form, shared by "Create a pairing" (pairings.js), consent approvals
// (consents.js) and "Edit limits" (apps.js): providers as a choice that filters a searchable
// list of the catalogue's models, limits with their units, budgets in dollars, the start and end
// of access as dates; and reading it back as a policy (new, or applied over a current or
// requested one).

import { get } from './api.js';
import { h, intVal, val } from './dom.js';

/**
 * @typedef {import('../api-types').CatalogueModel} CatalogueModel
 * @typedef {import('../api-types').GrantPolicy} GrantPolicy
 * @typedef {import('../api-types').Budget} Budget
 * @typedef {import('../api-types').ListOf<CatalogueModel>} Models
 * @typedef {import('../api-types').ListOf<import('../api-types').CredentialInfo>} Credentials
 * @typedef {import('../api-types').PluginsView} PluginsView
 * @typedef {{ catalogue: CatalogueModel[], usable: Set<string>, keys: number }} PolicyContext
 */

/**
 * What the form needs: the catalogue, the providers that can answer (a key is stored, or the
 * plugin sends none), and how many keys are stored.
 * @returns {Promise<PolicyContext>}
 */
export async function policyContext() {
  /** @type {[Models, Credentials, PluginsView]} */
  const [models, creds, plugins] = await Promise.all([get('/admin/api/models'), get('/admin/api/credentials'), get('/admin/api/plugins')]);
  const usable = new Set(creds.data.map((c) => c.provider));
  for (const p of plugins.providers) if (!p.needs_credential) usable.add(p.id);
  return { catalogue: models.data, usable, keys: creds.data.length };
}

/** @param {number | null | undefined} v */
const text = (v) => (v === null || v === undefined ? null : String(v));

/** @param {number | null | undefined} micros */
const dollars = (micros) => (micros === null || micros === undefined ? null : String(micros / 1e6));

/** A local date as `YYYY-MM-DD`. @param {Date} d */
const isoDay = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;

/** The day before a moment, locally (access "until the end of" that day). @param {number} ms */
const lastDay = (ms) => isoDay(new Date(ms - 1));

/**
 * A number input with its unit: `[prefix] [ 100 ] per minute`.
 * @param {string} label
 * @param {string} name
 * @param {string | null} value
 * @param {string} unit
 * @param {{ prefix?: string, step?: string, min?: number }} [o]
 */
function limit(label, name, value, unit, o = {}) {
  const id = `f-${name}-${Math.random().toString(36).slice(2, 7)}`;
  const input = h('input', { id, name, type: 'number', min: o.min ?? 1, step: o.step ?? null, value, inputmode: o.step ? 'decimal' : 'numeric' });
  return h('div', {},
    h('label', { for: id }, label),
    h('div', { class: 'with-unit' }, o.prefix ? h('span', { class: 'unit' }, o.prefix) : null, input, h('span', { class: 'unit' }, unit)));
}

/**
 * The policy controls, filled in from `current` (a grant's policy, or the policy an app asks for).
 * @param {PolicyContext} ctx
 * @param {Partial<GrantPolicy>} [current]
 */
export function policyFields(ctx, current) {
  const c = current ?? {};
  const { catalogue, usable } = ctx;
  const providers = [...new Set([...catalogue.map((m) => m.provider), ...(c.providers ?? []).filter((p) => p !== '*')])].sort();
  const chosen = (c.providers ?? []).filter((p) => p !== '*');
  const models = (c.models ?? []).filter((m) => m !== '*');
  const ids = catalogue.map((m) => m.id);
  const extra = models.filter((m) => !ids.includes(m));
  const uid = Math.random().toString(36).slice(2, 7);

  const warning = h('p', { class: 'warn', role: 'status' });
  const count = h('span', { class: 'hint', 'aria-live': 'polite' });
  const search = h('input', { type: 'search', name: 'model_search', placeholder: 'Search models', 'aria-label': 'Search models', autocomplete: 'off' });
  /** @param {string} id @param {string} provider @param {string} label @param {string} [detail] */
  const option = (id, provider, label, detail) => h('label', { class: 'model', 'data-provider': provider },
    h('input', { type: 'checkbox', name: 'model', value: id, checked: models.includes(id) }), label,
    detail ? h('span', { class: 'hint' }, ' ' + detail) : null);
  const list = h('div', { class: 'model-list', role: 'group', 'aria-label': 'Models' },
    extra.map((m) => option(m, m.split('/')[0] ?? '', m, m.includes('*') ? '(pattern)' : '')),
    catalogue.map((m) => option(m.id, m.provider, m.id,
      `${Math.round(m.context_window / 1000)}k context · $${(m.input_price / 1e6).toFixed(2)} / $${(m.output_price / 1e6).toFixed(2)} per 1M tokens`)));
  const boxes = h('div', { class: 'checks' }, providers.map((p) =>
    h('label', {}, h('input', { type: 'checkbox', name: 'provider', value: p, checked: chosen.includes(p) }), p)));

  const refresh = () => {
    const on = [...boxes.querySelectorAll('input:checked')].map((e) => /** @type {HTMLInputElement} */ (e).value);
    const q = search.value.trim().toLowerCase();
    let shown = 0;
    for (const l of list.querySelectorAll('label.model')) {
      const el = /** @type {HTMLElement} */ (l);
      const input = /** @type {HTMLInputElement} */ (el.querySelector('input'));
      const byProvider = on.length === 0 || on.includes(el.dataset.provider ?? '');
      if (!byProvider) input.checked = false;
      el.hidden = !byProvider || (q !== '' && !input.value.toLowerCase().includes(q));
      if (!el.hidden) shown += 1;
    }
    const picked = list.querySelectorAll('input:checked').length;
    count.textContent = `${shown} shown · ${picked ? `${picked} selected` : 'none selected: every model of the chosen providers'}`;
    const missing = on.filter((p) => !usable.has(p));
    warning.textContent = missing.length
      ? `No key for ${missing.join(', ')} yet: requests to ${missing.length > 1 ? 'them' : 'it'} will fail until you add one on the Credentials page.`
      : '';
  };
  boxes.addEventListener('change', refresh);
  list.addEventListener('change', refresh);
  search.addEventListener('input', refresh);
  refresh();

  const expires = h('input', { id: `f-expires-${uid}`, name: 'expires_on', type: 'date', min: isoDay(new Date()), value: c.expires_at ? lastDay(c.expires_at) : null });
  expires.dataset.initial = expires.value;
  const starts = h('input', { id: `f-starts-${uid}`, name: 'starts_on', type: 'date', value: c.not_before ? isoDay(new Date(c.not_before)) : null });
  starts.dataset.initial = starts.value;
  return [
    h('fieldset', {},
      h('legend', {}, 'Providers ', h('span', { class: 'hint' }, '(none checked: all)')),
      boxes, warning),
    h('fieldset', {},
      h('legend', {}, 'Models ', count),
      search, list),
    h('fieldset', {},
      h('legend', {}, 'Limits ', h('span', { class: 'hint' }, '(empty: no limit)')),
      h('div', { class: 'grid' },
        limit('Request rate', 'rpm', text(c.requests_per_minute), 'requests / minute'),
        limit('Daily requests', 'rpd', text(c.requests_per_day), 'requests / day'),
        limit('Token rate', 'tpm', text(c.tokens_per_minute), 'tokens / minute'),
        limit('Largest answer', 'max_output', text(c.max_output_tokens), 'output tokens / request'),
        limit('At once', 'max_concurrent', text(c.max_concurrent), 'requests in flight'))),
    h('fieldset', {},
      h('legend', {}, 'Budgets ', h('span', { class: 'hint' }, '(days and months in UTC; empty: no budget)')),
      h('div', { class: 'grid' },
        limit('Spend per day', 'cost_daily', dollars(c.cost_budget_micros?.daily), 'USD', { prefix: '$', step: '0.01', min: 0 }),
        limit('Spend per month', 'cost_monthly', dollars(c.cost_budget_micros?.monthly), 'USD', { prefix: '$', step: '0.01', min: 0 }),
        limit('Tokens per day', 'tokens_daily', text(c.token_budget?.daily), 'tokens'),
        limit('Tokens per month', 'tokens_monthly', text(c.token_budget?.monthly), 'tokens'))),
    h('div', { class: 'grid' },
      h('div', {},
        h('label', { for: starts.id }, 'Access starts on ', h('span', { class: 'hint' }, '(local time; empty: at once)')),
        starts),
      h('div', {},
        h('label', { for: expires.id }, 'Access ends after ', h('span', { class: 'hint' }, '(this day, local time; empty: never)')),
        expires)),
  ];
}

/**
 * The providers and models the form selects (models default to every model of the providers).
 * @param {HTMLFormElement} form
 */
function selection(form) {
  /** @param {string} name */
  const checked = (name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((e) => /** @type {HTMLInputElement} */ (e).value);
  const providers = checked('provider');
  let models = checked('model');
  if (models.length === 0 && providers.length > 0) models = providers.map((x) => `${x}/*`);
  return { providers, models };
}

/**
 * A budget from two form controls over `base` (its lifetime limit is kept).
 * @param {Budget | undefined} base
 * @param {number | null | undefined} daily
 * @param {number | null | undefined} monthly
 * @returns {Budget}
 */
function budget(base, daily, monthly) {
  return { daily: daily ?? null, monthly: monthly ?? null, lifetime: base?.lifetime ?? null };
}

/**
 * @param {HTMLFormElement} form
 * @param {string} name
 * @returns {number | undefined}
 */
function micros(form, name) {
  const v = val(form, name);
  if (v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error('A budget must be a positive amount of dollars.');
  return Math.round(n * 1e6);
}

/**
 * A date control as a moment: `undefined` when unchanged from what it was filled with, `null`
 * when emptied, else the start of the chosen local day (`next`: of the day after it).
 * @param {HTMLFormElement} form
 * @param {string} name
 * @param {boolean} next
 * @returns {number | null | undefined}
 */
function day(form, name, next) {
  const el = /** @type {HTMLInputElement} */ (form.elements.namedItem(name));
  if (el.value === (el.dataset.initial ?? '')) return undefined;
  if (el.value === '') return null;
  const [y, m, d] = el.value.split('-').map(Number);
  return new Date(y, m - 1, d + (next ? 1 : 0)).getTime();
}

/**
 * The start and end of access the form names (see `day`); the end after today and the start.
 * @param {HTMLFormElement} form
 */
function validity(form) {
  const start = day(form, 'starts_on', false);
  const end = day(form, 'expires_on', true);
  if (end && end <= Date.now()) throw new Error('Access must end after today.');
  if (end && start && start >= end) throw new Error('Access must start before it ends.');
  return { start, end };
}

/** The limits every form reads the same way. @param {HTMLFormElement} form */
function limits(form) {
  return {
    requests_per_minute: intVal(form, 'rpm') ?? null,
    requests_per_day: intVal(form, 'rpd') ?? null,
    tokens_per_minute: intVal(form, 'tpm') ?? null,
    max_output_tokens: intVal(form, 'max_output') ?? null,
    max_concurrent: intVal(form, 'max_concurrent') ?? null,
  };
}

/**
 * The policy the form describes; only what the owner filled in (the server fills defaults).
 * @param {HTMLFormElement} form
 * @returns {Partial<GrantPolicy>}
 */
export function policyOf(form) {
  /** @type {Partial<GrantPolicy>} */
  const p = {};
  const { providers, models } = selection(form);
  if (providers.length > 0) p.providers = providers;
  if (models.length > 0) p.models = models;
  for (const [k, v] of Object.entries(limits(form))) {
    if (v !== null) Object.assign(p, { [k]: v });
  }
  const tokens = [intVal(form, 'tokens_daily'), intVal(form, 'tokens_monthly')];
  if (tokens.some((t) => t !== undefined)) p.token_budget = budget(undefined, tokens[0], tokens[1]);
  const cost = [micros(form, 'cost_daily'), micros(form, 'cost_monthly')];
  if (cost.some((t) => t !== undefined)) p.cost_budget_micros = budget(undefined, cost[0], cost[1]);
  const { start, end } = validity(form);
  if (start) p.not_before = start;
  if (end) p.expires_at = end;
  return p;
}

/**
 * A policy (grant's or requested) with what the form covers replaced: an emptied limit is
 * removed, everything the form does not show (endpoints, source addresses, lifetime budgets, ...)
 * is kept.
 * @param {HTMLFormElement} form
 * @param {Partial<GrantPolicy>} current
 * @returns {Partial<GrantPolicy>}
 */
export function policyOver(form, current) {
  const { providers, models } = selection(form);
  /** @type {Partial<GrantPolicy>} */
  const p = {
    ...current,
    providers: providers.length > 0 ? providers : ['*'],
    models: models.length > 0 ? models : ['*'],
    ...limits(form),
    token_budget: budget(current.token_budget, intVal(form, 'tokens_daily'), intVal(form, 'tokens_monthly')),
    cost_budget_micros: budget(current.cost_budget_micros, micros(form, 'cost_daily'), micros(form, 'cost_monthly')),
  };
  const { start, end } = validity(form);
  if (start !== undefined) p.not_before = start;
  if (end !== undefined) p.expires_at = end;
  return p;
}

/**
 * Whether a policy limits anything at all (rates, budgets, output size, expiry).
 * @param {Partial<GrantPolicy>} p
 */
export function hasLimits(p) {
  const set = (/** @type {unknown} */ v) => v !== null && v !== undefined;
  const budgetSet = (/** @type {Budget | undefined} */ b) => !!b && (set(b.daily) || set(b.monthly) || set(b.lifetime));
  return set(p.requests_per_minute) || set(p.requests_per_day) || set(p.tokens_per_minute) || set(p.max_output_tokens)
    || set(p.max_concurrent) || set(p.expires_at) || set(p.not_before) || budgetSet(p.token_budget) || budgetSet(p.cost_budget_micros);
}
