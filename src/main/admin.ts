// The admin HTTP listener (main thread): /metrics, /health, /ready, /config.
//
//   GET /metrics --> Registry.metrics() --> each metric's collect() reads the
//                    shared tables (Counters, ServerStats, HealthTable) now
//   GET /health  --> 200 "ok" while at least one worker is live, else 503
//   GET /ready   --> 200 once started, not draining and a worker is live, else 503;
//                    a JSON body: {"status":"ready","redundancy":"full"|"degraded"|"none",
//                    "backups":[...]}, degraded naming each backup down or under
//                    backup_coverage_warn (still 200: clients are served)
//   GET /config  --> 200 {"masters":[...],"backups":[...],"distribution":"jump"}:
//                    the server lists and distribution running now (after the
//                    last reload), names as configured; what `mcrelay plan` reads
//
// Securing it (issue 18; main/admin-secrets.ts reads the files):
//   a token (admin_token_file): every request but /health without
//     "Authorization: Bearer <token>" gets 401 and WWW-Authenticate: Bearer,
//     whatever its path; drain and undrain are then answered on any address
//   TLS (admin_tls): HTTPS, optionally asking for a client certificate
//   SIGHUP (reload()): the token and the certificate are read again; new
//     requests need the new token, new connections get the new certificate
//
// A scrape reads the SharedArrayBuffers the workers write; it asks no worker
// anything, so it costs the data path nothing and answers while a worker hangs.
// What a scrape reads and the metrics' names: main/metrics.ts.

import http from 'node:http';
import type { AddressInfo } from 'node:net';

import type { Registry } from 'prom-client';

import { isLoopbackHost, type AdminAddress, type AdminTlsSettings, type Config } from '../config/config.js';
import { log } from '../log.js';
import type { AdminSecrets } from './admin-secrets.js';
import { presentsUnverified, serverOptions, type TlsFiles } from '../config/tls.js';
import { STATE_NAMES } from '../shared/health.js';
import { F } from '../shared/server-figures.js';
import { buildRegistry, type AdminSources } from './metrics.js';

export type { AdminSources } from './metrics.js';

export interface Admin {
  readonly address: AddressInfo;
  /** After a reload that rebuilt the tables or the server list: read these from now on. */
  setSources(sources: AdminSources): void;
  /**
   * SIGHUP: reads the token file and the TLS files again (admin_tls itself
   * is fixed at start). A file that cannot be used keeps what was in use, with an error logged.
   */
  reload(config: Pick<Config, 'adminTokenFile' | 'adminTls'>): Promise<void>;
  close(): Promise<void>;
}

/** How long a client may take to send a request's headers (and the whole request). */
const HEADERS_TIMEOUT_MS = 10_000;
/** Scrapers and health checks are a handful; past this many open connections, new ones are closed at once. */
const MAX_CONNECTIONS = 64;

export interface AdminLimits {
  readonly headersTimeoutMs: number;
  readonly maxConnections: number;
}

/**
 * Starts the admin listener on config.admin (the caller skips it when that is
 * null, i.e. --admin off). Rejects when the address cannot be bound.
 */
