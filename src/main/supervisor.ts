// Worker threads: start, hand each new client to the least loaded, replace the dead.
// With --io portable there is nothing to hand: each worker listens on the shared
// ports itself (reusePort) and the kernel spreads the clients.
//
// A worker's load is the number of clients handed to it minus the number it has
// seen close (two counters in its row of the shared counters, one writer each),
// so choosing needs no message round trip.

import v8 from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { Config } from '../config/config.js';
import { C, type Counters } from '../shared/counters.js';
import { StripeTable } from '../shared/stripes.js';
import { codeOf, ListenError } from '../errors.js';
import { log } from '../log.js';
import { HandoffServer, type AcceptedHandle } from '../io/handoff.js';
import type { ListenAt } from '../io/portable.js';
import type { FromWorker, ToWorker, WorkerInit } from '../worker/entry.js';
import type { Sampled } from '../worker/write-sampler.js';

const ENTRY = new URL('../worker/entry.js', import.meta.url);

// Workers created from now on get a global gc(), which they call once after a
// giant request so that its buffers are returned (worker/collect.ts).
v8.setFlagsFromString('--expose-gc');
/** A worker that dies sooner than this after starting is restarted after a pause. */
const CRASH_LOOP_MS = 1000;

interface Slot {
  id: number;
  worker: Worker | null;
  /** fast: the pipe this worker's clients go down; null with --io portable */
  handoff: HandoffServer | null;
  /** taking clients: started, and its handoff pipe connected or its listeners open */
  live: boolean;
  startedAt: number;
  generation: number;
}

/**
 * A worker's young generation (V8's nursery, MB). The data path allocates a few
 * hundred bytes per request, most of it dead by the next scavenge, so a small
 * nursery costs no throughput (A/B at pipeline 1 and 16: no difference) while V8's
 * default lets each worker's grow under load and keep the pages: 4 workers
 * started 8 MB smaller and held 10,000 clients in 10 MB less.
 */
const YOUNG_GENERATION_MB = 3;

export class Supervisor {
  private readonly slots: Slot[] = [];
  private stopping = false;
  /** called when a worker dies (its journals go with it) */
  onWorkerDied: () => void = () => {};
  /** called with keys a worker journaled for a master (by name), to publish for the other proxies */
  onJournaled: (master: string, keys: string[], overflowed: boolean) => void = () => {};
  /** called with keys a worker sampled from its replicated writes (main/coverage.ts) */
  onSampled: (entries: Sampled[]) => void = () => {};
  /** per server: the workers' answers awaited by invalidateAll */
  private readonly awaiting = new Map<number, { left: Set<Worker>; ok: boolean; deleted: number; done: (r: { ok: boolean; deleted: number }) => void }>();
  /** kept across reloads: stripes are per key, whatever the server list */
  private readonly stripes = new StripeTable();

  constructor(
    private config: Config,
    private health: SharedArrayBuffer,
    private readonly counters: Counters,
    private serverStats: SharedArrayBuffer,
    private readonly startedAt: number,
    /** ServerFigures: the servers' own stats and the backups' coverage, written by the main thread */
    private figures: SharedArrayBuffer,
    /** --io portable: what every worker listens on itself; null: the main thread hands clients over */
    private readonly ownListeners: readonly ListenAt[] | null = null,
  ) {}

  async start(): Promise<void> {
    const starts: Array<Promise<void>> = [];
    for (let i = 0; i < this.config.workers; i++) {
      const slot: Slot = { id: i, worker: null, handoff: null, live: false, startedAt: 0, generation: 0 };
      this.slots.push(slot);
      starts.push(this.spawn(slot));
    }
    await Promise.all(starts);
  }

  private row(slot: Slot): Float64Array {
    return this.counters.row(slot.id + 1);
  }

