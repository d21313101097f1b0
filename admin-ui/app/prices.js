// Prices (on the Plugins page): what each provider's models cost, from the console (editable),
// the configuration and the plugin's catalogue. A grant with a money budget can use a model only
// when one of them prices it; a fallback price covers every model nobody else prices.

import { get, put } from './api.js';
import { button, fill, h, table, toast } from './dom.js';

/**
 * @typedef {import('../api-types').ProviderPrices} ProviderPrices
 * @typedef {import('../api-types').PriceView} PriceView
 */

/** @param {number} v */
const dollars = (v) => `$${v.toFixed(v < 0.01 && v > 0 ? 4 : 2)}`;

/** @param {PriceView[]} list */
const readOnly = (list) => list.map((p) => [h('code', {}, p.model), dollars(p.input), dollars(p.output), p.max_output_tokens ? String(p.max_output_tokens) : '–']);

/**
 * One editable price row: model glob, input and output USD per million tokens, output limit.
 * @param {PriceView | null} p
 * @param {boolean} fallback
 */
function priceRow(p, fallback) {
  const input = (/** @type {string} */ name, /** @type {string} */ label, /** @type {string} */ value, /** @type {string} */ type) =>
    h('input', { name, type, step: 'any', min: '0', value, 'aria-label': label, placeholder: label });
  const row = h('div', { class: 'price-row' },
    fallback ? h('span', {}, 'every other model') : input('model', 'model glob, e.g. gpt-4o*', p?.model ?? '', 'text'),
    input('input', 'input $ per million tokens', p ? String(p.input) : '', 'number'),
    input('output', 'output $ per million tokens', p ? String(p.output) : '', 'number'),
    input('max_output_tokens', 'output limit (tokens, optional)', p?.max_output_tokens ? String(p.max_output_tokens) : '', 'number'));
  row.append(button('Remove', async () => { row.remove(); }, 'danger'));
  return row;
}

/** @param {HTMLElement} row */
function rowValue(row) {
  const v = (/** @type {string} */ name) => /** @type {HTMLInputElement | null} */ (row.querySelector(`[name="${name}"]`))?.value.trim() ?? '';
  const max = v('max_output_tokens');
  return {
    model: v('model'),
    input: Number(v('input')),
    output: Number(v('output')),
    max_output_tokens: max === '' ? undefined : Number(max),
  };
}

/**
 * @param {ProviderPrices} p
 * @param {() => Promise<void>} reload
 */
function providerSection(p, reload) {
  const list = h('div', {}, ...p.console.map((x) => priceRow(x, false)));
  const fallback = h('div', {}, ...(p.console_fallback ? [priceRow(p.console_fallback, true)] : []));
  const save = button('Save prices', async () => {
    const rows = [...list.querySelectorAll('.price-row')].map((r) => rowValue(/** @type {HTMLElement} */ (r)));
    const fb = fallback.querySelector('.price-row');
    await put(`/admin/api/providers/${encodeURIComponent(p.provider)}/prices`, {
      prices: rows,
      fallback: fb ? { ...rowValue(/** @type {HTMLElement} */ (fb)), model: '*' } : null,
    });
    toast(`${p.provider}: prices saved; they apply to the next request.`);
    await reload();
  });
  save.setAttribute('aria-label', `Save prices of ${p.provider}`);
  const config = [...readOnly(p.config), ...(p.config_fallback ? readOnly([{ ...p.config_fallback, model: '(fallback)' }]) : [])];
  return h('section', { class: 'card' },
    h('h3', {}, `${p.provider} (plugin ${p.plugin})`),
    h('p', { class: 'hint' }, 'Set here (first matching model glob wins, before the configuration and the catalogue):'),
    list,
    button('Add a price', async () => { list.append(priceRow(null, false)); }),
    h('p', { class: 'hint' }, 'Fallback: the price of any model nobody else prices (without one, such a model is refused for a grant with a money budget).'),
    fallback,
    p.console_fallback ? null : button('Set a fallback price', async () => { if (!fallback.firstChild) fallback.append(priceRow(null, true)); }),
    save,
    config.length ? table('Set in the configuration', ['Model', 'Input / M tokens', 'Output / M tokens', 'Output limit'], config) : null,
    table(`Catalogue of the ${p.plugin} plugin (a dated snapshot like gpt-4o-2024-08-06 is priced as its family)`,
      ['Model', 'Input / M tokens', 'Output / M tokens', 'Output limit'],
      p.catalogue.map((c) => [h('code', {}, c.model), dollars(c.input), dollars(c.output), c.max_output_tokens ? String(c.max_output_tokens) : '–'])));
}

/** @param {HTMLElement} root */
export async function renderPrices(root) {
  const box = h('div', {});
  const load = async () => {
    /** @type {ProviderPrices[]} */
    const all = await get('/admin/api/prices');
    fill(box, ...all.map((p) => providerSection(p, load)));
  };
  await load();
  root.append(h('h2', {}, 'Prices'), box);
}
