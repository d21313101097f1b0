// Audit log: every owner action and every pairing, consent and revocation event, searchable.

import { get } from './api.js';
import { fill, h, table, time } from './dom.js';

/**
 * @typedef {import('../api-types').AuditEntry} AuditEntry
 * @typedef {import('../api-types').ListOf<AuditEntry>} Audit
 */

/** @param {HTMLElement} root */
export async function render(root) {
  /** @type {Audit} */
  const audit = await get('/admin/api/audit');
  const search = h('input', { id: 'audit-search', type: 'search', placeholder: 'action, actor, subject…' });
  const out = h('div', {});
  const show = () => {
    const q = search.value.trim().toLowerCase();
    const rows = audit.data.filter((e) => !q || [e.action, e.actor, e.subject ?? '', e.detail ?? ''].some((x) => x.toLowerCase().includes(q)));
    fill(out, table(`${rows.length} of the newest ${audit.data.length} events`,
      ['Time', 'Actor', 'Action', 'Subject', 'Detail'],
      rows.map((e) => [time(e.at), e.actor, h('code', {}, e.action), e.subject ? h('code', {}, e.subject) : '–', e.detail ? h('code', {}, e.detail) : '–'])));
  };
  search.addEventListener('input', show);
  show();
  root.append(h('label', { for: search.id }, 'Search'), search, out);
}
