// DOM helpers: elements are built with textContent only (never HTML strings), and small
// formatters shared by the pages.

/**
 * @typedef {string | number | Node | null | undefined | false} Child
 * @typedef {{ [name: string]: string | number | boolean | null | undefined | ((ev: Event) => void) }} Attrs
 */

/**
 * Builds an element. Attributes starting with `on` are event listeners; `false`/`null` skip.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

/**
 * @param {Element} el
 * @param {(Child | Child[])[]} children
 */
export function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/**
 * Replaces an element's content.
 * @param {Element} el
 * @param {...(Child | Child[])} children
 */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** @param {number | null | undefined} ms */
export function time(ms) {
  if (ms === null || ms === undefined) return '–';
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

/**
 * A moment in the browser's local time, e.g. "7 Dec 2026, 01:00".
 * @param {number | null | undefined} ms
 */
export function local(ms) {
  if (ms === null || ms === undefined) return '–';
  return new Date(ms).toLocaleString(undefined, { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/** @param {number} micros */
export function usd(micros) {
  return '$' + (micros / 1e6).toFixed(micros < 10000 && micros > 0 ? 6 : 2);
}

/** @param {number} n */
export function num(n) {
  return n.toLocaleString('en-US');
}

/**
 * A table with a header row; `cells` of each row are already-built children.
 * @param {string} caption
 * @param {string[]} headers
 * @param {Child[][]} rows
 * @param {string[]} [numeric] headers whose column is numeric
 * @param {Child} [empty] what to show (and what to do next) when there are no rows
 */
export function table(caption, headers, rows, numeric = [], empty = 'Nothing yet.') {
  const cls = (/** @type {string} */ name) => (numeric.includes(name) ? 'num' : null);
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', { class: 'hint' }, caption),
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col', class: cls(x) }, x)))),
      h('tbody', {},
        rows.length === 0
          ? h('tr', {}, h('td', { colspan: headers.length, class: 'empty' }, empty))
          : rows.map((r) => h('tr', {}, r.map((c, i) => h('td', { class: cls(headers[i] ?? '') }, c)))))));
}

/**
 * A labelled input. The label is tied to the control by id.
 * @param {string} label
 * @param {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} control
 * @param {string} [hint]
 */
export function field(label, control, hint) {
  if (!control.id) control.id = 'f-' + Math.random().toString(36).slice(2, 9);
  return h('div', {},
    h('label', { for: control.id }, label, hint ? h('span', { class: 'hint' }, ' ' + hint) : null),
    control);
}

let toastTimer = 0;

/**
 * Shows a message at the bottom of the page long enough to read it (longer for long ones, held
 * while the pointer is over it); a click dismisses it.
 * @param {string} message
 */
export function toast(message) {
  const t = document.getElementById('toast');
  if (!t) return;
  t.textContent = message;
  const hide = () => {
    if (t.matches(':hover')) {
      toastTimer = window.setTimeout(hide, 1000);
      return;
    }
    if (t.textContent === message) t.textContent = '';
  };
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(hide, Math.max(6000, message.length * 80));
  t.onclick = () => { t.textContent = ''; };
}

/**
 * Runs `tick` every few seconds while the current page is shown and the tab is visible.
 * @param {() => Promise<void>} tick
 * @param {number} [ms]
 */
export function poll(tick, ms = 5000) {
  let busy = false;
  const timer = window.setInterval(async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      await tick();
    } catch {
      // A failed refresh keeps what is shown; the next one tries again.
    } finally {
      busy = false;
    }
  }, ms);
  cleanups.push(() => window.clearInterval(timer));
}

/**
 * Runs `action` on click, disabling the button meanwhile and reporting failures.
 * @param {string} label
 * @param {() => Promise<void>} action
 * @param {string} [cls]
 */
export function button(label, action, cls) {
  const b = h('button', { type: 'button', class: cls ?? null }, label);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await action();
    } catch (e) {
      toast(e instanceof Error ? e.message : String(e));
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

/**
 * The value of a form control by name.
 * @param {HTMLFormElement} form
 * @param {string} name
 */
export function val(form, name) {
  const el = form.elements.namedItem(name);
  if (el instanceof HTMLInputElement || el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement) {
    return el.value.trim();
  }
  return '';
}

/**
 * A positive integer from a form control, or undefined when empty.
 * @param {HTMLFormElement} form
 * @param {string} name
 * @returns {number | undefined}
 */
export function intVal(form, name) {
  const v = val(form, name);
  if (v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}: not a positive number`);
  return Math.round(n);
}

/** Functions run when the owner leaves the current page (timers, countdowns). */
/** @type {(() => void)[]} */
export const cleanups = [];
