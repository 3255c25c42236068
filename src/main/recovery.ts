// Bringing a server back without stale reads or a cold cache.
//
//   DOWN --probe answers--> RECOVERING --journaled keys deleted--> WARMING --> UP
//                                   (nothing written while it was away: straight to UP;
//                                    backups and masters without a backup skip WARMING)
//
// RECOVERING: the server takes writes again but serves no reads, while the keys
// that may be stale on it are deleted: those written through any entry proxy
// while it was down, or whose writes to it failed. For a master they are this
// proxy's workers' journals (worker/journal.ts) and what every entry proxy
// published in the backups (main/outage-journal.ts); for a backup, this proxy's
// journals (backups serve reads only while a master is down). Nothing else can
// be stale, whether the server restarted (it came back empty) or was only
// unreachable (it kept its data): its data stays. It is flushed only when no key
// list can be trusted: a journal overflowed, was lost (a worker died, an item
// was evicted), or could not be read. The reasoning: docs/decisions/recovery.md.
// WARMING: reads go to the master and its misses are filled from the backup
// (worker/warm-up.ts); it ends after --warmup-seconds, or sooner once fewer than
// --warmup-done-ratio of the master's reads still needed the backup over a window.

import { serverNames, type Config, type ServerAddress } from '../config/config.js';
import { DOWN, HealthTable, RECOVERING, UP, WARMING } from '../shared/health.js';
import { S, type ServerStats } from '../shared/server-stats.js';
import { log } from '../log.js';
import type { Gathered, OutageJournal } from './outage-journal.js';
import type { Placements, Pool } from './placement.js';
import type { Restorer } from './restore.js';
import type { Supervisor } from './supervisor.js';

