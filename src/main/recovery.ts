// Bringing a server back without stale reads or a cold cache.
//
//   DOWN --probe answers--> RECOVERING --every worker deleted its journaled keys--> WARMING --> UP
//                                   (backups and masters without a backup go straight to UP)
//
// RECOVERING: the server takes writes again but serves no reads, while it is
// cleared of values that may be stale:
// - a master is flushed. A journal only knows the writes made through this
//   proxy, and DESIGN.md's deployment has several entry proxies writing the same
//   keys: a key overwritten through another entry during the outage would come
//   back stale. Flushing costs nothing on a restarted (empty) master, and on a
//   partitioned one the warm-up refills every key that is read from the backup,
//   which holds every write made during the outage, with its TTL.
// - a backup has the keys each worker journaled deleted on it (worker/journal.ts):
//   backups serve reads only while a master is down, and keep the rest of their
//   data. If a worker died meanwhile its journal is gone: the backup is flushed.
// WARMING: reads go to the master and its misses are filled from the backup
// (worker/dispatch.ts); it ends after --warmup-seconds, or sooner once fewer than
// --warmup-done-ratio of the master's reads still needed the backup over a window.

import type { Config } from '../config/config.js';
import { DOWN, HealthTable, RECOVERING, UP, WARMING } from '../shared/health.js';
import { S, type ServerStats } from '../shared/server-stats.js';
import { log } from '../log.js';
import type { Supervisor } from './supervisor.js';

const WINDOW_MS = 10_000;
/** Fewer reads than this in a window say nothing about how warm the server is. */
const MIN_WINDOW_READS = 100;

interface Warming {
  since: number;
  windowStart: number;
  reads: number;
  hits: number;
}

export class Recovery {
  private readonly names: string[];
  private readonly masterCount: number;
  /** a worker died while the server was not UP: its journal entries are lost */
  private readonly journalLost: boolean[];
  private readonly warming = new Map<number, Warming>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly config: Config,
    private readonly health: HealthTable,
    private readonly stats: ServerStats,
    private readonly supervisor: Supervisor,
  ) {
    this.names = [...config.masters, ...config.backups].map((s) => s.name);
    this.masterCount = config.masters.length;
    this.journalLost = this.names.map(() => false);
  }

  start(): void {
    this.timer = setInterval(() => this.checkWarming(), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
  }

  /** A worker died: every server that is not UP loses that worker's journal. */
  workerDied(): void {
    for (let i = 0; i < this.names.length; i++) if (this.health.state(i) !== UP) this.journalLost[i] = true;
  }

  /** The prober heard from a DOWN server. */
  async begin(server: number): Promise<void> {
    if (!this.health.advance(server, DOWN, RECOVERING)) return;
    const name = this.names[server]!;
    log.info('server recovering', { server: name });
    // Wait a retry interval before clearing it: writes that timed out may still be
    // in the server's socket buffers (let them land first), and the other entry
    // proxies read the outage counters (main/peers.ts) once per interval, so by
    // then every one of them has stopped reading from this server too.
    await new Promise((r) => setTimeout(r, Math.min(5000, this.config.retryIntervalMs + 100)));
    const flush = server < this.masterCount || this.journalLost[server]!;
    const ok = await this.supervisor.invalidateAll(server, flush);
    if (!ok) {
      if (this.health.advance(server, RECOVERING, DOWN)) log.warn('server recovery failed; down again', { server: name });
      return;
    }
    this.journalLost[server] = false;
    const isMaster = server < this.masterCount;
    if (isMaster && this.config.backups.length > 0 && this.config.warmupSeconds > 0) {
      if (this.health.advance(server, RECOVERING, WARMING)) {
        const now = Date.now();
        this.warming.set(server, { since: now, windowStart: now, reads: this.stats.sum(server, S.WARM_READS), hits: this.stats.sum(server, S.WARM_BACKUP_HITS) });
        log.info('server warming', { server: name, invalidated: flush ? 'flushed' : 'journal' });
      }
    } else if (this.health.advance(server, RECOVERING, UP)) {
      log.info('server marked up', { server: name, invalidated: flush ? 'flushed' : 'journal' });
    }
  }

  private checkWarming(): void {
    const now = Date.now();
    for (const [server, w] of this.warming) {
      if (this.health.state(server) !== WARMING) { this.warming.delete(server); continue; }
      let done = now - w.since >= this.config.warmupSeconds * 1000;
      let why = 'warm-up time over';
      if (!done && now - w.windowStart >= WINDOW_MS) {
        const reads = this.stats.sum(server, S.WARM_READS);
        const hits = this.stats.sum(server, S.WARM_BACKUP_HITS);
        const dr = reads - w.reads;
        const dh = hits - w.hits;
        if (dr >= MIN_WINDOW_READS && dh / dr < this.config.warmupDoneRatio) {
          done = true;
          why = `${dh} of ${dr} reads needed the backup in the last ${WINDOW_MS / 1000} s`;
        }
        w.windowStart = now;
        w.reads = reads;
        w.hits = hits;
      }
      if (done) {
        this.warming.delete(server);
        if (this.health.advance(server, WARMING, UP)) log.info('server marked up', { server: this.names[server], reason: why });
      }
    }
  }
}
