// Usage: the period always in view with presets (today, 7 days, 30 days, custom); requests and
// errors, tokens and cost over time (hourly for one day, from the request log; daily otherwise,
// from the rollup); breakdowns per app and per model; the searchable request log with CSV export.

import { get } from './api.js';
import { barList, timeChart } from './charts.js';
import { button, field, fill, h, local, num, table, usd, val } from './dom.js';

/**
 * @typedef {import('../api-types').UsageRollup} UsageRollup
 * @typedef {import('../api-types').RollupView} RollupView
 * @typedef {import('../api-types').RequestPage} RequestPage
 * @typedef {import('../api-types').LedgerRow} LedgerRow
 * @typedef {import('../api-types').GrantView} GrantView
 * @typedef {import('../api-types').ListOf<GrantView>} Grants
 * @typedef {{ requests: number, errors: number, input: number, output: number, cost: number }} Sums
 */

const DAY = 86400000;
const HOUR = 3600000;
const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

/** A UTC day as `YYYY-MM-DD`. @param {number} ms */
const utcDay = (ms) => new Date(ms).toISOString().slice(0, 10);

/** Dollars for an axis or a tooltip, with the precision small amounts need. @param {number} micros */
const dollars = (micros) => {
  if (micros === 0) return '$0';
  if (micros >= 1e8) return '$' + Math.round(micros / 1e6).toLocaleString('en-US');
  if (micros >= 1e4) return '$' + (micros / 1e6).toFixed(2);
  return '$' + Number((micros / 1e6).toPrecision(2)).toString();
};

/** A row's model as a policy names it (`provider/model`), whether or not it is stored qualified. @param {{ provider: string | null, model: string | null }} r */
export function modelName(r) {
  if (r.model && r.model.includes('/')) return r.model;
  return `${r.provider ?? '–'}/${r.model ?? '–'}`;
}

/** @returns {Sums} */
const zero = () => ({ requests: 0, errors: 0, input: 0, output: 0, cost: 0 });

/**
 * Adds one rollup or ledger row to its bucket of `m`.
 * @param {Map<string, Sums>} m
 * @param {string} key
 * @param {Sums} add
 */
function addTo(m, key, add) {
  const e = m.get(key) ?? zero();
  e.requests += add.requests;
  e.errors += add.errors;
  e.input += add.input;
  e.output += add.output;
  e.cost += add.cost;
  m.set(key, e);
}

/** @param {RollupView} r @returns {Sums} */
const ofRollup = (r) => ({ requests: r.requests, errors: r.errors, input: r.input_tokens, output: r.output_tokens, cost: r.cost_micros });

/** @param {LedgerRow} r @returns {Sums} */
const ofLedger = (r) => ({ requests: 1, errors: r.status >= 400 ? 1 : 0, input: r.input_tokens, output: r.output_tokens, cost: r.cost_micros });

/**
 * Every request of one UTC day (for hourly charts), page by page, up to 10 000.
 * @param {string} day
 * @param {string} grant
 */
async function dayLog(day, grant) {
  /** @type {LedgerRow[]} */
  const rows = [];
  for (let offset = 0; offset < 10000; offset += 500) {
    const p = new URLSearchParams({ from: day, to: day, limit: '500', offset: String(offset) });
    if (grant) p.set('grant', grant);
    /** @type {RequestPage} */
    const page = await get(`/admin/api/usage/requests?${p}`);
    rows.push(...page.data);
    if (rows.length >= page.total || page.data.length === 0) break;
  }
  return rows;
}

/**
 * The time buckets of a period: hours of one day, or its days.
 * @param {number} from start (ms, a UTC midnight)
 * @param {number} to end (ms, exclusive)
 * @param {boolean} hourly
 */
