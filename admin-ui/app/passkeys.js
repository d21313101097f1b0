// Account › Passkeys: add (the password again, then the browser's passkey dialog), list, remove,
// and "require a passkey after the password".

import { get, post } from './api.js';
import { button, field, fill, h, table, time, toast, val } from './dom.js';
import * as webauthn from './webauthn.js';

/**
 * @typedef {import('../api-types').PasskeysView} PasskeysView
 * @typedef {import('../api-types').PasskeyChallenge} PasskeyChallenge
 */

/** The section, filled now and again after every change. */
export async function section() {
  const root = h('section', { 'aria-labelledby': 'passkeys-title' });
  await refresh(root);
  return root;
}

/** @param {HTMLElement} root */
async function refresh(root) {
  /** @type {PasskeysView} */
  const v = await get('/admin/api/passkeys');
  const title = h('h2', { id: 'passkeys-title' }, 'Passkeys');
  if (!v.available) {
    fill(root, title, h('p', { class: 'hint' }, v.unavailable_reason ?? 'Passkeys are unavailable.'));
    return;
  }
  const rows = v.data.map((p) => [p.name, time(p.created_at), time(p.last_used_at),
    button('Remove', async () => {
      await post(`/admin/api/passkeys/${encodeURIComponent(p.id)}/delete`);
      toast(`Passkey ${p.name} removed.`);
      await refresh(root);
    }, 'danger')]);
  fill(root, title,
    h('p', { class: 'hint' }, 'A passkey signs you in without the password, or as a second step after it.'),
    table('Your passkeys', ['Name', 'Added', 'Last used', ''], rows),
    addForm(root), requireForm(root, v));
}

/** @param {HTMLElement} root */
function addForm(root) {
  const name = h('input', { name: 'passkey_name', required: true, maxlength: 64, placeholder: 'e.g. laptop' });
  const pass = h('input', { name: 'passkey_password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h('form', { class: 'card' },
    h('h3', {}, 'Add a passkey'),
    field('Name', name), field('Password', pass, '(again, to confirm it is you)'),
    h('button', { type: 'submit', class: 'primary' }, 'Add passkey'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const submit = /** @type {HTMLButtonElement} */ (form.querySelector('button[type="submit"]'));
    submit.disabled = true;
    try {
      if (!webauthn.supported()) throw new Error('This browser offers no passkeys on this page (it needs https or localhost).');
      /** @type {PasskeyChallenge} */
      const ch = await post('/admin/api/passkeys/register/start', { name: val(form, 'passkey_name'), password: pass.value });
      const credential = await webauthn.create(ch.options);
      await post('/admin/api/passkeys/register/finish', { challenge_id: ch.challenge_id, credential });
      toast('Passkey added.');
      await refresh(root);
    } catch (e) {
      toast(e instanceof Error ? e.message : String(e));
    } finally {
      submit.disabled = false;
      pass.value = '';
    }
  });
  return form;
}

/**
 * @param {HTMLElement} root
 * @param {PasskeysView} v
 */
function requireForm(root, v) {
  const box = h('input', { type: 'checkbox', name: 'require_passkey', checked: v.require_passkey, disabled: v.data.length === 0 });
  const pass = h('input', { name: 'require_password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h('form', { class: 'card' },
    h('h3', {}, 'Sign-in'),
    h('div', { class: 'checks' }, h('label', {}, box, 'Require a passkey after the password')),
    v.data.length === 0 ? h('p', { class: 'hint' }, 'Add a passkey first.') : null,
    field('Password', pass, '(to change this)'),
    h('button', { type: 'submit' }, 'Save'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await post('/admin/api/passkeys/require', { require: box.checked, password: pass.value });
      toast(box.checked ? 'A passkey is now required after the password.' : 'The password alone signs in again.');
      await refresh(root);
    } catch (e) {
      toast(e instanceof Error ? e.message : String(e));
      pass.value = '';
    }
  });
  return form;
}
