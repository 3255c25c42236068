// Worker thread entry: receives client sockets from the main thread (or, with
// --io portable, accepts them on listeners of its own) and runs the whole data
// path for them in this thread's event loop.
//
//   fast:     main thread --handoff pipe (io/handoff.ts)--> libuv handle --> ClientConnection
//   portable: this worker's reusePort listener (io/portable.ts) --> net.Socket --> ClientConnection
//   main thread <--ToWorker / FromWorker messages--> this worker

import type net from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../config/config.js';
import { HandoffReceiver } from '../io/handoff.js';
import { useIo } from '../io/open-stream.js';
import { listenShared, type ListenAt } from '../io/portable.js';
import * as wire from '../protocol/wire.js';
import { RequestParser } from '../protocol/request-parser.js';
import { C, Counters } from '../shared/counters.js';
import { HealthTable } from '../shared/health.js';
import { ServerStats } from '../shared/server-stats.js';
import { ServerFigures } from '../shared/server-figures.js';
import { log, setLogLevel } from '../log.js';
import { ClientConnection } from './client.js';
import { Dispatcher } from './dispatch.js';
import { FlushScheduler } from './flush-scheduler.js';
import { Pools } from './request.js';
import { LocalCommands } from './local.js';
import { Sequencer } from './sequencer.js';
import { TlsClients } from './tls-clients.js';
import { StripeTable } from '../shared/stripes.js';
import { PendingBytes, pendingShare } from './pending-bytes.js';
import type { Sampled } from './write-sampler.js';
import { PasswordGate } from './auth.js';
import { setBackendAuth } from '../backend/auth.js';

export interface WorkerInit {
  id: number;
  config: Config;
  health: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  serverStats: SharedArrayBuffer;
  /** the write stripes (shared/stripes.ts); this worker holds them as owner id + 1 */
  stripes: SharedArrayBuffer;
  /** ServerFigures (shared/server-figures.ts) */
  figures: SharedArrayBuffer;
  /** this worker's row in the counters */
  row: number;
  startedAt: number;
  /** where this worker's clients come from */
  clients: HandedClients | OwnListeners;
}

/** --io fast: the main thread accepts and sends each client over the handoff pipe. */
export interface HandedClients {
  io: 'fast';
  handoffPath: string;
  /** sent first on the handoff pipe: proves to the main thread that this is its worker */
  handoffToken: string;
}

/** --io portable: the worker listens itself, on ports every worker shares (reusePort). */
export interface OwnListeners {
  io: 'portable';
  listen: ListenAt[];
}

/** The main thread's messages to a worker. */
export type ToWorker =
  | { type: 'invalidate'; server: number; flush: boolean; keys: string[] }
  | { type: 'reload'; config: Config; health: SharedArrayBuffer; serverStats: SharedArrayBuffer; figures: SharedArrayBuffer }
  /** stop taking clients; close each once its replies are written; answer `drained` */
  | { type: 'drain' }
  | { type: 'stop' };

/** A worker's messages to the main thread. */
export type FromWorker =
  | { type: 'invalidated'; server: number; ok: boolean; deleted: number }
  /** keys journaled for masters, by name (a reload may renumber the servers) */
  | { type: 'journaled'; entries: Array<{ master: string; keys: string[]; overflowed: boolean }> }
  | { type: 'sampled'; entries: Sampled[] }
  /** portable: the worker's listeners are open; or why they could not be */
  | { type: 'listening' }
  | { type: 'listen-failed'; error: string }
  | { type: 'drained' };

const tell = (m: FromWorker): void => parentPort!.postMessage(m);

const init = workerData as WorkerInit;
setLogLevel(init.config.verbose);
useIo(init.clients.io);

setBackendAuth(init.config);

function passwordGate(config: Config): PasswordGate | null {
  return config.clientUsers === null ? null : new PasswordGate(config.clientUsers);
}

const counters = new Counters(init.counters, true);
const row = counters.row(init.row);
const pools = new Pools();
/** one flush per socket per turn, for every client and backend connection of the worker (across reloads) */
const scheduler = new FlushScheduler();
const sequencer = new Sequencer(new StripeTable(init.stripes), init.id + 1);
const onInvalidated = (server: number, ok: boolean, deleted: number): void => tell({ type: 'invalidated', server, ok, deleted });

/** How long journaled keys of masters gather before they go to the main thread for publishing. */
const SHARE_DELAY_MS = 10;
let shareTimer: NodeJS.Timeout | null = null;
function shareJournal(): void {
  shareTimer = null;
  const d = ctx.dispatcher;
  const taken = d.journal.takeShared();
  // By name: a reload may renumber the servers before the main thread reads this.
  const entries = taken.map((t) => ({ master: d.config.masters[t.server]!.name, keys: t.keys, overflowed: t.overflowed }));
  if (entries.length > 0) tell({ type: 'journaled', entries });
}
const onJournalShared = (): void => { shareTimer ??= setTimeout(shareJournal, SHARE_DELAY_MS); };

/** Every retry interval: the keys sampled from replicated writes go to the main thread's coverage check. */
function shareSamples(): void {
  const entries = ctx.dispatcher.sampler.drain();
  if (entries.length > 0) tell({ type: 'sampled', entries });
  setTimeout(shareSamples, ctx.dispatcher.config.retryIntervalMs).unref();
}