export async function startAdmin(
  config: { readonly admin: AdminAddress | null; readonly adminTls?: AdminTlsSettings | null },
  sources: AdminSources,
  limits: AdminLimits = { headersTimeoutMs: HEADERS_TIMEOUT_MS, maxConnections: MAX_CONNECTIONS },
  secrets: AdminSecrets = { authorize: null, tls: null },
): Promise<Admin> {
  const at = config.admin;
  if (at === null) throw new Error('the admin listener is off (--admin off)');
  const tlsSettings = config.adminTls ?? null;
  if ((tlsSettings === null) !== (secrets.tls === null)) throw new Error('admin_tls and its files go together');
  let current = sources;
  let authorize = secrets.authorize;
  const registry = buildRegistry(() => current);

  const timeout = limits.headersTimeoutMs;
  // Write endpoints only where nobody but this host can reach them, or to whoever has the token.
  const loopbackOnly = isLoopbackHost(at.host);
  const options = {
    headersTimeout: timeout,
    requestTimeout: timeout,
    // Node checks these timeouts only this often (30 s by default): a client
    // trickling its headers would otherwise hold a connection four times as long.
    connectionsCheckingInterval: Math.max(1, Math.min(1000, timeout >> 2)),
  };
  const refusals = new Refusals();
  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (authorize !== null && pathOf(req) !== '/health' && !authorize(req.headers.authorization)) {
      refusals.add(req.socket.remoteAddress ?? '');
      res.setHeader('WWW-Authenticate', 'Bearer');
      send(req, res, 401, 'unauthorized\n');
      return;
    }
    if (req.url?.startsWith('/servers/') === true) void control(req, res, current, loopbackOnly, authorize !== null);
    else void respond(req, res, registry, current);
  };
  const server = tlsSettings === null ? http.createServer(options, handle) : await httpsServer(options, tlsSettings, secrets.tls!, timeout, handle);
  server.maxConnections = limits.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: at.host, port: at.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });

  return {
    address: server.address() as AddressInfo,
    setSources(next: AdminSources): void { current = next; },
    async reload(next): Promise<void> {
      if (next.adminTokenFile === null && tlsSettings === null) {
        authorize = null;
        return;
      }
      try {
        const { readAdminSecrets } = await import('./admin-secrets.js');
        // admin_tls is fixed at start (an HTTP listener cannot turn HTTPS): its files are read again.
        const fresh = readAdminSecrets({ adminTokenFile: next.adminTokenFile, adminTls: tlsSettings });
        if (fresh.tls !== null) (server as import('node:https').Server).setSecureContext(serverOptions({ ...fresh.tls, clientAuth: tlsSettings!.clientAuth, minVersion: tlsSettings!.minVersion }));
        authorize = fresh.authorize;
      } catch (err) {
        log.error('reload: the admin listener keeps its token and certificate', { error: (err as Error).message });
      }
    },
    close(): Promise<void> {
      return new Promise((resolve) => {
        server.close(() => resolve());
        // A scraper's keep-alive connection would otherwise hold close() open.
        server.closeAllConnections();
      });
    },
  };
}

/** How often, at most, requests refused for want of the token are logged (a scanner would fill the log). */
const REFUSALS_LOG_EVERY_MS = 60_000;

/** Requests refused for want of the token: the first logged at once, the rest counted and logged at most once a minute. */
class Refusals {
  private count = 0;
  private lastLogged = 0;
  private lastPeer = '';

  add(peer: string): void {
    this.count++;
    this.lastPeer = peer;
    const now = Date.now();
    if (now - this.lastLogged < REFUSALS_LOG_EVERY_MS) return;
    this.lastLogged = now;
    log.warn('admin listener: requests refused without the right token', { refused: this.count, lastFrom: this.lastPeer });
    this.count = 0;
  }
}

/**
 * The HTTPS server (node:https loaded only then). client_auth optional asks for
 * a certificate and takes a handshake without one; one that was sent must be
 * signed by ca, or the connection is closed before any request is read.
 */
