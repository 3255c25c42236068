// Worker thread entry: receives client sockets from the main thread and runs the
// whole data path for them in this thread's event loop.

import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../config/config.js';
import { HandoffReceiver } from '../main/handoff.js';
import { RequestParser } from '../protocol/request-parser.js';
import { initXxhash } from '../routing/xxhash.js';
import { Counters } from '../shared/counters.js';
import { HealthTable } from '../shared/health.js';
import { ServerStats } from '../shared/server-stats.js';
import { log, setLogLevel } from '../log.js';
import { ClientConnection } from './client.js';
import { Dispatcher } from './dispatch.js';
import { Pools } from './request.js';
import { LocalCommands } from './local.js';
import { PendingBytes, pendingShare } from './pending-bytes.js';

export interface WorkerInit {
  id: number;
  config: Config;
  health: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  serverStats: SharedArrayBuffer;
  /** this worker's row in the counters */
  row: number;
  startedAt: number;
  handoffPath: string;
}

const init = workerData as WorkerInit;
setLogLevel(init.config.verbose);
await initXxhash();

const counters = new Counters(init.counters, true);
const row = counters.row(init.row);
const pools = new Pools();
const onInvalidated = (server: number, ok: boolean): void => parentPort!.postMessage({ type: 'invalidated', server, ok });

function dispatcherFor(config: Config, health: SharedArrayBuffer, stats: ServerStats): Dispatcher {
  return new Dispatcher(pools, config, new HealthTable(health), row, (s) => stats.block(init.id, s), onInvalidated);
}

let serverStats = new ServerStats(init.config.workers, init.config.masters.length + init.config.backups.length, init.serverStats);
const ctx = {
  dispatcher: dispatcherFor(init.config, init.health, serverStats),
  parser: new RequestParser(init.config.maxItemSize),
  pending: new PendingBytes(pendingShare(init.config)),
};
const local = new LocalCommands(init.config, counters, row, init.startedAt, new HealthTable(init.health), serverStats);

let draining = false;
const receiver = new HandoffReceiver(
  init.handoffPath,
  (handle) => {
    const client = new ClientConnection(handle, ctx, local);
    local.clientOpened(client);
    if (draining) client.drain();
  },
  () => {
    // The main thread is gone or closed the pipe: nothing more will arrive.
    log.debug('handoff pipe closed', { worker: init.id });
  },
);

interface Message { type: string; server?: number; flush?: boolean; config?: Config; health?: SharedArrayBuffer; serverStats?: SharedArrayBuffer }

parentPort!.on('message', (m: Message) => {
  if (m.type === 'invalidate') {
    ctx.dispatcher.invalidate(m.server!, m.flush === true);
  } else if (m.type === 'reload') {
    // New requests go to a dispatcher built on the new configuration; those in
    // flight finish on the old one, whose connections close once idle.
    const config = m.config!;
    serverStats = new ServerStats(config.workers, config.masters.length + config.backups.length, m.serverStats!);
    const next = dispatcherFor(config, m.health!, serverStats);
    const old = ctx.dispatcher;
    next.adoptJournals(old);
    ctx.dispatcher = next;
    old.retire();
    ctx.parser = new RequestParser(config.maxItemSize);
    ctx.pending.limit = pendingShare(config);
    local.reconfigure(config, new HealthTable(m.health!), serverStats);
    setLogLevel(config.verbose);
  } else if (m.type === 'drain') {
    draining = true;
    local.onIdle = () => parentPort!.postMessage({ type: 'drained' });
    if (local.clients.size === 0) local.onIdle();
    else for (const c of [...local.clients]) c.drain();
  } else if (m.type === 'stop') {
    receiver.close();
    ctx.dispatcher.closeAll();
    process.exit(0);
  }
});
parentPort!.postMessage({ type: 'ready' });