  private spawn(slot: Slot): Promise<void> {
    slot.generation++;
    let handoff: HandoffServer | null = null;
    if (this.ownListeners === null) {
      try {
        handoff = new HandoffServer(`w${slot.id}-${slot.generation}`);
      } catch (err) {
        if (slot.generation === 1) return Promise.reject(err as Error);
        // A replacement: try again later rather than leave the slot empty for good.
        log.error('worker not replaced: its handoff pipe failed; retrying', { worker: slot.id, code: codeOf(err), error: (err as Error).message });
        setTimeout(() => { if (!this.stopping) void this.spawn(slot); }, CRASH_LOOP_MS);
        return Promise.resolve();
      }
    }
    const init: WorkerInit = {
      id: slot.id,
      config: this.config,
      health: this.health,
      counters: this.counters.buffer,
      serverStats: this.serverStats,
      stripes: this.stripes.buffer,
      figures: this.figures,
      row: slot.id + 1,
      startedAt: this.startedAt,
      clients: handoff !== null
        ? { io: 'fast', handoffPath: handoff.path, handoffToken: handoff.token }
        : { io: 'portable', listen: [...this.ownListeners!] },
    };
    const worker = new Worker(ENTRY, { workerData: init, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } });
    slot.worker = worker;
    slot.handoff = handoff;
    slot.startedAt = Date.now();
    worker.on('error', (err) => log.error('worker failed', { worker: slot.id, code: codeOf(err), error: err.message, stack: err.stack }));
    worker.on('exit', (exitCode) => this.exited(slot, worker, exitCode));
    let listening: (error: string | null) => void = () => {};
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'invalidated') this.invalidated(worker, m.server, m.ok, m.deleted);
      else if (m.type === 'journaled') for (const e of m.entries) this.onJournaled(e.master, e.keys, e.overflowed);
      else if (m.type === 'sampled') this.onSampled(m.entries);
      else if (m.type === 'listening') listening(null);
      else if (m.type === 'listen-failed') listening(m.error);
    });
    const live = (): void => { if (slot.worker === worker) slot.live = true; };
    if (handoff !== null) return handoff.connected().then(live);
    return new Promise<void>((resolve, reject) => {
      listening = (error) => {
        if (error === null) { live(); resolve(); return; }
        // A first start fails whole (the address is taken, reusePort is not
        // supported here); a replacement is retried like a crashed worker.
        // The worker's error came as text: its code is given again here.
        void worker.terminate();
        if (slot.generation === 1) reject(new ListenError(error));
        else { log.error('worker replacement cannot listen', { worker: slot.id, error }); resolve(); }
      };
      worker.once('exit', () => resolve());
    });
  }

  private exited(slot: Slot, worker: Worker, exitCode: number): void {
    if (slot.worker !== worker) return;
    slot.live = false;
    slot.worker = null;
    slot.handoff?.close();
    slot.handoff = null;
    this.onWorkerDied();
    // Its writes in flight are gone: the writes of other workers waiting on their stripes go on.
    this.stripes.freeOwnedBy(slot.id + 1);
    for (const [server, a] of this.awaiting) {
      if (a.left.delete(worker)) { a.ok = false; if (a.left.size === 0) this.settle(server); }
    }
    // Its clients went with it.
    const row = this.row(slot);
    row[C.HANDED_CONNECTIONS] = row[C.CLOSED_CONNECTIONS]!;
    if (this.stopping) return;
    // exitCode, not code: code is an error's (MCRELAY_*, ECONNREFUSED...) in every log line.
    log.error('worker exited; starting a replacement', { worker: slot.id, exitCode });
    const delay = Date.now() - slot.startedAt < CRASH_LOOP_MS ? CRASH_LOOP_MS : 0;
    setTimeout(() => { if (!this.stopping) void this.spawn(slot); }, delay);
  }

  /**
   * Asks every live worker to delete on `server` the keys it journaled (or to
   * flush it), and one of them to delete `keys` too; resolves once all have,
   * with ok false if any could not or died, and how many deletes were sent.
   */
  invalidateAll(server: number, flush: boolean, keys: readonly string[] = []): Promise<{ ok: boolean; deleted: number }> {
    return new Promise((resolve) => {
      const left = new Set<Worker>();
      for (const slot of this.slots) if (slot.live && slot.worker !== null) left.add(slot.worker);
      if (left.size === 0) { resolve({ ok: !flush && keys.length === 0, deleted: 0 }); return; }
      this.awaiting.get(server)?.done({ ok: false, deleted: 0 });
      this.awaiting.set(server, { left, ok: true, deleted: 0, done: resolve });
      let first = true;
      for (const w of left) {
        this.post(w, { type: 'invalidate', server, flush, keys: first ? [...keys] : [] });
        first = false;
      }
    });
  }

  private invalidated(worker: Worker, server: number, ok: boolean, deleted: number): void {
    const a = this.awaiting.get(server);
    if (a === undefined || !a.left.delete(worker)) return;
    if (!ok) a.ok = false;
    a.deleted += deleted;
    if (a.left.size === 0) this.settle(server);
  }

  private settle(server: number): void {
    const a = this.awaiting.get(server)!;
    this.awaiting.delete(server);
    a.done({ ok: a.ok, deleted: a.deleted });
  }

  /** A reload: running workers switch to the new tables; workers started later begin with them. */
  reload(config: Config, health: SharedArrayBuffer, serverStats: SharedArrayBuffer, figures: SharedArrayBuffer): void {
    this.config = config;
    this.health = health;
    this.serverStats = serverStats;
    this.figures = figures;
    for (const slot of this.slots) if (slot.worker !== null) this.post(slot.worker, { type: 'reload', config, health, serverStats, figures });
  }

  liveWorkers(): number {
    return this.slots.filter((s) => s.live).length;
  }

  /**
   * Tells every worker to stop taking requests and close each client once its
   * replies are written; resolves when all have, or after `ms`.
   */
  async drain(ms: number): Promise<void> {
    for (const slot of this.slots) slot.live = false;
    const workers = this.slots.map((s) => s.worker).filter((w): w is Worker => w !== null);
    await Promise.race([
      Promise.all(workers.map((w) => new Promise<void>((resolve) => {
        const done = (m: FromWorker): void => { if (m.type === 'drained') { w.off('message', done); resolve(); } };
        w.on('message', done);
        w.once('exit', () => resolve());
        this.post(w, { type: 'drain' });
      }))),
      new Promise((r) => setTimeout(r, ms).unref()),
    ]);
  }

  /** Clients currently held by all workers. */
  connections(): number {
    let n = 0;
    for (const slot of this.slots) {
      const row = this.row(slot);
      n += row[C.HANDED_CONNECTIONS]! - row[C.CLOSED_CONNECTIONS]!;
    }
    return n;
  }

  /** Per worker: clients currently held (for tests and stats). */
  load(): number[] {
    return this.slots.map((s) => {
      const row = this.row(s);
      return row[C.HANDED_CONNECTIONS]! - row[C.CLOSED_CONNECTIONS]!;
    });
  }

  /** Hands an accepted connection to the live worker holding the fewest clients (--io fast); `tls`: it came to a TLS listener. */
  handOff(handle: AcceptedHandle, tls: boolean): boolean {
    let best: Slot | null = null;
    let bestLoad = Infinity;
    for (const slot of this.slots) {
      if (!slot.live) continue;
      const row = this.row(slot);
      const load = row[C.HANDED_CONNECTIONS]! - row[C.CLOSED_CONNECTIONS]!;
      if (load < bestLoad) { best = slot; bestLoad = load; }
    }
    if (best === null) return false;
    // Counted before the worker can see the connection: a `stats` that arrives
    // with it and is answered at once must find itself in curr_connections.
    const row = this.row(best);
    row[C.HANDED_CONNECTIONS]!++;
    if (best.handoff!.send(handle, tls)) return true;
    row[C.HANDED_CONNECTIONS]!--;
    return false;
  }

  private post(worker: Worker, m: ToWorker): void {
    worker.postMessage(m);
  }

  workerThreadIds(): number[] {
    return this.slots.map((s) => s.worker?.threadId ?? -1);
  }

  /** Test hook and operator tool: ends one worker as if it had crashed. */
  async killWorker(id: number): Promise<void> {
    await this.slots[id]?.worker?.terminate();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.slots.map(async (slot) => {
      const w = slot.worker;
      slot.live = false;
      if (w !== null) {
        this.post(w, { type: 'stop' });
        const t = setTimeout(() => { void w.terminate(); }, 2000);
        await new Promise((r) => w.once('exit', r));
        clearTimeout(t);
      }
      slot.handoff?.close();
    }));
  }
}
