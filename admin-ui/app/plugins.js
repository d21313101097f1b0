// Plugins: built-in and installed, version, hash, declared hosts; the providers using them with
// the hosts the owner approved. Hosts are approved in the configuration (shown here to copy).

import { get } from './api.js';
import { h, table } from './dom.js';

/** @typedef {import('../api-types').PluginsView} PluginsView */

/** @param {string[]} hosts */
const hostList = (hosts) => (hosts.length ? h('span', {}, hosts.map((x) => h('code', {}, x + ' '))) : '–');

/** @param {HTMLElement} root */
export async function render(root) {
  /** @type {PluginsView} */
  const v = await get('/admin/api/plugins');
  root.append(
    table('Loaded plugins', ['Plugin', 'Origin', 'Version', 'Contract', 'SHA-256', 'Declared hosts', 'Models'],
      v.plugins.map((p) => [h('span', { title: p.display_name }, p.id), p.builtin ? 'built-in' : 'installed', p.version, p.contract,
        h('code', { title: p.sha256 }, p.sha256.slice(0, 16) + '…'), hostList(p.hosts), String(p.models)]), ['Models']),
    h('h2', {}, 'Providers'),
    table('Provider instances and the hosts their calls may reach', ['Provider', 'Plugin', 'Credential', 'Declared hosts', 'Approved hosts', 'Sent via'],
      v.providers.map((p) => [p.id, p.plugin, p.credential, hostList(p.declared_hosts), hostList(p.approved_hosts), p.origin_override ?? 'direct'])),
    h('h2', {}, 'Approving a plugin\'s hosts'),
    h('p', {}, 'A provider using an installed plugin starts only once its hosts are approved in the configuration, for example:'),
    h('pre', {}, '[providers.myprovider]\nplugin = "myplugin"\napproved_hosts = ["api.example.com"]'),
    h('p', { class: 'hint' }, 'Install a plugin with `pairgate plugin install FILE --sha256 HEX`, add the lines it prints, and restart.'));
}
