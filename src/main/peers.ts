// Telling the other entry proxies that a master went down, through the backups.
//
// Entry proxies do not talk to each other, and each has its own view of server
// health: a proxy that sent no traffic to a master during a partition would read
// its stale values the moment it answers again. So a proxy that marks a master
// down also bumps a counter in every backup server, "mcrelay:down:<host:port>";
// every proxy reads those counters each retry interval and marks the master down
// itself when one has changed since it last looked, which sends it through the
// same recovery (main/recovery.ts) before it reads from that master again.
//
// "Changed" is the counter's value or its cas: a counter wiped by a client's
// flush_all or a backup restart and bumped again is news, however its value
// compares with the one seen before (and a bump of a vanished counter starts
// above the highest value seen, so outage numbers are not reused). A counter
// that merely vanished is not news: every backup restart would otherwise send
// every master through a recovery, its reads to the backup that just came back
// empty. The cost: an announcement wiped before another proxy read it (within
// one retry interval) is missed by that proxy (docs/decisions/recovery.md).
//
// The counter on the master's journal backup (main/outage-journal.ts) also
// numbers the outages: the keys written during one are published under the
// number its announcement got, and a recovery reads every number since the one
// it last recovered from.
//
// One small gets per backup per interval; nothing on the request path.

import type { ServerAddress } from '../config/config.js';
import { DOWN, DRAINED, DRAINING, HealthTable } from '../shared/health.js';
import { codeOf } from '../errors.js';
import { log } from '../log.js';
import { exchange, lines, readStates } from '../backend/server-request.js';
import type { OutageJournal } from './outage-journal.js';

export const DOWN_PREFIX = 'mcrelay:down:';

export class Peers {
  /** per master, per backup: the counter as last read ("value:cas", "" when absent); undefined before the first read */
  private readonly seen: Array<Array<string | undefined>>;
  /** per master: the counter's value on its journal backup, as last read or bumped (null: never read) */
  private readonly gen: Array<number | null>;
  /** per master: the highest value it ever had here, so that a wiped counter does not reuse numbers */
  private readonly highest: number[];
  /** per master: the number the current outage's journaled keys go under (null: not known yet) */
  private readonly outage: Array<number | null>;
  /** per master: the number of the last outage this proxy knew of */
  private readonly lastOutage: Array<number | null>;
  /** per master: the announcement of the current outage (null: not announced) */
  private readonly announced: Array<Promise<void> | null>;
  private busy = false;

  constructor(
    private readonly masters: readonly ServerAddress[],
    private readonly backups: readonly ServerAddress[],
    private readonly health: HealthTable,
    private readonly timeoutMs: number,
    /** told the number of each outage this proxy announces, to open its journal */
    private readonly journal: Pick<OutageJournal, 'open' | 'journalBackup' | 'baseline'> | null = null,
  ) {
    this.seen = masters.map(() => backups.map(() => undefined));
    this.gen = masters.map(() => null);
    this.highest = masters.map(() => 0);
    this.outage = masters.map(() => null);
    this.lastOutage = masters.map(() => null);
    this.announced = masters.map(() => null);
  }

  /**
   * After a reload: what `old` knew of the masters and backups both know (by
   * name) carries over, so that an outage in progress keeps its number and a
   * counter already read is not taken as a first read.
   */
  adopt(old: Peers): void {
    for (let i = 0; i < this.masters.length; i++) {
      const o = old.masters.findIndex((m) => m.name === this.masters[i]!.name);
      if (o < 0) continue;
      this.gen[i] = old.gen[o]!;
      this.highest[i] = old.highest[o]!;
      this.outage[i] = old.outage[o]!;
      this.lastOutage[i] = old.lastOutage[o]!;
      this.announced[i] = old.announced[o]!;
      for (let b = 0; b < this.backups.length; b++) {
        const ob = old.backups.findIndex((x) => x.name === this.backups[b]!.name);
        if (ob >= 0) this.seen[i]![b] = old.seen[o]![ob];
      }
    }
  }

  /** Announces masters this proxy has just seen go down (called often: it is local until one has). */
  announceDown(): void {
    if (this.backups.length === 0) return;
    for (let i = 0; i < this.masters.length; i++) {
      const s = this.health.state(i);
      if (s === DOWN || s === DRAINED) void this.announce(i);
      else if (s !== DRAINING) this.announced[i] = null;
    }
  }

  /**
   * Called by the prober when a DOWN master answers, before its recovery starts.
   * First this outage is announced, however short it was (announceDown may not
   * have run yet). Then the counters are read once more: the other proxies'
   * announcements of this same outage are absorbed while the master is still
   * DOWN here; read a moment later, they would look like news of a new outage
   * and send the recovering master back to DOWN for another interval.
   */
  async beforeRecovery(i: number): Promise<void> {
    if (i >= this.masters.length || this.backups.length === 0) return;
    await this.announce(i);
    await this.readNews();
  }

  /** Called every retry interval by the prober: reads the other proxies' news. */
  async tick(): Promise<void> {
    if (this.busy || this.backups.length === 0) return;
    this.busy = true;
    try {
      await this.readNews();
    } finally {
      this.busy = false;
    }
  }

