// Usage: charts of tokens and cost per day, totals per app and model, and the searchable
// request log from the ledger, with CSV export.

import { get } from './api.js';
import { button, field, fill, h, num, table, time, usd, val } from './dom.js';

/**
 * @typedef {import('../api-types').UsageRollup} UsageRollup
 * @typedef {import('../api-types').RequestPage} RequestPage
 * @typedef {import('../api-types').GrantView} GrantView
 * @typedef {import('../api-types').ListOf<GrantView>} Grants
 */

const SVG = 'http://www.w3.org/2000/svg';

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attrs
 * @param {string} [text]
 */
function s(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * A bar chart of one value per day, drawn as SVG with a text summary for screen readers.
 * @param {string} title
 * @param {{ day: string, value: number }[]} points
 * @param {(n: number) => string} fmt
 */
export function barChart(title, points, fmt) {
  const w = 600;
  const hgt = 200;
  const pad = 28;
  const max = Math.max(1, ...points.map((p) => p.value));
  const bw = points.length ? (w - pad) / points.length : 0;
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${w} ${hgt + 20}`, role: 'img', 'aria-label': `${title}: ` + points.map((p) => `${p.day} ${fmt(p.value)}`).join(', ') });
  svg.append(s('text', { x: 0, y: 10 }, fmt(max)), s('text', { x: 0, y: hgt }, '0'));
  points.forEach((p, i) => {
    const bh = Math.round((p.value / max) * (hgt - 20));
    const bar = s('rect', { class: 'bar', x: pad + i * bw + 1, y: hgt - bh, width: Math.max(1, bw - 2), height: bh });
    bar.append(s('title', {}, `${p.day}: ${fmt(p.value)}`));
    svg.append(bar);
    if (points.length <= 14 || i % Math.ceil(points.length / 10) === 0) {
      svg.append(s('text', { x: pad + i * bw + 1, y: hgt + 14 }, p.day.slice(5)));
    }
  });
  return h('figure', {}, svg, h('figcaption', { class: 'hint' }, title));
}

/**
 * Sums rollup rows by a key.
 * @param {UsageRollup['rows']} rows
 * @param {(r: UsageRollup['rows'][number]) => string} key
 */
function sumBy(rows, key) {
  /** @type {Map<string, { requests: number, errors: number, tokens: number, cost: number }>} */
  const m = new Map();
  for (const r of rows) {
    const k = key(r);
    const e = m.get(k) ?? { requests: 0, errors: 0, tokens: 0, cost: 0 };
    e.requests += r.requests;
    e.errors += r.errors;
    e.tokens += r.input_tokens + r.output_tokens;
    e.cost += r.cost_micros;
    m.set(k, e);
  }
  return [...m.entries()].sort((a, b) => a[0].localeCompare(b[0]));
}

/** @param {HTMLElement} root */
export async function render(root) {
  /** @type {Grants} */
  const grants = await get('/admin/api/grants');
  const charts = h('div', {});
  const log = h('div', {});
  const form = h('form', { class: 'card', role: 'search', 'aria-label': 'Filter usage' },
    h('div', { class: 'grid' },
      field('From', h('input', { name: 'from', type: 'date' })),
      field('To', h('input', { name: 'to', type: 'date' })),
      field('App', h('select', { name: 'grant' }, h('option', { value: '' }, 'all apps'), grants.data.map((g) => h('option', { value: g.id }, g.app_name)))),
      field('Model', h('input', { name: 'model', placeholder: 'e.g. openai/gpt-4o-mini' })),
      field('Status', h('input', { name: 'status', type: 'number', min: 100, max: 599 })),
      field('Request id', h('input', { name: 'request_id' }))),
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
        page.data.map((r) => [time(r.created_at), h('code', {}, r.request_id), r.app_name ?? '–', r.model ?? '–',
          r.error_code ? `${r.status} ${r.error_code}` : String(r.status), num(r.input_tokens), num(r.output_tokens), usd(r.cost_micros), String(r.total_ms)]),
        ['Input', 'Output', 'Cost', 'Latency ms']),
      h('div', { class: 'actions' },
        offset > 0 ? button('Newer', async () => { offset = Math.max(0, offset - 50); await loadLog(); }) : null,
        offset + page.data.length < page.total ? button('Older', async () => { offset += 50; await loadLog(); }) : null));
  };
  const load = async () => {
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
    const days = sumBy(u.rows, (r) => r.day);
    fill(charts,
      h('dl', { class: 'stats' },
        h('div', {}, h('dt', {}, 'Requests'), h('dd', {}, num(u.totals.requests))),
        h('div', {}, h('dt', {}, 'Errors'), h('dd', {}, num(u.totals.errors))),
        h('div', {}, h('dt', {}, 'Tokens'), h('dd', {}, num(u.totals.input_tokens + u.totals.output_tokens))),
        h('div', {}, h('dt', {}, 'Cost'), h('dd', {}, usd(u.totals.cost_micros)))),
      h('div', { class: 'grid' },
        barChart('Tokens per day', days.map(([day, e]) => ({ day, value: e.tokens })), num),
        barChart('Cost per day', days.map(([day, e]) => ({ day, value: e.cost })), usd)),
      h('h2', {}, 'Per app'),
      table('Totals per app', ['App', 'Requests', 'Errors', 'Tokens', 'Cost'],
        sumBy(u.rows, (r) => r.app_name ?? r.grant_id ?? '–').map(([k, e]) => [k, num(e.requests), num(e.errors), num(e.tokens), usd(e.cost)]), ['Requests', 'Errors', 'Tokens', 'Cost']),
      h('h2', {}, 'Per model'),
      table('Totals per model', ['Model', 'Requests', 'Errors', 'Tokens', 'Cost'],
        sumBy(u.rows, (r) => `${r.provider ?? '–'}/${r.model ?? '–'}`).map(([k, e]) => [k, num(e.requests), num(e.errors), num(e.tokens), usd(e.cost)]), ['Requests', 'Errors', 'Tokens', 'Cost']));
    offset = 0;
    await loadLog();
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    load().catch((e) => fill(log, h('p', { class: 'error', role: 'alert' }, String(e))));
  });
  await load();
  root.append(form, charts, h('h2', {}, 'Request log'), log);
}
