// Plugins: built-in and installed, version, hash, declared hosts; the providers using them with
// each declared host's approval (by the configuration or here), and approving or withdrawing a
// host. A call may reach a host only if the plugin declares it and it is approved.

import { get, post } from './api.js';
import { button, fill, h, table, time, toast } from './dom.js';
import { renderPrices } from './prices.js';

/**
 * @typedef {import('../api-types').PluginsView} PluginsView
 * @typedef {import('../api-types').ProviderView} ProviderView
 * @typedef {import('../api-types').HostState} HostState
 */

/** @param {string[]} hosts */
const hostList = (hosts) => (hosts.length ? h('span', {}, hosts.map((x) => h('code', {}, x + ' '))) : '–');

/**
 * The state of one declared host, and the button that changes it.
 * @param {ProviderView} p
 * @param {HostState} s
 * @param {() => Promise<void>} reload
 */
function hostRow(p, s, reload) {
  const path = (/** @type {string} */ action) => `/admin/api/providers/${encodeURIComponent(p.id)}/hosts/${action}`;
  const state = s.by_config
    ? 'approved by the configuration'
    : s.by_console
      ? h('span', {}, `approved here by ${s.by_console.approved_by}, `, time(s.by_console.approved_at))
      : h('strong', {}, 'not approved: calls to it are refused');
  const action = s.by_console
    ? button('Revoke', async () => {
      await post(path('revoke'), { host: s.host });
      toast(`${p.id}: ${s.host} revoked.`);
      await reload();
    }, 'danger')
    : s.by_config
      ? null
      : button('Approve', async () => {
        if (!window.confirm(`Let provider ${p.id} (plugin ${p.plugin}) send requests, with its credential, to ${s.host}?`)) return;
        await post(path('approve'), { host: s.host });
        toast(`${p.id}: ${s.host} approved.`);
        await reload();
      });
  if (action) action.setAttribute('aria-label', `${action.textContent} ${s.host} for ${p.id}`);
  return [p.id, p.plugin, h('code', {}, s.host), state, action];
}

/** @param {HTMLElement} root */
export async function render(root) {
  const providers = h('div', {});
  const plugins = h('div', {});
  const load = async () => {
    /** @type {PluginsView} */
    const v = await get('/admin/api/plugins');
    fill(plugins, table('Loaded plugins', ['Plugin', 'Origin', 'Version', 'Contract', 'SHA-256', 'Declared hosts', 'Models'],
      v.plugins.map((p) => [h('span', { title: p.display_name }, p.id), p.builtin ? 'built-in' : 'installed', p.version, p.contract,
        h('code', { title: p.sha256 }, p.sha256.slice(0, 16) + '…'), hostList(p.hosts), String(p.models)]), ['Models']));
    fill(providers,
      table('Provider instances', ['Provider', 'Plugin', 'Credential', 'Sent via'],
        v.providers.map((p) => [p.id, p.plugin, p.credential, p.origin_override ?? 'direct'])),
      table('Hosts each provider\'s plugin declares, and whether its calls may reach them', ['Provider', 'Plugin', 'Host', 'Approval', ''],
        v.providers.flatMap((p) => p.hosts.map((s) => hostRow(p, s, load)))));
  };
  await load();
  root.append(plugins,
    h('h2', {}, 'Providers and their hosts'),
    providers,
    h('h2', {}, 'Approving a plugin\'s hosts'),
    h('p', {}, 'A provider\'s call may reach a host only if its plugin declares it and it is approved, here or in the configuration. ' +
      'A built-in plugin\'s declared hosts are approved by the configuration unless it lists approved_hosts; an installed plugin\'s are not. ' +
      'Approving here applies at once on this gateway and within 5 seconds on other replicas sharing the database; ' +
      'an approval made in the configuration can only be removed there:'),
    h('pre', {}, '[providers.myprovider]\nplugin = "myplugin"\napproved_hosts = ["api.example.com"]'),
    h('p', { class: 'hint' }, 'Install a plugin with `pairgate plugin install FILE --sha256 HEX`, add the lines it prints, and restart.'));
  await renderPrices(root);
}
