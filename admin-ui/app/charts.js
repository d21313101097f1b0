// Small SVG charts for the Usage page, built element by element (no markup strings): stacked
// bars over time with a labelled y axis, gridlines, thinned x labels, a legend and a tooltip per
// bar; and horizontal bars for breakdowns. Each has a text alternative for screen readers.

import { h } from './dom.js';

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
 * A round upper bound for an axis and its step (1, 2 or 5 times a power of ten), 4 steps or so.
 * @param {number} max
 */
export function niceScale(max) {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const raw = max / 4;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * pow).find((x) => x >= raw) ?? 10 * pow;
  return { top: Math.ceil(max / step) * step, step };
}

/**
 * @typedef {{ label: string, tip: string, values: number[] }} Bucket
 * @typedef {{ name: string, cls: string }} Series
 */

/**
 * Stacked bars over time.
 * @param {string} title
 * @param {Bucket[]} buckets in time order
 * @param {Series[]} series one per value of a bucket, bottom first
 * @param {(n: number) => string} fmt
 */
export function timeChart(title, buckets, series, fmt) {
  // Drawn narrower on a phone so that the text keeps a readable size once scaled to the screen.
  const narrow = window.innerWidth < 600;
  const w = narrow ? 360 : 640;
  const ht = narrow ? 200 : 240;
  const bottom = 28;
  const top = 10;
  const plotH = ht - bottom - top;
  const totals = buckets.map((b) => b.values.reduce((a, v) => a + v, 0));
  const { top: max, step } = niceScale(Math.max(0, ...totals));
  /** @type {number[]} */
  const ticks = [];
  for (let v = 0; v <= max + step / 2; v += step) ticks.push(v);
  // Room for the longest tick label (12px text, about 7px a character).
  const left = 12 + 7 * Math.max(...ticks.map((v) => fmt(v).length));
  const plotW = w - left - 8;
  const y = (/** @type {number} */ v) => top + plotH - (v / max) * plotH;
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${w} ${ht}`, role: 'img',
    'aria-label': `${title}: ` + buckets.map((b, i) => `${b.tip} ${fmt(totals[i])}`).join(', ') });
  for (const v of ticks) {
    svg.append(s('line', { class: 'grid', x1: left, x2: w - 8, y1: y(v), y2: y(v) }),
      s('text', { class: 'axis', x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmt(v)));
  }
  const slot = buckets.length ? plotW / buckets.length : plotW;
  const every = Math.max(1, Math.ceil(buckets.length / (narrow ? 5 : 8)));
  buckets.forEach((b, i) => {
    const x = left + i * slot;
    const g = s('g', { class: 'bucket' });
    g.append(s('title', {}, `${b.tip}\n` + series.map((se, k) => `${se.name}: ${fmt(b.values[k] ?? 0)}`).join('\n')));
    // A transparent target the full height of the slot, so the tooltip is easy to reach.
    g.append(s('rect', { class: 'hit', x, y: top, width: slot, height: plotH }));
    let base = 0;
    series.forEach((se, k) => {
      const v = b.values[k] ?? 0;
      if (v > 0) {
        g.append(s('rect', { class: `bar ${se.cls}`, x: x + slot * 0.15, y: y(base + v), width: Math.max(1, slot * 0.7), height: Math.max(1, y(base) - y(base + v)) }));
      }
      base += v;
    });
    svg.append(g);
    if (i % every === 0) svg.append(s('text', { class: 'axis', x: x + slot / 2, y: ht - 8, 'text-anchor': 'middle' }, b.label));
  });
  svg.append(s('line', { class: 'base', x1: left, x2: w - 8, y1: y(0), y2: y(0) }));
  const legend = series.length > 1
    ? h('ul', { class: 'legend' }, series.map((se) => h('li', {}, h('span', { class: `swatch ${se.cls}` }), se.name)))
    : null;
  return h('figure', { class: 'chart-box' }, h('figcaption', {}, title), legend, svg);
}

/**
 * Horizontal bars, largest first, e.g. cost per app.
 * @param {string} title
 * @param {{ label: string, value: number, detail?: string }[]} rows
 * @param {(n: number) => string} fmt
 */
export function barList(title, rows, fmt) {
  const sorted = [...rows].sort((a, b) => b.value - a.value).slice(0, 12);
  const max = Math.max(0, ...sorted.map((r) => r.value));
  return h('figure', { class: 'chart-box' },
    h('figcaption', {}, title),
    sorted.length === 0
      ? h('p', { class: 'hint' }, 'No requests in this period.')
      : h('ul', { class: 'barlist' }, sorted.map((r) => {
        const share = max > 0 ? r.value / max : 0;
        return h('li', { title: r.detail ?? `${r.label}: ${fmt(r.value)}` },
          h('span', { class: 'barlist-label' }, r.label),
          h('progress', { max: 1000, value: Math.round(share * 1000), 'aria-hidden': 'true' }),
          h('span', { class: 'barlist-value' }, fmt(r.value)));
      })));
}
