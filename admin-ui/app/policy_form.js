// The policy part of a form, shared by "Create a pairing" (pairings.js) and "Edit limits"
// (apps.js): providers, models from the plugins' catalogues, limits, budgets, expiry; and
// reading it back as a policy (new, or applied over a grant's current one).

import { field, h, intVal, val } from './dom.js';

/**
 * @typedef {import('../api-types').CatalogueModel} CatalogueModel
 * @typedef {import('../api-types').GrantPolicy} GrantPolicy
 * @typedef {import('../api-types').Budget} Budget
 */

/**
 * @param {number | null | undefined} v
 * @returns {string | undefined}
 */
const text = (v) => (v === null || v === undefined ? undefined : String(v));

/**
 * @param {number | null | undefined} micros
 * @returns {string | undefined}
 */
const dollars = (micros) => (micros === null || micros === undefined ? undefined : String(micros / 1e6));

/**
 * The policy controls, filled in from `current` when editing a grant.
 * @param {CatalogueModel[]} catalogue
 * @param {Partial<GrantPolicy>} [current]
 */
export function policyFields(catalogue, current) {
  const c = current ?? {};
  const providers = [...new Set(catalogue.map((m) => m.provider))];
  const chosen = (c.providers ?? []).filter((p) => p !== '*');
  const models = (c.models ?? []).filter((m) => m !== '*');
  const ids = catalogue.map((m) => m.id);
  const modelSelect = h('select', { name: 'models', multiple: true, size: 8 },
    [...ids, ...models.filter((m) => !ids.includes(m))].map((id) => h('option', { value: id, selected: models.includes(id) }, id)));
  const num = (/** @type {string} */ name, /** @type {string | undefined} */ value, min = 1, step = '') =>
    h('input', { name, type: 'number', min, step: step || null, value: value ?? null });
  const editing = current !== undefined;
  return [
    h('fieldset', {},
      h('legend', {}, 'Providers ', h('span', { class: 'hint' }, '(none checked: all)')),
      h('div', { class: 'checks' }, providers.map((p) =>
        h('label', {}, h('input', { type: 'checkbox', name: 'provider', value: p, checked: chosen.includes(p) }), p)))),
    field('Models', modelSelect, '(none selected: every model of the chosen providers)'),
    h('div', { class: 'grid' },
      field('Requests per minute', num('rpm', text(c.requests_per_minute))),
      field('Tokens per minute', num('tpm', text(c.tokens_per_minute))),
      field('Max output tokens per request', num('max_output', text(c.max_output_tokens))),
      field('Daily token budget', num('tokens_daily', text(c.token_budget?.daily))),
      field('Monthly token budget', num('tokens_monthly', text(c.token_budget?.monthly))),
      field('Daily cost budget (USD)', num('cost_daily', dollars(c.cost_budget_micros?.daily), 0, '0.01')),
      field('Monthly cost budget (USD)', num('cost_monthly', dollars(c.cost_budget_micros?.monthly), 0, '0.01')),
      field(editing ? 'Access expires in (days from now)' : 'Access expires after (days)', num('expires_days', undefined, 0),
        editing ? `(empty: unchanged, ${c.expires_at ? 'now ' + new Date(c.expires_at).toISOString().slice(0, 10) : 'now never'}; 0: never)` : '(empty: never)')),
  ];
}

/**
 * The providers and models the form selects (models default to every model of the providers).
 * @param {HTMLFormElement} form
 */
function selection(form) {
  const providers = [...form.querySelectorAll('input[name="provider"]:checked')].map((e) => /** @type {HTMLInputElement} */ (e).value);
  const select = /** @type {HTMLSelectElement} */ (form.elements.namedItem('models'));
  let models = [...select.selectedOptions].map((o) => o.value);
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
  return v === '' ? undefined : Math.round(Number(v) * 1e6);
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
  const rpm = intVal(form, 'rpm');
  if (rpm !== undefined) p.requests_per_minute = rpm;
  const tpm = intVal(form, 'tpm');
  if (tpm !== undefined) p.tokens_per_minute = tpm;
  const maxOut = intVal(form, 'max_output');
  if (maxOut !== undefined) p.max_output_tokens = maxOut;
  const tokens = [intVal(form, 'tokens_daily'), intVal(form, 'tokens_monthly')];
  if (tokens.some((t) => t !== undefined)) p.token_budget = budget(undefined, tokens[0], tokens[1]);
  const cost = [micros(form, 'cost_daily'), micros(form, 'cost_monthly')];
  if (cost.some((t) => t !== undefined)) p.cost_budget_micros = budget(undefined, cost[0], cost[1]);
  const days = intVal(form, 'expires_days');
  if (days !== undefined && days > 0) p.expires_at = Date.now() + days * 86400000;
  return p;
}

/**
 * A grant's current policy with what the form covers replaced: an emptied limit is removed,
 * everything the form does not show (endpoints, source addresses, lifetime budgets, ...) is kept.
 * @param {HTMLFormElement} form
 * @param {Partial<GrantPolicy>} current
 * @returns {Partial<GrantPolicy>}
 */
export function policyOver(form, current) {
  const { providers, models } = selection(form);
  const days = intVal(form, 'expires_days');
  /** @type {Partial<GrantPolicy>} */
  const p = {
    ...current,
    providers: providers.length > 0 ? providers : ['*'],
    models: models.length > 0 ? models : ['*'],
    requests_per_minute: intVal(form, 'rpm') ?? null,
    tokens_per_minute: intVal(form, 'tpm') ?? null,
    max_output_tokens: intVal(form, 'max_output') ?? null,
    token_budget: budget(current.token_budget, intVal(form, 'tokens_daily'), intVal(form, 'tokens_monthly')),
    cost_budget_micros: budget(current.cost_budget_micros, micros(form, 'cost_daily'), micros(form, 'cost_monthly')),
  };
  if (days !== undefined) p.expires_at = days > 0 ? Date.now() + days * 86400000 : null;
  return p;
}
