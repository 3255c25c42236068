// The main thread: builds the shared tables, starts the workers, listens, hands
// every accepted client to a worker, probes servers that are down, and applies
// reloads.
//
//   listen socket --accepted handle (no net.Socket)--> Supervisor.handOff --> worker thread
//   (--io portable: no listener here; every worker listens on the same ports itself)
//   Prober: DOWN servers --version--> Recovery --> UP        (shared HealthTable)
//   reload: new tables for the new server list --> every worker switches to them

import net from 'node:net';
import util from 'node:util';
import { backupNames, masterNames, serverNames, type Config, type IoMode } from '../config/config.js';
import { C, Counters } from '../shared/counters.js';
import { DOWN, HealthTable, RECOVERING, UP, WARMING } from '../shared/health.js';
import { ServerStats } from '../shared/server-stats.js';
import { ServerFigures } from '../shared/server-figures.js';
import * as wire from '../protocol/wire.js';
import { log } from '../log.js';
import { OutageJournal } from './outage-journal.js';
import { Peers } from './peers.js';
import { Prober } from './prober.js';
import { Coverage } from './coverage.js';
import { Recovery } from './recovery.js';
import { Restorer } from './restore.js';
import { agreeSwitch, Placements, placementOf, samePlacement, takeMarks, type Marks } from './placement.js';
import { Drains } from './drain.js';
import type { AdminSources } from './admin.js';
import { Supervisor } from './supervisor.js';
import { takeAccepts, type AcceptedHandle } from '../io/handoff.js';
import { probeInternals } from '../io/internals.js';
import { claimPort, type ListenAt } from '../io/portable.js';
import { VERSION } from '../version.js';
import { UsageError } from '../errors.js';
import { dropPrivileges, resolveIdentity, willDrop, type Identity } from './privileges.js';
import { listenUnix, removeUnix, type BoundSocket } from './unix-socket.js';
import { setBackendAuth } from '../backend/auth.js';

export interface Running {
  readonly supervisor: Supervisor;
  readonly health: HealthTable;
  readonly counters: Counters;
  readonly serverStats: ServerStats;
  /** the addresses actually bound (port 0 resolved) */
  readonly addresses: ReadonlyArray<net.AddressInfo | string>;
  /**
   * Applies a new configuration to new requests, keeping client connections.
   * What cannot change while running (listen addresses, workers, user, group,
   * admin) keeps its old value, with a warning.
   */
  reload(next: Config): void;
  stop(): Promise<void>;
}

/** How often keys journaled for masters are published for the other entry proxies. */
const PUBLISH_INTERVAL_MS = 20;

interface Switching { cancelled: boolean; timer: NodeJS.Timeout | null }

/** Settings fixed at start: a reload keeps them. */
const FIXED = ['listen', 'extraListen', 'workers', 'user', 'group', 'unixSocketMode', 'admin', 'io', 'adminTls', 'adminInsecure'] as const;

/**
 * The I/O path to run: --io portable as asked; the fast path when this Node has
 * its internals, else portable with one warning line. Portable cannot do what
 * needs the main thread to accept: that is refused here, naming the option.
 */
function chooseIo(config: Config, identity: Identity): IoMode {
  let why = '--io portable';
  if (config.io === 'fast') {
    const probe = probeInternals();
    if (probe.ok) return 'fast';
    why = 'the fast I/O path is unavailable, and --io portable';
    log.warn('the fast I/O path needs Node internals this Node lacks or refuses; running with --io portable', { missing: probe.missing });
  }
  // A unix socket has one listener, which only the main thread's handoff shares among workers.
  if (config.listen.path !== null || config.extraListen.some((l) => l.path !== null)) {
    throw new UsageError(`${why} cannot listen on a unix socket (-f / a path in listen:): listen on TCP, or use --io fast on a Node that allows it`);
  }
  // The kernel lets only sockets of one uid share a port: a worker replaced after
  // the switch could not listen beside those bound before it.
  if (willDrop(identity)) {
    throw new UsageError(`${why} cannot switch user (-u / -g, user: / group:): run mcrelay as its user, or use --io fast`);
  }
  return 'portable';
}