function dispatcherFor(config: Config, health: SharedArrayBuffer, stats: ServerStats): Dispatcher {
  return new Dispatcher({
    pools, config, health: new HealthTable(health), counters: row, serverStats: (s) => stats.block(init.id, s), sequencer, scheduler, onInvalidated, onJournalShared,
  });
}

let serverStats = new ServerStats(init.config.workers, init.config.masters.length + init.config.backups.length, init.serverStats);
const ctx = {
  dispatcher: dispatcherFor(init.config, init.health, serverStats),
  parser: new RequestParser(init.config.maxItemSize),
  pending: new PendingBytes(pendingShare(init.config)),
  scheduler,
  auth: passwordGate(init.config),
};
const local = new LocalCommands(init.config, counters, row, init.startedAt, new HealthTable(init.health), serverStats, new ServerFigures(init.figures));

setTimeout(shareSamples, init.config.retryIntervalMs).unref();

let draining = false;
const serve = (connection: object): void => {
  const client = new ClientConnection(connection, ctx, local);
  local.clientOpened(client);
  if (draining) client.drain();
};
/** TLS listeners' clients: served once their handshake completes; one refused is counted closed at once. */
const tlsClients = init.config.tls === null ? null : new TlsClients(init.config.tls, serve, () => { row[C.CLOSED_CONNECTIONS]!++; });
const accepted = (connection: object, tls: boolean): void => {
  if (tls && tlsClients !== null) tlsClients.accept(connection);
  else serve(connection);
};

/**
 * A client on this worker's own listener: counted and limited here, as the main
 * thread does for the clients it hands over (the limit is read across every
 * worker's row, so workers accepting at the same moment may pass it by one each).
 */
function ownAccept(socket: net.Socket, tls: boolean): void {
  const rows = counters.rows;
  let open = 0;
  for (let r = 1; r < rows; r++) {
    const other = counters.row(r);
    open += other[C.HANDED_CONNECTIONS]! - other[C.CLOSED_CONNECTIONS]!;
  }
  if (open >= ctx.dispatcher.config.maxConnections) {
    row[C.REJECTED_CONNECTIONS]!++;
    socket.on('error', () => socket.destroy());
    // A TLS client could not read the plain answer: it sees the close.
    if (tls) socket.destroy();
    else socket.end(wire.ERROR_TOO_MANY_CONNECTIONS);
    return;
  }
  row[C.HANDED_CONNECTIONS]!++;
  row[C.TOTAL_CONNECTIONS]!++;
  accepted(socket, tls);
}

let receiver: HandoffReceiver | null = null;
let listeners: net.Server[] = [];
const clients = init.clients;
if (clients.io === 'fast') {
  receiver = new HandoffReceiver(clients.handoffPath, clients.handoffToken, accepted, (status) => {
    // The main thread is gone or closed the pipe: nothing more will arrive.
    if (status === 0) { log.debug('handoff pipe closed', { worker: init.id }); return; }
    // Never connected (the privileges changed under a pipe made before): end, so
    // that the supervisor starts a replacement with a pipe of its own.
    log.error('handoff pipe: cannot connect; worker exits', { worker: init.id, status });
    process.exit(1);
  });
} else {
  try {
    listeners = await listenShared(clients.listen, ownAccept, (err) => log.error('listener error', { worker: init.id, error: err.message }));
    tell({ type: 'listening' });
  } catch (err) {
    tell({ type: 'listen-failed', error: (err as Error).message });
  }
}

function closeListeners(): void {
  for (const l of listeners) l.close();
  listeners = [];
}

parentPort!.on('message', (m: ToWorker) => {
  if (m.type === 'invalidate') {
    ctx.dispatcher.invalidate(m.server, m.flush, m.keys);
  } else if (m.type === 'reload') {
    // New requests go to a dispatcher built on the new configuration; those in
    // flight finish on the old one, whose connections close once idle.
    const config = m.config;
    serverStats = new ServerStats(config.workers, config.masters.length + config.backups.length, m.serverStats);
    const next = dispatcherFor(config, m.health, serverStats);
    const old = ctx.dispatcher;
    // Keys the old journal had not yet handed over are published under the server's old number.
    if (shareTimer !== null) { clearTimeout(shareTimer); shareJournal(); }
    next.adoptJournals(old);
    ctx.dispatcher = next;
    old.retire();
    ctx.parser = new RequestParser(config.maxItemSize);
    ctx.pending.limit = pendingShare(config);
    // New clients authenticate against the new file; those already in stay in.
    ctx.auth = passwordGate(config);
    setBackendAuth(config);
    local.reconfigure(config, new HealthTable(m.health), serverStats, new ServerFigures(m.figures));
    if (config.tls !== null) tlsClients?.update(config.tls);
    setLogLevel(config.verbose);
  } else if (m.type === 'drain') {
    draining = true;
    closeListeners();
    local.onIdle = () => tell({ type: 'drained' });
    if (local.clients.size === 0) local.onIdle();
    else for (const c of [...local.clients]) c.drain();
  } else if (m.type === 'stop') {
    receiver?.close();
    closeListeners();
    ctx.dispatcher.closeAll();
    process.exit(0);
  }
});
