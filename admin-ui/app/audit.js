// Audit log: every owner action and every pairing, consent and revocation event, searchable; in
// local time, apps named next to their grant ids, details as readable fields instead of JSON.

import { get } from './api.js';
import { fill, h, local, table, usd } from './dom.js';

/**
 * @typedef {import('../api-types').AuditEntry} AuditEntry
 * @typedef {import('../api-types').ListOf<AuditEntry>} Audit
 * @typedef {import('../api-types').ListOf<import('../api-types').GrantView>} Grants
 */

/**
 * A detail's fields, nested objects flattened to dotted names; empty values left out.
 * @param {unknown} v
 * @param {string} prefix
 * @returns {[string, unknown][]}
 */
function fields(v, prefix) {
  if (v === null || v === undefined || (Array.isArray(v) && v.length === 0)) return [];
  if (typeof v === 'object' && !Array.isArray(v)) {
    return Object.entries(/** @type {Record<string, unknown>} */ (v)).flatMap(([k, x]) => fields(x, prefix ? `${prefix}.${k}` : k));
  }
  return [[prefix, v]];
}

/**
 * One field's value in words: times in local time, micro-dollars as dollars.
 * @param {string} key
 * @param {unknown} v
 */
function value(key, v) {
  if (typeof v === 'number' && /(_at|_until|^at|not_before)$/.test(key) && v > 1e11) return local(v);
  if (typeof v === 'number' && key.includes('micros')) return usd(v);
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ');
  return String(v);
}

/** @param {string} text */
function detail(text) {
  /** @type {unknown} */
  let v;
  try {
    v = JSON.parse(text);
  } catch {
    return h('span', {}, text);
  }
  if (typeof v !== 'object' || v === null) return h('span', {}, String(v));
  const list = fields(v, '');
  if (list.length === 0) return '–';
  return h('ul', { class: 'kv' }, list.map(([k, x]) => h('li', {}, h('span', { class: 'hint' }, `${k}: `), value(k, x))));
}

/** @param {HTMLElement} root */
export async function render(root) {
  /** @type {[Audit, Grants]} */
  const [audit, grants] = await Promise.all([get('/admin/api/audit'), get('/admin/api/grants')]);
  const apps = new Map(grants.data.map((g) => [g.id, g.app_name]));
  const search = h('input', { id: 'audit-search', type: 'search', placeholder: 'action, actor, app, subject…' });
  const out = h('div', {});
  const show = () => {
    const q = search.value.trim().toLowerCase();
    const rows = audit.data.filter((e) => !q || [e.action, e.actor, e.subject ?? '', apps.get(e.subject ?? '') ?? '', e.detail ?? '']
      .some((x) => x.toLowerCase().includes(q)));
    fill(out, table(`${rows.length} of the newest ${audit.data.length} events`,
      ['Time', 'Actor', 'Action', 'Subject', 'Detail'],
      rows.map((e) => {
        const app = apps.get(e.subject ?? '');
        const subject = e.subject ? h('span', {}, app ? `${app} ` : '', h('code', {}, e.subject)) : '–';
        const actorApp = e.actor.startsWith('app:') ? apps.get(e.actor.slice(4)) : undefined;
        const actor = actorApp ? h('span', {}, `app ${actorApp} `, h('code', {}, e.actor.slice(4))) : e.actor;
        return [local(e.at), actor, h('code', {}, e.action), subject, e.detail ? detail(e.detail) : '–'];
      }), [], 'No events match.'));
  };
  search.addEventListener('input', show);
  show();
  root.append(h('label', { for: search.id }, 'Search'), search, out);
}