/** After the probe answers, before the keys are gathered and deleted (see begin()). */
const SETTLE_EXTRA_MS = 250;

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
  private stopped = false;

  constructor(
    private readonly config: Config,
    private readonly health: HealthTable,
    private readonly stats: ServerStats,
    private readonly supervisor: Supervisor,
    /** the keys other proxies journaled (null without backups) */
    private readonly journal: OutageJournal | null,
    /** told when a master's recovery is over, so that its next outage gets a new number */
    private readonly onRecovered: (server: number) => void = () => {},
    /** copies back what a returning server lacks (null: no other pool to copy from) */
    private readonly restorer: Restorer | null = null,
    /** where keys live across placement changes; a server that gained keys is swept before it serves them */
    private readonly placements: Placements | null = null,
  ) {
    this.names = serverNames(config);
    this.masterCount = config.masters.length;
    this.journalLost = this.names.map(() => false);
  }

  start(): void {
    this.timer = setInterval(() => this.checkWarming(), 1000);
    this.timer.unref();
  }

  /** A reload replaced this recovery: what it has in flight stops at its next step, changing nothing. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
  }

  /**
   * After a reload: warm-ups in progress go on where `old` was (same start, by
   * server name); every server WARMING in the new table has one, so none can
   * stay WARMING for good.
   */
  adopt(old: Recovery): void {
    const now = Date.now();
    for (let i = 0; i < this.names.length; i++) {
      const o = old.names.indexOf(this.names[i]!);
      const w = o >= 0 ? old.warming.get(o) : undefined;
      if (o >= 0) this.journalLost[i] = old.journalLost[o]!;
      if (this.health.state(i) !== WARMING) continue;
      this.warming.set(i, w !== undefined ? { ...w } : { since: now, windowStart: now, reads: 0, hits: 0 });
    }
  }

  /** A worker died: every server that is not UP loses that worker's journal. */
  workerDied(): void {
    for (let i = 0; i < this.names.length; i++) if (this.health.state(i) !== UP) this.journalLost[i] = true;
  }

  /** The prober heard from a DOWN server; `restarted`: it is not the process that went away (null: not known). */
  async begin(server: number, restarted: boolean | null): Promise<void> {
    if (!this.health.advance(server, DOWN, RECOVERING)) return;
    const name = this.names[server]!;
    const isMaster = server < this.masterCount;
    log.info('server recovering', { server: name, restarted });
    // Wait a retry interval before clearing it: writes that timed out may still be
    // in the server's socket buffers (let them land first), and the other entry
    // proxies probe it and read the outage counters (main/peers.ts) once per
    // interval, so by then every one of them has stopped reading from it, stopped
    // journaling its keys, and published what it journaled.
    await new Promise((r) => setTimeout(r, Math.min(5000, this.config.retryIntervalMs + SETTLE_EXTRA_MS)));
    // Replaced by a reload meanwhile: the new tables have this server DOWN, and the new prober starts over.
    if (this.stopped) return;
    let gathered: Gathered | null = null;
    let flush: string | null = this.journalLost[server]! ? 'a worker died during the outage (its journal went with it)' : null;
    if (isMaster && this.journal !== null) {
      gathered = await this.journal.gather(server);
      flush ??= gathered.flush;
    }
    // Server numbers are the old configuration's once a reload happened: nothing more may go out under them.
    if (this.stopped) return;
    const { ok, deleted } = await this.supervisor.invalidateAll(server, flush !== null, gathered?.keys ?? []);
    if (this.stopped) return;
    if (!ok) {
      if (this.health.advance(server, RECOVERING, DOWN)) log.warn('server recovery failed; down again', { server: name });
      return;
    }
    // Keys a placement change moved to it while it was away: swept as for a server that gained them (resettle()).
    let moved: ((key: Buffer) => boolean) | null = null;
    if (this.placements?.pending(this.poolOf(server), name) === true) {
      moved = this.placements.moved(this.poolOf(server), name);
      const swept = await this.sweep(server);
      if (this.stopped) return;
      if (swept === null) return;
    }
    this.journalLost[server] = false;
    if (gathered !== null) this.journal!.recovered(server, gathered);
    if (isMaster) this.onRecovered(server);
    const mine = this.stats.block(this.stats.workers, server);
    if (restarted === true) mine[S.RESTARTS]!++;
    if (flush !== null) mine[S.FLUSHES]!++;
    mine[S.INVALIDATED]! += deleted;
    const how: Record<string, unknown> = { server: name, case: restarted === true ? 'restart' : restarted === null ? 'restart or outage (identity not known)' : 'outage' };
    if (flush !== null) how.flushed = flush;
    else how.invalidatedKeys = deleted;
    if (flush !== null) log.warn('server flushed before serving reads again', how);
    // Warm-up refills from the backup what the server lacks: everything after a
    // restart or a flush, the deleted keys after an outage; nothing if nothing was
    // written. The restore copies all of it back, read or not.
    // An unknown identity counts as a restart here: warming and restoring a full server costs little.
    const lacks = restarted !== false || flush !== null || deleted > 0;
    if (lacks) this.restorer?.start(server);
    else if (moved !== null) this.restorer?.start(server, moved);
    this.settle(server, how, lacks || moved !== null, lacks ? undefined : 'outage, nothing written');
  }

  /**
   * A reload changed the placement and keys moved to this server (main/placement.ts):
   * it is RECOVERING (no reads from it). Its copies that may be stale are swept;
   * then, as after an outage, a master with backups warms, and the moved keys are restored.
   */
  async resettle(server: number): Promise<void> {
    const name = this.names[server]!;
    const pool = this.poolOf(server);
    if (this.health.state(server) !== RECOVERING || this.placements === null) return;
    log.info('server recovering: keys moved to it by a placement change', { server: name });
    const moved = this.placements.moved(pool, name);
    const deleted = await this.sweep(server);
    if (deleted === null || this.stopped) return;
    this.restorer?.start(server, moved);
    this.settle(server, { server: name, case: 'placement change', sweptKeys: deleted }, true, undefined);
  }

  /**
   * A server that lost keys to a placement change, still serving the rest (or
   * a master that gained keys with no backup pool to serve them while it is
   * swept): its copies that may be stale are deleted. Tried again each retry
   * interval while the server is up and the placement unchanged.
   */
  async tidy(server: number): Promise<void> {
    const name = this.names[server]!;
    const pool = this.poolOf(server);
    if (this.placements?.pending(pool, name) === true) log.info('placement sweep: deleting copies that may be stale, while the server serves', { server: name });
    while (!this.stopped && this.placements?.pending(pool, name) === true) {
      if (this.health.state(server) === UP) {
        const { ok, deleted } = await this.placements.sweep(pool, name, this.address(server), this.config.timeoutMs, () => this.stopped, this.stats.block(this.stats.workers, server));
        if (ok) { log.info('placement sweep done: copies that may be stale deleted', { server: name, deleted }); return; }
      }
      await new Promise((r) => setTimeout(r, this.config.retryIntervalMs));
    }
  }

  private poolOf(server: number): Pool {
    return server < this.masterCount ? 'masters' : 'backups';
  }

  private address(server: number): ServerAddress {
    return server < this.masterCount ? this.config.masters[server]! : this.config.backups[server - this.masterCount]!;
  }

  /** Sweeps the server; the keys deleted, or null when it failed (the server is DOWN again, and swept when it returns). */
  private async sweep(server: number): Promise<number | null> {
    const pool = this.poolOf(server);
    const name = this.names[server]!;
    const { ok, deleted } = await this.placements!.sweep(pool, name, this.address(server), this.config.timeoutMs, () => this.stopped, this.stats.block(this.stats.workers, server));
    if (this.stopped) return null;
    if (!ok) {
      if (this.health.advance(server, RECOVERING, DOWN)) log.warn('server placement sweep failed; down again', { server: name });
      return null;
    }
    return deleted;
  }

  /** RECOVERING is over: WARMING for a master with backups that lacks keys, else UP. */
  private settle(server: number, how: Record<string, unknown>, lacks: boolean, nothingWritten: string | undefined): void {
    const isMaster = server < this.masterCount;
    if (isMaster && lacks && this.config.backups.length > 0 && this.config.warmupSeconds > 0) {
      if (this.health.advance(server, RECOVERING, WARMING)) {
        const now = Date.now();
        this.warming.set(server, { since: now, windowStart: now, reads: this.stats.sum(server, S.WARM_READS), hits: this.stats.sum(server, S.WARM_BACKUP_HITS) });
        log.info('server warming', how);
      }
    } else if (this.health.advance(server, RECOVERING, UP)) {
      if (nothingWritten !== undefined) how.case = nothingWritten;
      log.info('server marked up', how);
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
      // Warm-up ends no sooner than the restore: until then a miss may be a key not yet copied.
      if (done && this.restorer?.running(server) === true) continue;
      if (done) {
        this.warming.delete(server);
        if (this.health.advance(server, WARMING, UP)) log.info('server marked up', { server: this.names[server], reason: why });
      }
    }
  }
}
