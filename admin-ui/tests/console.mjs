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
  // Confirmations are accepted, except one a step asks to be dismissed; their texts are kept.
  const dialogs = [];
  let dismissNext = false;
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    if (dismissNext) {
      dismissNext = false;
      d.dismiss();
    } else {
      d.accept();
    }
  });

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
  await page.getByRole('alert').filter({ hasText: 'Wrong username or password.' }).waitFor();
  await page.locator('input[name="password"]').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  log('signed in');

  // The setup link once used: said at once, with no form to fill in first.
  await page.goto(`${URL}/admin/setup#${TOKEN}`);
  await page.getByRole('heading', { name: 'This setup link cannot be used' }).waitFor();
  assert.equal(await page.locator('input[name="password"]').count(), 0);
  await page.getByRole('link', { name: 'Sign in to the console' }).click();
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();

  // Credentials: add one (never shown again), check it, delete it.
  await go(page, 'credentials', 'Credentials');
  const providerChoice = page.locator('select[name="provider"]');
  assert.ok((await providerChoice.locator('option').allTextContents()).includes('openai'), 'providers to choose from');
  await providerChoice.selectOption('openai');
  await page.locator('input[name="name"]').fill('ui-extra');
  await page.locator('input[name="value"]').fill(SECRET);
  await page.getByRole('button', { name: 'Add key' }).click();
  const row = page.locator('tr', { hasText: 'ui-extra' });
  await row.waitFor();
  assert.equal(await page.locator('input[name="value"]').inputValue(), '', 'the key field is cleared');
  assert.ok(!(await page.content()).includes(SECRET), 'the key is not on the page');
  await row.getByRole('button', { name: 'Test against provider' }).click();
  // The result stays on the row, with when it was tested.
  await page.locator('tr', { hasText: 'ui-extra' }).locator('.test-result', { hasText: 'decrypts here' }).waitFor();
  await screenshot(page, 'credentials');
  await row.getByRole('button', { name: 'Delete' }).click();
  await row.waitFor({ state: 'detached' });
  // Gemini's key goes too: the pairing form then warns that gemini has none.
  const gemini = page.locator('tr', { hasText: 'gemini' });
  await gemini.getByRole('button', { name: 'Delete' }).click();
  await gemini.waitFor({ state: 'detached' });
  log('credential added, checked, deleted');

  // Pairings: create one through the policy form; string, QR and countdown.
  await go(page, 'pairings', 'Pairings');
  const pairingForm = page.getByRole('form', { name: 'Create a pairing' });
  // Choosing a provider filters the model list; the search narrows it further.
  const visibleModels = () => pairingForm.locator('label.model:visible input').evaluateAll((els) => els.map((e) => /** @type {HTMLInputElement} */ (e).value));
  assert.ok((await visibleModels()).some((m) => m.startsWith('anthropic/')), 'every provider\'s models at first');
  // A provider without a key is warned about; one whose plugin needs none (Ollama) is not.
  const warning = pairingForm.locator('p.warn');
  await pairingForm.getByRole('checkbox', { name: 'gemini', exact: true }).check();
  await pairingForm.getByRole('checkbox', { name: 'ollama', exact: true }).check();
  assert.match(await warning.innerText(), /^No key for gemini yet/);
  await pairingForm.getByRole('checkbox', { name: 'gemini', exact: true }).uncheck();
  await pairingForm.getByRole('checkbox', { name: 'ollama', exact: true }).uncheck();
  assert.equal(await warning.textContent(), '');
  await pairingForm.getByRole('checkbox', { name: 'openai', exact: true }).check();
  const openaiModels = await visibleModels();
  assert.ok(openaiModels.length > 0 && openaiModels.every((m) => m.startsWith('openai/')), openaiModels.join(', '));
  await pairingForm.getByRole('searchbox', { name: 'Search models' }).fill('4o-mini');
  assert.ok((await visibleModels()).every((m) => m.includes('4o-mini')));
  await pairingForm.locator('input[name="model"][value="openai/gpt-4o-mini"]').check();
  await pairingForm.getByText('1 selected').waitFor();
  // An app name is required; with no limit at all the console asks first (dismissed here).
  await page.getByRole('button', { name: 'Create pairing' }).click();
  assert.equal(await page.locator('input[name="app_name"]').evaluate((e) => /** @type {HTMLInputElement} */ (e).validity.valueMissing), true);
  await page.locator('input[name="app_name"]').fill('ui app');
  dismissNext = true;
  const dialogsBefore = dialogs.length;
  await page.getByRole('button', { name: 'Create pairing' }).click();
  for (let i = 0; i < 300 && dialogs.length === dialogsBefore; i++) await page.waitForTimeout(100);
  assert.match(dialogs.at(-1) ?? '', /no limits at all/);
  assert.equal(await page.locator('#pairing-string').count(), 0, 'no pairing without confirmation');
  await page.locator('input[name="rpm"]').fill('100');
  await page.locator('input[name="tokens_daily"]').fill('100000');
  await page.locator('input[name="cost_daily"]').fill('2.50');
  await screenshot(page, 'pairing-form');
  const asked = dialogs.length;
  await page.getByRole('button', { name: 'Create pairing' }).click();
  const stringBox = page.locator('#pairing-string');
  await stringBox.waitFor();
  const pairing = await stringBox.inputValue();
  assert.equal(dialogs.length, asked, 'no confirmation when limits are set');
  assert.ok(pairing.length > 20, pairing);
  await page.getByRole('img', { name: 'QR code of the pairing string' }).waitFor();
  assert.match(await page.locator('#pairing-countdown').innerText(), /^\d+:\d\d$/);
  await page.getByRole('button', { name: 'Copy' }).click();
  // The copy is asynchronous: its toast says it is done before the clipboard is read back.
  await page.getByText('Copied.').first().waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), pairing);
  await page.locator('tr', { hasText: 'ui app' }).waitFor();
  await screenshot(page, 'pairing-created');
  log('pairing created');

  // The app (Rust SDK) redeems it and sends requests.
  const app = await ask('pair', { pairing_string: pairing });
  assert.equal(app.requests_ok, 3);

  // Apps: the app appears with its key fingerprint and its spend; details are a readable summary
  // with budget bars and reset times.
  await go(page, 'apps', 'Apps');
  const appRow = page.locator('tr', { hasText: 'ui app' });
  await appRow.getByText(app.fingerprint).waitFor();
  assert.match(await appRow.locator('td.num').innerText(), /^\$\d/);
  await appRow.getByRole('button', { name: 'Details' }).click();
  const summary = page.locator('section.app-details');
  await summary.getByRole('heading', { name: /ui app/ }).waitFor();
  await summary.getByText('Requests: 100 per minute').first().waitFor();
  await summary.getByText('openai/gpt-4o-mini').first().waitFor();
  const tokenBar = summary.locator('.budget', { hasText: 'Tokens today (UTC)' });
  assert.match(await tokenBar.innerText(), /of 100,000 used, [\d,]+ left · resets /);
  assert.equal(await tokenBar.locator('progress').getAttribute('max'), '100000');
  await summary.locator('.budget', { hasText: 'Spend today (UTC)' }).getByText('of $2.50 used').waitFor();
  assert.ok(!(await summary.innerText()).includes('{'), 'no JSON in the summary');
  await screenshot(page, 'apps');

  // Edit the app's limits: the pairing form's controls, filled in with its policy.
  await summary.getByRole('button', { name: 'Edit limits' }).click();
  const edit = page.getByRole('form', { name: 'Edit limits of ui app' });
  const rpm = edit.locator('input[name="rpm"]');
  await rpm.waitFor();
  assert.equal(await rpm.inputValue(), '100', 'the form shows the current limit');
  assert.ok(await edit.getByRole('checkbox', { name: 'openai', exact: true }).isChecked());
  assert.equal(await edit.locator('input[name="cost_daily"]').inputValue(), '2.5', 'the budget in dollars');
  await rpm.fill('50');
  // Access ends at the end of a day 30 days from now (local time).
  const until = new Date(Date.now() + 30 * 86400000);
  const untilDay = `${until.getFullYear()}-${String(until.getMonth() + 1).padStart(2, '0')}-${String(until.getDate()).padStart(2, '0')}`;
  await edit.locator('input[name="expires_on"]').fill(untilDay);
  await screenshot(page, 'apps-edit');
  await edit.getByRole('button', { name: 'Save limits' }).click();
  await page.locator('#toast', { hasText: 'limits saved' }).waitFor();
  await summary.getByText('Requests: 50 per minute').first().waitFor();
  const ends = new Date(until.getFullYear(), until.getMonth(), until.getDate() + 1);
  await summary.getByText(`until ${ends.toLocaleString('en-US', { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit' })}`).waitFor();
  await summary.locator('.budget', { hasText: 'Tokens today (UTC)' }).getByText(/of 100,000 used/).waitFor();
  log('limits edited');

  // Usage: the requests are in the log, the charts and the CSV.
  await go(page, 'usage', 'Usage');
  await page.getByText('Requests 1–3 of 3').waitFor();
  await page.locator('.period', { hasText: /Showing .* \(30 UTC days\), day by day/ }).waitFor();
  assert.equal(await page.locator('svg.chart').count(), 3, 'requests, tokens and cost over time');
  assert.equal(await page.locator('svg.chart').first().locator('g.bucket').count(), 30, 'one bar per day');
  assert.ok((await page.locator('main').innerText()).includes('openai/gpt-4o-mini'));
  assert.ok(!(await page.locator('main').innerText()).includes('openai/openai/'), 'models are named once');
  await page.locator('figure', { hasText: 'Cost per app' }).getByText('ui app').waitFor();
  await page.locator('figure', { hasText: 'Tokens per model' }).getByText('openai/gpt-4o-mini').waitFor();
  // Today: hour by hour, from the request log; each bar's tooltip has its numbers.
  await page.getByRole('button', { name: 'Today' }).click();
  await page.locator('.period', { hasText: 'hour by hour' }).waitFor();
  const requestsChart = page.locator('figure', { hasText: 'Requests per hour' });
  await requestsChart.waitFor();
  const tips = await requestsChart.locator('g.bucket title').allTextContents();
  assert.ok(tips.some((t) => t.includes('answered: 3')), tips.join(' | '));
  assert.ok((await requestsChart.locator('text.axis').count()) > 4, 'labelled axes');
  await screenshot(page, 'usage-today');
  // Custom: any two UTC days.
  await page.getByRole('button', { name: 'Custom' }).click();
  const today = new Date().toISOString().slice(0, 10);
  const weekAgo = new Date(Date.now() - 6 * 86400000).toISOString().slice(0, 10);
  await page.locator('input[name="from"]').fill(weekAgo);
  await page.locator('input[name="to"]').fill(today);
  await page.getByRole('button', { name: 'Show' }).click();
  await page.locator('.period', { hasText: '(7 UTC days), day by day' }).waitFor();
  assert.equal(await page.locator('svg.chart').first().locator('g.bucket').count(), 7);
  await page.getByRole('button', { name: '30 days' }).click();
  await page.locator('.period', { hasText: '(30 UTC days)' }).waitFor();
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
  // The overview refreshes itself: a request made meanwhile shows up without a reload.
  assert.equal((await ask('one_more')).status, 200);
  await page.locator('dl.stats div', { hasText: 'Requests today' }).locator('dd', { hasText: /^4$/ }).waitFor({ timeout: 15000 });

  // Consent requests appear by themselves on the open page; approve one with a policy narrowed
  // through the form, deny the other.
  await go(page, 'consents', 'Consent requests');
  await page.getByText('No pending consent requests').waitFor();
  const consents = await ask('consents');
  const approveCard = page.locator(`section[data-user-code="${consents.approve.user_code}"]`);
  const denyCard = page.locator(`section[data-user-code="${consents.deny.user_code}"]`);
  await approveCard.getByText(consents.approve.fingerprint).waitFor();
  await denyCard.getByText(consents.deny.fingerprint).waitFor();
  await screenshot(page, 'consents');
  await approveCard.getByText('openai/*').first().waitFor();
  await approveCard.getByText('Narrow what it gets').click();
  await approveCard.locator('input[name="model"][value="openai/*"]').uncheck();
  await approveCard.locator('input[name="model"][value="openai/gpt-4o-mini"]').check();
  await checkLabels(page, 'consent form');
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
  // Narrowed through the form (open at once here): a rate limit and one model.
  await deviceCard.locator('input[name="rpm"]').fill('30');
  await deviceCard.locator('input[name="model"][value="openai/*"]').uncheck();
  await deviceCard.locator('input[name="model"][value="openai/gpt-4o-mini"]').check();
  await screenshot(page, 'consent-verification-uri');
  await deviceCard.getByRole('button', { name: 'Approve' }).click();
  await deviceCard.getByText('Approved device app').waitFor();
  assert.deepEqual(await ask('device_decided'), { grant_status: 200, rpm: 30, models: ['openai/gpt-4o-mini'] });
  log('device flow approved from its verification URI');

  // Revoke the paired app: its next request is refused.
  await go(page, 'apps', 'Apps');
  const revRow = page.locator('tr', { hasText: 'ui app' }).filter({ hasText: app.fingerprint });
  await revRow.getByRole('button', { name: 'Details' }).click();
  await page.locator('section.app-details').getByRole('button', { name: 'Revoke', exact: true }).click();
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
  assert.ok(!(await page.locator('main').innerText()).includes('{"'), 'details are fields, not JSON');
  await page.locator('tr', { hasText: 'grant.revoked' }).getByText('ui app').first().waitFor();
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

  // Dark mode follows the system setting.
  await page.emulateMedia({ colorScheme: 'dark' });
  await go(page, 'usage', 'Usage');
  assert.equal(await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor), 'rgb(13, 17, 23)');
  await screenshot(page, 'usage-dark');
  await go(page, 'apps', 'Apps');
  await page.locator('tr', { hasText: 'device app' }).getByRole('button', { name: 'Details' }).click();
  await page.locator('section.app-details').getByText('Requests: 30 per minute').first().waitFor();
  await screenshot(page, 'apps-dark');

  // Readable on a phone: no horizontal scrolling of the page itself (wide tables scroll in
  // their own box), the section links on one line, the header in view after scrolling.
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [hash, title] of [['overview', 'Overview'], ['pairings', 'Pairings'], ['apps', 'Apps'], ['credentials', 'Credentials'], ['usage', 'Usage']]) {
    await go(page, hash, title);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `${title} scrolls sideways by ${overflow}px on a phone`);
    const nav = await page.locator('nav').boundingBox();
    assert.ok(nav && nav.height < 60, `the section links take ${nav?.height}px`);
    await screenshot(page, `${hash}-phone-dark`);
  }
  const logBox = page.locator('.table-wrap').last();
  assert.ok(await logBox.evaluate((e) => e.scrollWidth > e.clientWidth), 'the request log scrolls in its box');
  await page.mouse.wheel(0, 2000);
  await page.waitForFunction(() => window.scrollY > 0);
  const header = await page.locator('header.top').boundingBox();
  assert.ok(header && header.y === 0, 'the header stays in view');
  await page.emulateMedia({ colorScheme: 'light' });
  await go(page, 'overview', 'Overview');
  await screenshot(page, 'overview-phone');

  // The session cookie gone while the overview refreshes itself: the login form appears, and the
  // refresh stops (what is typed stays). The cookie back, the console is back.
  await go(page, 'overview', 'Overview');
  const cookies = await context.cookies();
  await context.clearCookies();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: 15000 });
  await page.locator('input[name="username"]').fill('owner');
  await page.waitForTimeout(6000);
  assert.equal(await page.locator('input[name="username"]').inputValue(), 'owner', 'the login form is not redrawn');
  await context.addCookies(cookies);
  await page.reload();
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();

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
