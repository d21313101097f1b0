// Browser test of the admin console: Debian's chromium driven by playwright-core against a real
// `pairgate serve`. Started by tests/e2e/admin_ui.rs, which plays the app: lines this script
// writes as `@@{json}` ask the Rust side to act (redeem a pairing with pairgate-sdk, send
// requests, ask for consent), and it answers with one JSON line on stdin.
//
// Environment: PAIRGATE_URL, PAIRGATE_SETUP_TOKEN, CHROMIUM (executable), SCREENSHOTS (dir).

import { mkdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const URL = need('PAIRGATE_URL');
const TOKEN = need('PAIRGATE_SETUP_TOKEN');
const SHOTS = need('SCREENSHOTS');
const PASSWORD = 'a long owner password 42';
const SECRET = 'sk-ui-planted-secret-0123456789';
mkdirSync(SHOTS, { recursive: true });

/** @param {string} name */
function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
/**
 * Asks the Rust side to do something and waits for its answer.
 * @param {string} step
 * @param {object} [data]
 */
async function ask(step, data = {}) {
  process.stdout.write('@@' + JSON.stringify({ step, ...data }) + '\n');
  const { value, done } = await lines.next();
  if (done) throw new Error(`no answer to ${step}`);
  return JSON.parse(value);
}

let shot = 0;
/** @param {import('playwright-core').Page} page @param {string} name */
async function screenshot(page, name) {
  shot += 1;
  await page.screenshot({ path: `${SHOTS}/${String(shot).padStart(2, '0')}-${name}.png`, fullPage: true });
}

/** @param {string} msg */
function log(msg) {
  process.stdout.write(`ui: ${msg}\n`);
}

/** Every visible form control has an accessible name. @param {import('playwright-core').Page} page */
async function checkLabels(page, where) {
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => el instanceof HTMLElement && el.offsetParent !== null)
    .filter((el) => !(/** @type {HTMLInputElement} */ (el).labels?.length) && !el.getAttribute('aria-label'))
    .map((el) => el.outerHTML.slice(0, 80)));
  assert.deepEqual(unlabelled, [], `${where}: controls without a label`);
}

/** @param {import('playwright-core').Page} page @param {string} hash @param {string} title */
async function go(page, hash, title) {
  await page.goto(`${URL}/admin/#/${hash}`);
  await page.getByRole('heading', { level: 1, name: title }).waitFor();
  await page.locator('main').getByText('Loading…').waitFor({ state: 'detached' });
  await checkLabels(page, title);
}