function buckets(from, to, hourly) {
  /** @type {{ key: string, label: string, tip: string }[]} */
  const out = [];
  const step = hourly ? HOUR : DAY;
  const end = Math.min(to, hourly ? Date.now() + HOUR : to);
  for (let t = from; t < end; t += step) {
    const d = new Date(t);
    out.push(hourly
      ? { key: String(t), label: d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' }), tip: `${local(t)} – ${new Date(t + HOUR).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })}` }
      : { key: utcDay(t), label: d.toLocaleDateString(undefined, { day: 'numeric', month: 'short', timeZone: 'UTC' }), tip: d.toLocaleDateString(undefined, { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' }) + ' (UTC)' });
  }
  return out;
}

/**
 * The charts and breakdowns of a period.
 * @param {UsageRollup} u
 * @param {Map<string, Sums>} perTime
 * @param {{ key: string, label: string, tip: string }[]} times
 * @param {boolean} hourly
 */
function charts(u, perTime, times, hourly) {
  const unit = hourly ? 'per hour (local time)' : 'per day (UTC)';
  const series = (/** @type {(e: Sums) => number[]} */ pick) => times.map((t) => ({ label: t.label, tip: t.tip, values: pick(perTime.get(t.key) ?? zero()) }));
  /** @type {Map<string, Sums>} */
  const apps = new Map();
  /** @type {Map<string, Sums>} */
  const models = new Map();
  for (const r of u.rows) {
    addTo(apps, r.app_name ?? r.grant_id ?? '(no app)', ofRollup(r));
    addTo(models, modelName(r), ofRollup(r));
  }
  const t = u.totals;
  const rate = t.requests ? ` (${((t.errors / t.requests) * 100).toFixed(1)}%)` : '';
  /** @param {Map<string, Sums>} m @param {string} what */
  const breakdown = (m, what) => table(`Totals per ${what}`, [what === 'app' ? 'App' : 'Model', 'Requests', 'Errors', 'Input tokens', 'Output tokens', 'Cost'],
    [...m.entries()].sort((a, b) => b[1].cost - a[1].cost || b[1].requests - a[1].requests)
      .map(([k, e]) => [k, num(e.requests), num(e.errors), num(e.input), num(e.output), usd(e.cost)]),
    ['Requests', 'Errors', 'Input tokens', 'Output tokens', 'Cost'], 'No requests in this period.');
  return [
    h('dl', { class: 'stats', 'aria-label': 'Totals of the period' },
      h('div', {}, h('dt', {}, 'Requests'), h('dd', {}, num(t.requests))),
      h('div', {}, h('dt', {}, 'Errors'), h('dd', {}, num(t.errors), h('span', { class: 'hint' }, rate))),
      h('div', {}, h('dt', {}, 'Tokens'), h('dd', {}, num(t.input_tokens + t.output_tokens))),
      h('div', {}, h('dt', {}, 'Cost'), h('dd', {}, usd(t.cost_micros)))),
    h('div', { class: 'charts' },
      timeChart(`Requests ${unit}`, series((e) => [e.requests - e.errors, e.errors]), [{ name: 'answered', cls: 's1' }, { name: 'errors', cls: 's-err' }], (n) => compact.format(n)),
      timeChart(`Tokens ${unit}`, series((e) => [e.input, e.output]), [{ name: 'input', cls: 's1' }, { name: 'output', cls: 's2' }], (n) => compact.format(n)),
      timeChart(`Cost ${unit}`, series((e) => [e.cost]), [{ name: 'cost', cls: 's1' }], dollars),
      barList('Cost per app', [...apps.entries()].map(([label, e]) => ({ label, value: e.cost, detail: `${label}: ${usd(e.cost)}, ${num(e.requests)} requests` })), dollars),
      barList('Tokens per model', [...models.entries()].map(([label, e]) => ({ label, value: e.input + e.output, detail: `${label}: ${num(e.input)} in, ${num(e.output)} out` })), (n) => compact.format(n))),
    h('h2', {}, 'Per app'), breakdown(apps, 'app'),
    h('h2', {}, 'Per model'), breakdown(models, 'model'),
  ];
}

/** @param {HTMLElement} root */
export async function render(root) {
  /** @type {Grants} */
  const grants = await get('/admin/api/grants');
  const out = h('div', {});
  const log = h('div', {});
  const period = h('p', { class: 'period', 'aria-live': 'polite' });
  const from = h('input', { name: 'from', type: 'date' });
  const to = h('input', { name: 'to', type: 'date' });
  const custom = h('div', { class: 'grid', hidden: true }, field('From (UTC day)', from), field('To (UTC day)', to));
  /** @type {Record<string, number>} */
  const PRESETS = { Today: 0, '7 days': 6, '30 days': 29 };
  const presetButtons = [...Object.keys(PRESETS), 'Custom'].map((name) => {
    const b = h('button', { type: 'button', 'aria-pressed': 'false', 'data-preset': name }, name);
    b.addEventListener('click', () => {
      if (name === 'Custom') {
        custom.hidden = false;
        from.focus();
      } else {
        custom.hidden = true;
        to.value = utcDay(Date.now());
        from.value = utcDay(Date.now() - PRESETS[name] * DAY);
      }
      for (const o of presetButtons) o.setAttribute('aria-pressed', String(o === b));
      if (name !== 'Custom') load().catch(failed);
    });
    return b;
  });
  const form = h('form', { class: 'card period-bar', role: 'search', 'aria-label': 'Period and filters' },
    h('div', { class: 'presets', role: 'group', 'aria-label': 'Period' }, presetButtons), period,
    custom,
    h('div', { class: 'grid' },
      field('App', h('select', { name: 'grant' }, h('option', { value: '' }, 'all apps'), grants.data.map((g) => h('option', { value: g.id }, g.app_name)))),
      field('Model', h('input', { name: 'model', placeholder: 'e.g. openai/gpt-4o-mini' }), '(request log)'),
      field('Status', h('input', { name: 'status', type: 'number', min: 100, max: 599 }), '(request log)'),
      field('Request id', h('input', { name: 'request_id' }), '(request log)')),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Show'),
      h('a', { id: 'csv-link', href: '/admin/api/usage/export.csv', download: 'pairgate-usage.csv' }, 'Export CSV')));
  let offset = 0;
  const query = () => {
    const p = new URLSearchParams();
    for (const k of ['from', 'to', 'grant', 'model', 'status', 'request_id']) {
      const v = val(form, k);
      if (v) p.set(k, v);
    }
    return p;
  };
  const loadLog = async () => {
    const p = query();
    p.set('limit', '50');
    p.set('offset', String(offset));
    /** @type {RequestPage} */
    const page = await get(`/admin/api/usage/requests?${p}`);
    fill(log,
      table(`Requests ${page.total ? offset + 1 : 0}–${offset + page.data.length} of ${page.total}, newest first`,
        ['Time', 'Request id', 'App', 'Model', 'Status', 'Input', 'Output', 'Cost', 'Latency ms'],
        page.data.map((r) => [local(r.created_at), h('code', {}, r.request_id), r.app_name ?? '–', r.model ? modelName(r) : '–',
          r.error_code ? `${r.status} ${r.error_code}` : String(r.status), num(r.input_tokens), num(r.output_tokens), usd(r.cost_micros), String(r.total_ms)]),
        ['Input', 'Output', 'Cost', 'Latency ms'], 'No requests match. Paired apps\' requests appear here as they are answered.'),
      h('div', { class: 'actions' },
        offset > 0 ? button('Newer', async () => { offset = Math.max(0, offset - 50); await loadLog(); }) : null,
        offset + page.data.length < page.total ? button('Older', async () => { offset += 50; await loadLog(); }) : null));
  };
  const load = async () => {
    if (from.value && to.value && from.value > to.value) throw new Error('The period starts after it ends.');
    const p = query();
    const csv = /** @type {HTMLAnchorElement} */ (form.querySelector('#csv-link'));
    csv.href = `/admin/api/usage/export.csv?${p}`;
    const rp = new URLSearchParams();
    for (const k of ['from', 'to', 'grant']) {
      const v = p.get(k);
      if (v) rp.set(k, v);
    }
    /** @type {UsageRollup} */
    const u = await get(`/admin/api/usage/rollup?${rp}`);
    const hourly = utcDay(u.from) === utcDay(u.to - 1);
    const days = Math.round((u.to - u.from) / DAY);
    const fmt = (/** @type {number} */ ms) => new Date(ms).toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' });
    const times = buckets(u.from, u.to, hourly);
    /** @type {Map<string, Sums>} */
    const perTime = new Map();
    if (hourly) {
      for (const r of await dayLog(utcDay(u.from), val(form, 'grant'))) addTo(perTime, String(Math.floor(r.created_at / HOUR) * HOUR), ofLedger(r));
    } else {
      for (const r of u.rows) addTo(perTime, r.day, ofRollup(r));
    }
    fill(out, charts(u, perTime, times, hourly));
    period.textContent = hourly
      ? `Showing ${fmt(u.from)} (UTC day), hour by hour`
      : `Showing ${fmt(u.from)} – ${fmt(u.to - 1)} (${days} UTC days), day by day`;
    offset = 0;
    await loadLog();
  };
  const failed = (/** @type {unknown} */ e) => fill(log, h('p', { class: 'error', role: 'alert' }, e instanceof Error ? e.message : String(e)));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    load().catch(failed);
  });
  const initial = /** @type {HTMLButtonElement} */ (presetButtons[2]);
  initial.setAttribute('aria-pressed', 'true');
  to.value = utcDay(Date.now());
  from.value = utcDay(Date.now() - 29 * DAY);
  await load();
  root.append(form, out, h('h2', {}, 'Request log'), log);
}