async function httpsServer(
  options: http.ServerOptions, t: AdminTlsSettings, files: TlsFiles, timeout: number,
  handle: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<http.Server> {
  const https = await import('node:https');
  const server = https.createServer({
    ...options,
    ...serverOptions({ ...files, clientAuth: t.clientAuth, minVersion: t.minVersion }),
    // A client that stalls its handshake is dropped as one that stalls its headers.
    handshakeTimeout: timeout,
  }, handle);
  if (t.clientAuth === 'optional') {
    server.on('secureConnection', (socket: import('node:tls').TLSSocket) => {
      if (presentsUnverified(socket)) socket.destroy();
    });
  }
  return server as unknown as http.Server;
}


function pathOf(req: http.IncomingMessage): string {
  const q = req.url?.indexOf('?') ?? -1;
  return q < 0 ? (req.url ?? '/') : req.url!.slice(0, q);
}

async function respond(req: http.IncomingMessage, res: http.ServerResponse, registry: Registry, sources: AdminSources): Promise<void> {
  const path = pathOf(req);
  if (path !== '/metrics' && path !== '/health' && path !== '/ready' && path !== '/config') {
    send(req, res, 404, 'not found\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    send(req, res, 405, 'method not allowed\n');
    return;
  }
  if (path === '/health') {
    if (sources.liveWorkers() > 0) send(req, res, 200, 'ok\n');
    else send(req, res, 503, 'no live worker\n');
    return;
  }
  if (path === '/ready') {
    if (sources.draining()) send(req, res, 503, '{"status":"draining"}\n', JSON_TYPE);
    else if (sources.liveWorkers() === 0) send(req, res, 503, '{"status":"no live worker"}\n', JSON_TYPE);
    else send(req, res, 200, `${JSON.stringify(readiness(sources))}\n`, JSON_TYPE);
    return;
  }
  if (path === '/config') {
    const names = (role: string): string[] => sources.servers.filter((s) => s.role === role).map((s) => s.name);
    send(req, res, 200, `${JSON.stringify({ masters: names('master'), backups: names('backup'), distribution: sources.distribution })}\n`, JSON_TYPE);
    return;
  }
  try {
    const body = await registry.metrics();
    send(req, res, 200, body, registry.contentType);
  } catch (err) {
    send(req, res, 500, `metrics failed: ${(err as Error).message}\n`);
  }
}

/**
 * Planned maintenance: POST /servers/<host:port>/drain or /undrain, GET
 * /servers/<host:port> for its state; JSON answers.
 */
async function control(req: http.IncomingMessage, res: http.ServerResponse, sources: AdminSources, loopbackOnly: boolean, tokenChecked: boolean): Promise<void> {
  const json = (status: number, body: unknown): void => send(req, res, status, `${JSON.stringify(body)}\n`, 'application/json');
  const m = /^\/servers\/([^/?]+)(?:\/(drain|undrain))?$/.exec(req.url!.split('?')[0]!);
  if (m === null) { json(404, { error: 'not found' }); return; }
  const name = decodeURIComponent(m[1]!);
  const action = m[2];
  const drains = sources.drains();
  if (drains === null) { json(503, { error: 'not started' }); return; }
  if (action === undefined) {
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.setHeader('Allow', 'GET, HEAD'); json(405, { error: 'method not allowed' }); return; }
    const r = drains.status(name);
    json(r.status, r.body);
    return;
  }
  if (req.method !== 'POST') { res.setHeader('Allow', 'POST'); json(405, { error: 'method not allowed' }); return; }
  if (!tokenChecked && (!loopbackOnly || !isLoopbackHost(req.socket.remoteAddress ?? ''))) {
    json(403, { error: 'drain and undrain are answered only on a loopback admin address' });
    return;
  }
  const r = action === 'drain' ? await drains.drain(name) : await drains.undrain(name);
  json(r.status, r.body);
}

const JSON_TYPE = 'application/json';

/** /ready's body: whether every backup is up and holds its masters' keys. */
function readiness(s: AdminSources): { status: string; redundancy: string; backups: Array<{ server: string; state: string; coverage: number | null }> } {
  const backups: Array<{ server: string; state: string; coverage: number | null }> = [];
  let degraded = false;
  const n = Math.min(s.servers.length, s.health.size, s.figures.servers);
  for (let i = 0; i < n; i++) {
    if (s.servers[i]!.role !== 'backup') continue;
    const state = STATE_NAMES[s.health.state(i)] ?? String(s.health.state(i));
    const c = s.figures.get(i, F.COVERAGE);
    const coverage = Number.isNaN(c) ? null : Number(c.toFixed(3));
    if (state !== 'up' || (coverage !== null && c < s.backupCoverageWarn)) degraded = true;
    backups.push({ server: s.servers[i]!.name, state, coverage });
  }
  // Without a backup pool there is no redundancy to lose.
  return { status: 'ready', redundancy: backups.length === 0 ? 'none' : degraded ? 'degraded' : 'full', backups };
}

function send(req: http.IncomingMessage, res: http.ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Cache-Control', 'no-store');
  res.end(req.method === 'HEAD' ? undefined : body);
}