const browser = await chromium.launch({ executablePath: need('CHROMIUM'), args: ['--no-sandbox', '--disable-gpu'] });
try {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: URL });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // A refused request (401 before login, a wrong password) is logged by the browser itself.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('dialog', (d) => d.accept());

  // Owner setup from the one-time link, with the console's security headers.
  const res = await page.goto(`${URL}/admin/setup#${TOKEN}`);
  assert.ok(res);
  const headers = res.headers();
  assert.match(headers['content-security-policy'] ?? '', /script-src 'self'/);
  assert.equal(headers['x-frame-options'], 'DENY');
  assert.equal(headers['x-content-type-options'], 'nosniff');
  assert.equal(page.url(), `${URL}/admin/setup`, 'the token leaves the address bar');
  await page.locator('input[name="password"]').fill(PASSWORD);
  await page.locator('input[name="again"]').fill(PASSWORD);
  await screenshot(page, 'setup');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  log('owner created');

  // Keyboard: after a page renders, focus is on its content; Shift+Tab reaches the last
  // section link, Enter opens it.
  await page.locator('main').getByText('Loading…').waitFor({ state: 'detached' });
  await page.keyboard.press('Shift+Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Account');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Account' }).waitFor();
  await page.locator('main').getByText('Loading…').waitFor({ state: 'detached' });
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await screenshot(page, 'login');
  await page.locator('input[name="username"]').fill('owner');
  await page.locator('input[name="password"]').fill('wrong password, surely');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: /.+/ }).waitFor();
  await page.locator('input[name="password"]').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  log('signed in');

  // Credentials: add one (never shown again), check it, delete it.
  await go(page, 'credentials', 'Credentials');
  await page.locator('input[name="provider"]').fill('openai');
  await page.locator('input[name="name"]').fill('ui-extra');
  await page.locator('input[name="value"]').fill(SECRET);
  await page.getByRole('button', { name: 'Add key' }).click();
  const row = page.locator('tr', { hasText: 'ui-extra' });
  await row.waitFor();
  assert.equal(await page.locator('input[name="value"]').inputValue(), '', 'the key field is cleared');
  assert.ok(!(await page.content()).includes(SECRET), 'the key is not on the page');
  await row.getByRole('button', { name: 'Test against provider' }).click();
  await page.locator('#toast', { hasText: 'decrypts here' }).waitFor();
  await screenshot(page, 'credentials');
  await row.getByRole('button', { name: 'Delete' }).click();
  await row.waitFor({ state: 'detached' });
  log('credential added, checked, deleted');

  // Pairings: create one with a policy from the catalogue; string, QR and countdown.
  await go(page, 'pairings', 'Pairings');
  await page.locator('input[name="app_name"]').fill('ui app');
  await page.getByRole('checkbox', { name: 'openai' }).check();
  await page.locator('select[name="models"]').selectOption(['openai/gpt-4o-mini']);
  await page.locator('input[name="rpm"]').fill('100');
  await page.locator('input[name="tokens_daily"]').fill('100000');
  await page.getByRole('button', { name: 'Create pairing' }).click();
  const stringBox = page.locator('#pairing-string');
  await stringBox.waitFor();
  const pairing = await stringBox.inputValue();
  assert.ok(pairing.length > 20, pairing);
  await page.getByRole('img', { name: 'QR code of the pairing string' }).waitFor();
  assert.match(await page.locator('#pairing-countdown').innerText(), /^\d+:\d\d$/);
  await page.getByRole('button', { name: 'Copy' }).click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), pairing);
  await page.locator('tr', { hasText: 'ui app' }).waitFor();
  await screenshot(page, 'pairing-created');
  log('pairing created');

  // The app (Rust SDK) redeems it and sends requests.
  const app = await ask('pair', { pairing_string: pairing });
  assert.equal(app.requests_ok, 3);

  // Apps: the app appears with its key fingerprint; details show policy and remaining limits.
  await go(page, 'apps', 'Apps');
  const appRow = page.locator('tr', { hasText: 'ui app' });
  await appRow.getByText(app.fingerprint).waitFor();
  await appRow.getByText('Details').click();
  await appRow.getByText('requests_per_minute').first().waitFor();
  await screenshot(page, 'apps');

  // Edit the app's limits: the pairing form's controls, filled in with its policy.
  await appRow.getByRole('button', { name: 'Edit limits' }).click();
  const edit = page.getByRole('form', { name: 'Edit limits of ui app' });
  const rpm = edit.locator('input[name="rpm"]');
  await rpm.waitFor();
  assert.equal(await rpm.inputValue(), '100', 'the form shows the current limit');
  assert.ok(await edit.getByRole('checkbox', { name: 'openai' }).isChecked());
  await rpm.fill('50');
  await screenshot(page, 'apps-edit');
  await edit.getByRole('button', { name: 'Save limits' }).click();
  await page.locator('#toast', { hasText: 'limits saved' }).waitFor();
  await appRow.getByText('Details').click();
  await appRow.getByText('"requests_per_minute": 50').waitFor();
  await appRow.getByText('"daily": 100000').first().waitFor();
  log('limits edited');

  // Usage: the requests are in the log, the charts and the CSV.
  await go(page, 'usage', 'Usage');
  await page.getByText('Requests 1–3 of 3').waitFor();
  assert.equal(await page.locator('svg.chart').count(), 2);
  await page.locator('input[name="status"]').fill('200');
  await page.getByRole('button', { name: 'Show' }).click();
  await page.getByText('Requests 1–3 of 3').waitFor();
  await screenshot(page, 'usage');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Export CSV' }).click()]);
  const csv = readFileSync(await download.path() ?? '', 'utf8').trim().split('\n');
  assert.equal(csv.length, 4, csv.join('\n'));
  assert.ok(csv[1].includes('openai/gpt-4o-mini') || csv[1].includes('gpt-4o-mini'), csv[1]);
  log('usage shown and exported');

  await go(page, 'overview', 'Overview');
  const requestsToday = page.locator('dl.stats div', { hasText: 'Requests today' }).locator('dd');
  assert.equal(await requestsToday.innerText(), '3');
  await screenshot(page, 'overview');

  // Consent requests: approve one with a narrowed policy, deny the other.
  const consents = await ask('consents');
  await go(page, 'consents', 'Consent requests');
  const approveCard = page.locator(`section[data-user-code="${consents.approve.user_code}"]`);
  const denyCard = page.locator(`section[data-user-code="${consents.deny.user_code}"]`);
  await approveCard.getByText(consents.approve.fingerprint).waitFor();
  await denyCard.getByText(consents.deny.fingerprint).waitFor();
  await screenshot(page, 'consents');
  await approveCard.getByRole('textbox').fill(JSON.stringify({ models: ['openai/gpt-4o-mini'] }));
  await approveCard.getByRole('button', { name: 'Approve' }).click();
  await approveCard.getByText('Approved').waitFor();
  await denyCard.getByRole('button', { name: 'Deny' }).click();
  await denyCard.getByText('Denied').waitFor();
  const decided = await ask('consents_decided');
  assert.deepEqual(decided, { approved_models: ['openai/gpt-4o-mini'], denied: true });
  log('consents decided');

  // The device flow's verification URI, opened signed out: sign in, land on that one request
  // (app name, key fingerprint, policy), approve it; the app then gets its grant.
  const device = await ask('device');
  await go(page, 'account', 'Account');
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  const opened = await page.goto(device.verification_uri_complete);
  assert.equal(opened?.status(), 200);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByText('An app is waiting for your approval').waitFor();
  await page.locator('input[name="username"]').fill('owner');
  await page.locator('input[name="password"]').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Consent requests' }).waitFor();
  const deviceCard = page.locator(`section[data-user-code="${device.user_code}"]`);
  await deviceCard.getByRole('heading', { name: 'device app' }).waitFor();
  await deviceCard.getByText(device.fingerprint).waitFor();
  assert.equal(await page.locator('section.consent').count(), 1, 'only the linked request');
  assert.ok(page.url().endsWith(`/admin/#/consents?user_code=${device.user_code}`), page.url());
  await checkLabels(page, 'verification URI');
  await screenshot(page, 'consent-verification-uri');
  await deviceCard.getByRole('button', { name: 'Approve' }).click();
  await deviceCard.getByText('Approved device app').waitFor();
  assert.deepEqual(await ask('device_decided'), { grant_status: 200 });
  log('device flow approved from its verification URI');

  // Revoke the paired app: its next request is refused.
  await go(page, 'apps', 'Apps');
  const revRow = page.locator('tr', { hasText: 'ui app' }).filter({ hasText: app.fingerprint });
  await revRow.getByText('Details').click();
  await revRow.getByRole('button', { name: 'Revoke', exact: true }).click();
  await page.locator('tr', { hasText: app.fingerprint }).getByText('revoked').waitFor();
  const after = await ask('revoked');
  assert.equal(after.status, 401);
  log('revoked app refused');

  await go(page, 'plugins', 'Plugins');
  await page.locator('tr', { hasText: 'api.openai.com' }).first().waitFor();
  await screenshot(page, 'plugins');

  await go(page, 'audit', 'Audit log');
  await page.locator('#audit-search').fill('grant.revoked');
  await page.locator('td code', { hasText: 'grant.revoked' }).first().waitFor();
  await page.locator('#audit-search').fill('');
  for (const a of ['owner.created', 'owner.login', 'pairing.created', 'pairing.redeemed', 'consent.approved', 'consent.denied', 'credential.removed']) {
    await page.locator('td code', { hasText: a }).first().waitFor();
  }
  await screenshot(page, 'audit');

  await go(page, 'account', 'Account');
  await screenshot(page, 'account');

  // Passkeys, with a virtual platform authenticator (Chrome DevTools Protocol): add one, require
  // it after the password, sign in with password + passkey, then with the passkey alone.
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true },
  });
  await page.locator('input[name="passkey_name"]').fill('test laptop');
  await page.locator('input[name="passkey_password"]').fill(PASSWORD);
  await page.getByRole('button', { name: 'Add passkey' }).click();
  await page.locator('tr', { hasText: 'test laptop' }).waitFor();
  const signCount = async () => {
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.length, 1);
    assert.ok(credentials[0].isResidentCredential, 'a discoverable credential');
    return credentials[0].signCount;
  };
  const registered = await signCount();
  await page.getByRole('checkbox', { name: 'Require a passkey after the password' }).check();
  await page.locator('input[name="require_password"]').fill(PASSWORD);
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#toast', { hasText: 'A passkey is now required' }).waitFor();
  assert.ok(await page.getByRole('checkbox', { name: 'Require a passkey after the password' }).isChecked());
  await checkLabels(page, 'Passkeys');
  await screenshot(page, 'passkeys');
  log('passkey added and required');

  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.locator('input[name="username"]').fill('owner');
  await page.locator('input[name="password"]').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  assert.ok((await signCount()) > registered, 'the passkey signed the second step');
  log('signed in with password + passkey');

  await go(page, 'account', 'Account');
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await screenshot(page, 'login-passkey');
  const before = await signCount();
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  assert.ok((await signCount()) > before, 'the passkey signed in alone');
  log('signed in with the passkey alone');
  await go(page, 'audit', 'Audit log');
  for (const a of ['passkey.registered', 'passkey.required']) {
    await page.locator('td code', { hasText: a }).first().waitFor();
  }
  await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });

  // Readable on a phone: no horizontal scrolling of the page itself.
  await page.setViewportSize({ width: 390, height: 844 });
  await go(page, 'overview', 'Overview');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `page scrolls sideways by ${overflow}px on a phone`);
  await screenshot(page, 'overview-phone');

  // Sign out everywhere: the console is back to the login form.
  await go(page, 'account', 'Account');
  await page.getByRole('button', { name: 'Sign out everywhere' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();

  assert.ok(!(await page.content()).includes(SECRET));
  assert.deepEqual(problems, [], 'no script errors');
  log(`done, ${shot} screenshots in ${SHOTS}`);
} finally {
  await browser.close();
}
process.exit(0);
