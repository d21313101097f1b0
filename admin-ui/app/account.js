// Account: this owner's sessions, sign out, sign out everywhere, and passkeys.

import { get, post } from './api.js';
import { button, h, table, time, toast } from './dom.js';
import * as passkeys from './passkeys.js';

/**
 * @typedef {{ current: boolean, created_at: number, last_seen_at: number, expires_at: number, user_agent: string | null }} Session
 */

/** @param {HTMLElement} root */
export async function render(root) {
  /** @type {{ data: Session[] }} */
  const s = await get('/admin/api/sessions');
  root.append(
    table('Signed-in sessions', ['This one', 'Browser', 'Signed in', 'Last seen', 'Expires'],
      s.data.map((x) => [x.current ? 'yes' : '', x.user_agent ?? '–', time(x.created_at), time(x.last_seen_at), time(x.expires_at)])),
    h('div', { class: 'actions' },
      button('Sign out', async () => {
        await post('/admin/api/logout');
        location.assign('/admin/');
      }),
      button('Sign out everywhere', async () => {
        const r = /** @type {{ revoked: number }} */ (await post('/admin/api/sessions/revoke-all'));
        toast(`${r.revoked} sessions ended.`);
        location.assign('/admin/');
      }, 'danger')),
    await passkeys.section());
}