/** --io portable: the TCP addresses every worker listens on, each free now, port 0 resolved to one port for all. */
async function sharedListeners(config: Config): Promise<ListenAt[]> {
  const out: ListenAt[] = [];
  for (const l of tcpListeners(config)) out.push({ host: l.host, port: await claimPort(l.host, l.port), tls: l.tls });
  return out;
}

/** Every TCP address to listen on, and whether it speaks TLS (config/tls.ts: which listeners do). */
function tcpListeners(config: Config): Array<{ host: string; port: number; tls: boolean }> {
  const tls = config.tls;
  const plainAreTls = tls !== null && tls.listen.length === 0;
  const out = [config.listen, ...config.extraListen]
    .filter((l) => l.path === null || l.port !== 0)
    .map((l) => ({ host: l.host, port: l.port, tls: plainAreTls }));
  for (const l of tls?.listen ?? []) out.push({ host: l.host, port: l.port, tls: true });
  return out;
}

export async function start(config: Config): Promise<Running> {
  // Before anything binds: an unknown -u or -g ends the start here (UsageError).
  const identity = resolveIdentity(config.user, config.group);
  // The admin listener's token and TLS files: one that cannot be used ends the start here too (UsageError).
  const adminSecrets = config.admin !== null && (config.adminTokenFile !== null || config.adminTls !== null)
    ? (await import('./admin-secrets.js')).readAdminSecrets(config)
    : undefined;
  setBackendAuth(config);
  const startedAt = Date.now();
  const servers = [...config.masters, ...config.backups];
  let health = new HealthTable(servers.length);
  const placements = new Placements(config);
  const counters = new Counters(config.workers + 1, true);
  const mainRow = counters.row(0);
  let serverStats = new ServerStats(config.workers, servers.length);
  let figures = new ServerFigures(servers.length);
  const io = chooseIo(config, identity);
  const own = io === 'portable' ? await sharedListeners(config) : null;
  const supervisor = new Supervisor(config, health.buffer, counters, serverStats.buffer, startedAt, figures.buffer, own);
  try {
    await supervisor.start();
  } catch (err) {
    await supervisor.stop();
    throw err;
  }

  const onConnection = (handle: AcceptedHandle, tls: boolean): void => {
    if (supervisor.connections() >= config.maxConnections) {
      mainRow[C.REJECTED_CONNECTIONS]!++;
      // A TLS client could not read the plain answer: it sees the close.
      if (tls) { handle.close(); return; }
      // memcached's answer when it is out of connections, then close.
      const socket = new net.Socket({ handle, readable: true, writable: true } as net.SocketConstructorOpts);
      socket.on('error', () => socket.destroy());
      socket.end(wire.ERROR_TOO_MANY_CONNECTIONS);
      return;
    }
    if (!supervisor.handOff(handle, tls)) {
      handle.close();
      return;
    }
    mainRow[C.TOTAL_CONNECTIONS]!++;
  };
  const onAcceptError = (status: number): void => {
    // EMFILE and the like: the connection stays in the backlog, libuv retries.
    log.error('accept failed', { error: util.getSystemErrorName(status) });
  };

  const listeners: net.Server[] = [];
  const sockets: BoundSocket[] = [];
  // The socket belongs to the user mcrelay becomes, so that it can remove it at exit.
  const owner = willDrop(identity) ? { uid: identity.uid ?? process.getuid!(), gid: identity.gid ?? process.getgid!() } : null;
  const accepting = (server: net.Server, tls: boolean): void => {
    server.on('error', (err) => log.error('listener error', { error: err.message }));
    // takeAccepts has the accepted handles; no net.Socket is made for them.
    takeAccepts(server, (handle) => onConnection(handle, tls), onAcceptError);
    listeners.push(server);
  };
  const listenTcp = (host: string, port: number, tls: boolean): Promise<void> =>
    new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen({ host, port, backlog: 1024 }, () => {
        server.off('error', reject);
        accepting(server, tls);
        resolve();
      });
    });
  try {
    // Port 0 with no unix socket (in-process use, tests) binds an ephemeral port.
    for (const l of own === null ? tcpListeners(config) : []) await listenTcp(l.host, l.port, l.tls);
    for (const l of own === null ? [config.listen, ...config.extraListen] : []) {
      if (l.path !== null) {
        const server = net.createServer();
        sockets.push(await listenUnix(server, l.path, config.unixSocketMode, 1024, owner));
        accepting(server, false);
      }
    }
  } catch (err) {
    // An in-process caller goes on living: leave nothing of this start behind.
    await Promise.all(listeners.map((s) => new Promise((r) => s.close(r))));
    sockets.forEach(removeUnix);
    await supervisor.stop();
    throw err;
  }

  let draining = false;
  /** planned maintenance (set by watch(), before which the admin listener answers 503) */
  let drains: Drains | null = null;
  const adminSources = (): AdminSources => ({
    counters,
    serverStats,
    health,
    figures,
    backupCoverageWarn: current.backupCoverageWarn,
    workers: config.workers,
    servers: [
      ...current.masters.map((s) => ({ name: s.name, role: 'master' as const })),
      ...current.backups.map((s) => ({ name: s.name, role: 'backup' as const })),
    ],
    distribution: current.distribution,
    liveWorkers: () => supervisor.liveWorkers(),
    draining: () => draining,
    drains: () => drains,
  });
  let current = config;
  // The admin stack (node:http and prom-client, about 20 MB of RSS) is loaded only when it listens.
  const admin = config.admin === null ? null : await import('./admin.js').then(({ startAdmin }) => startAdmin(config, adminSources(), undefined, adminSecrets)).catch((err: Error) => {
    // Several mcrelays on one host (the entry proxies and the backup of DESIGN.md)
    // would all want the default port: the proxy runs on, and says so.
    log.error('admin listener not started', { admin: `${config.admin!.host}:${config.admin!.port}`, error: err.message });
    return null;
  });

  dropPrivileges(identity);

  let recovery: Recovery | null = null;
  let prober: Prober | null = null;
  let peers: Peers | null = null;
  let journal: OutageJournal | null = null;
  let restorer: Restorer | null = null;
  let drainTimer: NodeJS.Timeout | null = null;
  let coverage: Coverage | null = null;
  let publisher: NodeJS.Timeout | null = null;
  /** a reload that moves keys, waiting for its switch time */
  let switching: Switching | null = null;
  /** Starts recovery, probing and the outage news for `cfg`, taking over what the previous ones knew (a reload). */
  const watch = (cfg: Config): void => {
    const old = { recovery, prober, peers, journal, restorer, coverage };
    old.prober?.stop();
    old.recovery?.stop();
    old.coverage?.stop();
    const cov = coverage = new Coverage(cfg, health, figures);
    if (old.coverage !== null) cov.adopt(old.coverage);
    supervisor.onSampled = (entries) => cov.add(entries);
    cov.start();
    const j = journal = cfg.backups.length > 0 ? new OutageJournal(cfg.masters, cfg.backups, cfg.timeoutMs) : null;
    const p = peers = new Peers(cfg.masters, cfg.backups, health, cfg.timeoutMs, j);
    j?.attach(p);
    if (old.journal !== null) j?.adopt(old.journal, (i) => health.state(i) !== UP);
    if (old.peers !== null) p.adopt(old.peers);
    const cut = old.restorer?.stop() ?? [];
    const rs = restorer = cfg.backups.length > 0 ? new Restorer(cfg, health, serverStats) : null;
    rs?.resume(cut);
    const r = recovery = new Recovery(cfg, health, serverStats, supervisor, j, (s) => p.recovered(s), rs, placements);
    if (old.recovery !== null) r.adopt(old.recovery);
    supervisor.onWorkerDied = () => r.workerDied();
    supervisor.onJournaled = (master, keys, overflowed) => j?.add(master, keys, overflowed);
    r.start();
    const pr = prober = new Prober([...cfg.masters, ...cfg.backups], health, cfg.retryIntervalMs, cfg.timeoutMs, cfg.failureLimit, (s, restarted) => r.begin(s, restarted), p, figures);
    if (old.prober !== null) pr.adopt(old.prober);
    pr.start();
    drains?.stop();
    if (drainTimer !== null) clearInterval(drainTimer);
    const d = drains = new Drains(cfg.masters, cfg.backups, health, cfg.retryIntervalMs, cfg.timeoutMs);
    void d.tick();
    drainTimer = setInterval(() => void d.tick(), cfg.retryIntervalMs);
    drainTimer.unref();
    if (publisher !== null) clearInterval(publisher);
    publisher = null;
    if (j !== null) {
      void j.readLostBaseline();
      // Published well within the retry interval a recovery waits before it reads them.
      publisher = setInterval(() => { if (!j.idle) void j.publish(); }, PUBLISH_INTERVAL_MS);
      publisher.unref();
    }
  };
  watch(config);

  // A unix listener was bound under a temporary name (unix-socket.ts): report its path.
  let unixSeen = 0;
  const addresses = own !== null
    ? own.map((l): net.AddressInfo => ({ address: l.host, family: net.isIPv6(l.host) ? 'IPv6' : 'IPv4', port: l.port }))
    : listeners.map((s) => {
      const a = s.address()!;
      return typeof a === 'string' ? sockets[unixSeen++]!.path : a;
    });
  const tlsPorts = new Set(tcpListeners(config).filter((l) => l.tls).map((l) => l.port));
  const speaksTls = (a: net.AddressInfo | string): boolean => typeof a !== 'string' && (tlsPorts.has(a.port) || (tlsPorts.has(0) && config.tls!.listen.length === 0));
  log.info('mcrelay started', {
    version: VERSION,
    listen: addresses.map((a) => (speaksTls(a) ? { ...(a as net.AddressInfo), tls: true } : a)),
    masters: masterNames(config),
    backups: backupNames(config),
    distribution: config.distribution,
    workers: config.workers,
    io,
    admin: admin === null ? 'off' : `${admin.address.address}:${admin.address.port}`,
  });

  const cancelSwitch = (): void => {
    if (switching === null) return;
    switching.cancelled = true;
    if (switching.timer !== null) clearTimeout(switching.timer);
    switching = null;
  };

  /** Puts a reloaded configuration in place (at once, or at a placement change's switch time). */
  const apply = (merged: Config, marks: Marks | null): void => {
    // New tables for the new server list; a server on both lists keeps its
    // state, but one RECOVERING goes back to DOWN: its recovery in flight runs
    // on the old numbers and stops, and the new prober starts it again.
    const oldNames = serverNames(current);
    const names = serverNames(merged);
    const masterCount = merged.masters.length;
    const poolKey = (i: number): string => `${i < masterCount ? 'masters' : 'backups'}:${names[i]}`;
    // Keys moved (main/placement.ts): a server that gained some serves no reads until its stale copies are
    // swept, its keys read from the backup meanwhile. With no backup pool nothing could serve them instead:
    // such a master keeps serving and is swept in the background (docs/decisions/placement.md).
    const placement = placementOf(merged);
    const moved = marks === null || samePlacement(placements.placement, placement) ? null : placements.change(placement, marks);
    const held = (i: number): boolean => moved?.gain.has(poolKey(i)) === true && (i >= masterCount || merged.backups.length > 0);
    const nextHealth = new HealthTable(names.length);
    for (let i = 0; i < names.length; i++) {
      const j = oldNames.indexOf(names[i]!);
      const gains = held(i);
      if (j < 0) {
        if (gains) nextHealth.setState(i, RECOVERING);
        continue;
      }
      const state = health.state(j);
      nextHealth.setState(i, state === RECOVERING ? DOWN : gains && (state === UP || state === WARMING) ? RECOVERING : state);
      nextHealth.setAnswersMeta(i, health.answersMeta(j));
      nextHealth.setVersion(i, health.version(j));
    }
    const nextStats = new ServerStats(merged.workers, names.length);
    health = nextHealth;
    serverStats = nextStats;
    // Empty until the new prober's first poll, a moment away.
    figures = new ServerFigures(names.length);
    current = merged;
    setBackendAuth(merged);
    supervisor.reload(merged, health.buffer, serverStats.buffer, figures.buffer);
    watch(merged);
    if (moved !== null) {
      for (let i = 0; i < names.length; i++) {
        if (held(i)) void recovery!.resettle(i);
        else if (moved.gain.has(poolKey(i)) || moved.sweep.has(poolKey(i))) void recovery!.tidy(i);
      }
    }
    admin?.setSources(adminSources());
    log.info('configuration reloaded', { masters: masterNames(merged), backups: backupNames(merged), distribution: merged.distribution });
  };

  return {
    supervisor,
    get health() { return health; },
    counters,
    get serverStats() { return serverStats; },
    addresses,
    reload(next: Config): void {
      // A later reload replaces one still waiting for its switch time.
      cancelSwitch();
      const kept: string[] = [];
      const merged = { ...next } as { -readonly [K in keyof Config]: Config[K] };
      for (const key of FIXED) {
        if (JSON.stringify(next[key]) !== JSON.stringify(current[key])) kept.push(key);
        (merged as Record<string, unknown>)[key] = current[key];
      }
      // The certificate and the TLS settings reload; which listeners speak TLS does not.
      if ((next.tls === null) !== (current.tls === null) || JSON.stringify(next.tls?.listen) !== JSON.stringify(current.tls?.listen)) {
        kept.push('tls');
        merged.tls = current.tls;
      }
      if (kept.length > 0) log.warn('reload: these settings only change on restart; kept', { settings: kept });
      // The token and the certificate are read again whatever else the reload does.
      void admin?.reload(merged);
      // Until the switch, the servers of both configurations are read and written
      // (placement.ts), the workers on the running one: its credentials win for a
      // server both list, as the workers' do; apply() takes the new ones.
      setBackendAuth(merged, current);
      const placement = placementOf(merged);
      if (samePlacement(placements.placement, placement)) {
        apply(merged, null);
        return;
      }
      // Keys move: every entry proxy switches at the time the first one to reload this change set (main/placement.ts).
      const ticket: Switching = { cancelled: false, timer: null };
      switching = ticket;
      void (async () => {
        let at = Date.now();
        if (merged.switchDelaySeconds > 0) {
          const agreed = await agreeSwitch(current, placement, merged.switchDelaySeconds * 1000);
          if (ticket.cancelled) return;
          at = agreed.at;
          const wait = at - Date.now();
          const switchAt = new Date(at).toISOString();
          if (agreed.where === null) log.warn('placement change: no server answered to agree on a switch time; switching now', {});
          else if (wait >= 0) log.info('placement change scheduled', { switchAt, inSeconds: Math.round(wait / 100) / 10, agreedOn: agreed.where, first: agreed.first });
          else log.warn('placement change: reloaded after the agreed switch time; switching now', { switchAt, lateSeconds: Math.round(-wait / 100) / 10, agreedOn: agreed.where });
        }
        // The sweeps' cas marks, taken before this proxy places any key by the new placement.
        const marks = await takeMarks(merged);
        if (ticket.cancelled) return;
        ticket.timer = setTimeout(() => {
          if (ticket.cancelled) return;
          switching = null;
          apply(merged, marks);
        }, Math.max(0, at - Date.now()));
      })();
    },
    async stop(): Promise<void> {
      // Stop accepting, let every request already read be answered (up to
      // drainSeconds), then close what is left.
      draining = true;
      cancelSwitch();
      prober?.stop();
      coverage?.stop();
      recovery?.stop();
      restorer?.stop();
      drains?.stop();
      if (drainTimer !== null) clearInterval(drainTimer);
      if (publisher !== null) clearInterval(publisher);
      await Promise.all(listeners.map((s) => new Promise((r) => s.close(r))));
      sockets.forEach(removeUnix);
      await supervisor.drain(current.drainSeconds * 1000);
      await supervisor.stop();
      await admin?.close();
    },
  };
}