  /**
   * The number this proxy's journaled keys of master i go under now (null: not
   * known yet; they wait). While the master is down here and this outage's
   * announcement has no number yet, its keys wait for it: under the last
   * outage's number, which the other proxies have read past, none of them would
   * delete those keys on the master when it returns. Once the master is back,
   * a key whose write failed late in the outage goes under that outage.
   */
  outageNumber(i: number): number | null {
    const n = this.outage[i] ?? null;
    if (n !== null) return n;
    const s = this.health.state(i);
    if (s === DOWN || s === DRAINED) return null;
    return this.lastOutage[i] ?? null;
  }

  /** Master i's outages up to this number are known; null if its journal backup was never read. */
  latest(i: number): number | null {
    return this.gen[i] ?? null;
  }

  /** Master i was recovered: keys journaled from now on belong to its next outage. */
  recovered(i: number): void {
    this.outage[i] = null;
  }

  /** Bumps a master's counter once per outage; resolves when done or failed. */
  private announce(i: number): Promise<void> {
    return this.announced[i] ??= this.bump(i).then(
      (n) => {
        if (n === null) return;
        this.outage[i] = n;
        this.lastOutage[i] = n;
      },
      (err: Error) => log.error('peer announce failed', { server: this.masters[i]!.name, code: codeOf(err), error: err.message }),
    );
  }

  /** Marks down every master whose counter changed since this proxy last looked. */
  private async readNews(): Promise<void> {
    const counts = await this.read();
    const j = this.journal;
    for (let i = 0; i < this.masters.length; i++) {
      let news = false;
      for (let b = 0; b < this.backups.length; b++) {
        const now = counts[i]![b];
        if (now === undefined) continue; // that backup did not answer
        const before = this.seen[i]![b];
        this.seen[i]![b] = now;
        // A counter that vanished is not news by itself (see the header); its next bump is.
        if (before !== undefined && before !== now && now !== '') news = true;
        if (j !== null && b === j.journalBackup(i)) {
          const n = counterValue(now);
          this.gen[i] = n;
          this.highest[i] = Math.max(this.highest[i]!, n);
          j.baseline(i, n);
        }
      }
      if (news && this.health.state(i) !== DOWN && this.health.state(i) !== DRAINED) {
        // The outage another proxy announced: what it journaled goes under that number.
        const n = this.gen[i];
        this.outage[i] = n;
        if (n !== null) this.lastOutage[i] = n;
        if (this.health.markDown(i)) {
          this.announced[i] = Promise.resolve();
          log.warn('server marked down', { server: this.masters[i]!.name, reason: 'another proxy saw it down' });
        }
      }
    }
  }

  /** Bumps the master's counter on every backup; returns its value on the journal backup (null if not bumped there). */
  private async bump(i: number): Promise<number | null> {
    const key = DOWN_PREFIX + this.masters[i]!.name;
    const jb = this.journal?.journalBackup(i) ?? 0;
    let mine: number | null = null;
    for (let b = 0; b < this.backups.length; b++) {
      const backup = this.backups[b]!;
      let reply = await this.ask(backup, `incr ${key} 1\r\n`);
      if (reply !== null && reply.startsWith('NOT_FOUND')) {
        // Gone (flush_all, restart): start above what was seen, so numbers are not reused.
        const next = String(Math.max(this.highest[i]!, counterValue(this.seen[i]![b])) + 1);
        reply = await this.ask(backup, `add ${key} 0 0 ${next.length}\r\n${next}\r\n`);
        if (reply !== null && reply.startsWith('NOT_STORED')) reply = await this.ask(backup, `incr ${key} 1\r\n`);
        else if (reply !== null && reply.startsWith('STORED')) reply = `${next}\r\n`;
      }
      const n = reply === null ? NaN : Number(reply.trim());
      if (!Number.isFinite(n) || b !== jb) continue;
      mine = n;
      this.gen[i] = n;
      this.highest[i] = Math.max(this.highest[i]!, n);
      // Opened before it is used: a journal missing later was evicted or lost.
      if (this.journal !== null && !(await this.journal.open(i, n))) mine = null;
    }
    return mine;
  }

  private async ask(backup: ServerAddress, request: string): Promise<string | null> {
    return (await exchange(backup, request, this.timeoutMs, lines(1))).text;
  }

  /** Every master's counter on every backup: "value:cas", "" when absent, undefined when the backup did not answer. */
  private async read(): Promise<Array<Array<string | undefined>>> {
    const out = this.masters.map(() => this.backups.map((): string | undefined => undefined));
    const keys = this.masters.map((m) => DOWN_PREFIX + m.name);
    await Promise.all(this.backups.map(async (backup, b) => {
      const states = await readStates(backup, keys, this.timeoutMs);
      if (states !== null) for (let i = 0; i < keys.length; i++) out[i]![b] = states.get(keys[i]!);
    }));
    return out;
  }
}

function counterValue(seen: string | undefined): number {
  return seen === undefined || seen === '' ? 0 : Number(seen.split(':')[0]);
}
