// multilang-sandbox: makes Node 20's HTTP clients use the egress proxy.
// Node 20 ignores the proxy variables (NODE_USE_ENV_PROXY exists only from
// Node 22.21 / 24), so the javascript and typescript images load this file
// in every node process: NODE_OPTIONS=--require=/opt/sandbox/node-proxy.js.
// Without http_proxy/https_proxy (or HTTP_PROXY/HTTPS_PROXY) it loads
// nothing and changes nothing. It only uses Debian packages the images
// install (named in their Dockerfiles); when one is missing it says so in
// one line on stderr and the program runs on unchanged.
//   fetch: undici's global dispatcher becomes an EnvHttpProxyAgent from
//     Debian's node-undici: Debian's Node runs that same package's
//     undici-fetch.js as its fetch, so the versions match.
//   http.get/https.get without an agent of their own (also got, node-fetch):
//     http(s).globalAgent go through Debian's http-proxy-agent and
//     https-proxy-agent, except for NO_PROXY hosts, which go direct.
// Variables are read as undici reads them: lower case first, then upper
// case; https falls back to the http proxy. Clients that bring their own
// agents (npm; axios) keep their own proxy handling.
'use strict';

const SHARE = '/usr/share/nodejs/';
// The key undici's setGlobalDispatcher uses; Node's fetch reads it too.
const DISPATCHER = Symbol.for('undici.globalDispatcher.1');

function envValue(name) {
  return process.env[name] ?? process.env[name.toUpperCase()] ?? '';
}

// NO_PROXY by undici's rules, so http.get and fetch agree: entries split on
// commas and spaces, `*` alone bypasses everything, `.suffix` and `*.suffix`
// match by suffix, any other name only exactly, `name:port` only that port;
// IPv6 addresses are compared in brackets (`[::1]`).
function bypass(host, port) {
  const value = envValue('no_proxy');
  if (value === '*') return true;
  host = String(host || '').toLowerCase();
  if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`;
  for (const entry of value.split(/[,\s]/)) {
    if (!entry) continue;
    const parsed = entry.match(/^(.+):(\d+)$/);
    const name = (parsed ? parsed[1] : entry).toLowerCase();
    if (parsed && Number(parsed[2]) !== Number(port)) continue;
    if (/^[.*]/.test(name) ? host.endsWith(name.replace(/^\*/, '')) : host === name) return true;
  }
  return false;
}

// fetch. The global dispatcher is set now to a stand-in that makes the real
// agent on the first request, so programs that never fetch load nothing
// (the package takes 50-100 ms to load). Making it later also avoids a
// require cycle when user code loads undici itself: its index.js asks for
// the global dispatcher while it is still loading. The whole package is
// needed, not just the agent's file: index.js adds the connect API that
// ProxyAgent uses (Node's own fetch-only bundle lacks it too).
function proxyFetch(httpProxy, httpsProxy) {
  const path = require.resolve(SHARE + 'undici'); // throws when it is missing
  let agent = null;
  const real = () => {
    if (agent) return agent;
    const undici = require(path);
    const emit = process.emitWarning; // silence "EnvHttpProxyAgent is experimental"
    process.emitWarning = (warning, ...rest) => {
      const code = rest[0] && typeof rest[0] === 'object' ? rest[0].code : rest[1];
      if (code !== 'UNDICI-EHPA') emit.call(process, warning, ...rest);
    };
    try {
      agent = new undici.EnvHttpProxyAgent({ httpProxy, httpsProxy });
    } finally {
      process.emitWarning = emit;
    }
    return agent;
  };
  const standIn = new Proxy({}, {
    get(_, key) {
      const value = real()[key];
      return typeof value === 'function' && key !== 'constructor' ? value.bind(agent) : value;
    },
    has: (_, key) => key in real(),
    getPrototypeOf: () => Object.getPrototypeOf(real()),
  });
  // Defined as undici's setGlobalDispatcher defines it (user code may still
  // set a dispatcher of its own).
  Object.defineProperty(globalThis, DISPATCHER, { value: standIn, writable: true, enumerable: false, configurable: false });
}

// http.get/https.get. agent-base hands each request to the agent connect()
// returns: the proxy's, or the original direct one for NO_PROXY hosts and
// for requests addressed to the proxy itself (clients that proxy by
// themselves through the global agent, axios for http://, must not be
// proxied twice).
function proxyCoreAgents(httpProxy, httpsProxy) {
  const http = require('http');
  const https = require('https');
  const { Agent } = require(SHARE + 'agent-base');
  const { HttpProxyAgent } = require(SHARE + 'http-proxy-agent');
  const { HttpsProxyAgent } = require(SHARE + 'https-proxy-agent');
  class EnvProxyAgent extends Agent {
    constructor(secure, direct, proxy) {
      super({ keepAlive: true });
      this.defaultPort = secure ? 443 : 80;
      this.protocol = secure ? 'https:' : 'http:';
      this.direct = direct;
      const Proxied = secure ? HttpsProxyAgent : HttpProxyAgent;
      this.proxied = new Proxied(proxy, { keepAlive: true });
      const url = new URL(proxy);
      this.proxyHost = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
      this.proxyPort = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
    }
    connect(request, options) {
      const host = String(options.host || '').replace(/^\[|\]$/g, '').toLowerCase();
      const port = Number(options.port) || this.defaultPort;
      const toProxy = host === this.proxyHost && port === this.proxyPort;
      return toProxy || bypass(host, port) ? this.direct : this.proxied;
    }
  }
  const direct = { http: http.globalAgent, https: https.globalAgent };
  if (httpProxy) http.globalAgent = new EnvProxyAgent(false, direct.http, httpProxy);
  if (httpsProxy) https.globalAgent = new EnvProxyAgent(true, direct.https, httpsProxy);
}

const httpProxy = envValue('http_proxy');
const httpsProxy = envValue('https_proxy') || httpProxy;
if (httpProxy || httpsProxy) {
  for (const [clients, apply] of [['fetch', proxyFetch], ['http.get/https.get', proxyCoreAgents]]) {
    try {
      apply(httpProxy, httpsProxy);
    } catch (error) {
      const reason = String(error && error.message).split('\n')[0];
      process.stderr.write(`multilang-sandbox: ${clients} will not use the proxy: ${reason}\n`);
    }
  }
}
