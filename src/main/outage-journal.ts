// The outage journal every entry proxy can read: the keys written through any
// proxy while a master was down, kept in a backup, so that the master's
// recovery deletes exactly those keys instead of flushing it.
//
//   worker: Journal.add (key written while the master is down, or whose write to
//           it failed) --'journaled' message--> OutageJournal.add (pending)
//   main:   publish(), every 50 ms --append--> "mcrelay:journal:<master>:<n>"
//           on the master's journal backup (backups[i % backups])
//   recovery: gather() reads every outage number since this proxy last recovered
//           the master --> its workers delete those keys (with their own journals)
//
// Outage n is the value the announcing proxy's bump gave the master's counter on
// that backup (main/peers.ts); the announcer opens the journal item (an empty
// add) before anyone appends to it. A journal that is missing (evicted, expired,
// its opener died) or that lost keys (too large for an item, not publishable)
// cannot say what to delete: the recovery flushes the master instead. Lost keys
// are told through a second counter per master, "mcrelay:journal-lost:<master>",
// bumped on every backup; a recovery that finds it changed since the last one
// flushes.
//
// Why it is enough, and the window it leaves: docs/decisions/recovery.md.

import type { ServerAddress } from '../config/config.js';
import { log } from '../log.js';
import { endsWithEnd, exchange, lines, parseValues, readStates } from '../backend/server-request.js';

export const JOURNAL_PREFIX = 'mcrelay:journal:';
export const LOST_PREFIX = 'mcrelay:journal-lost:';
/** A journal outlives any outage worth remembering; past this a recovery flushes. */
const JOURNAL_TTL_S = 7 * 24 * 3600;
/** More outages than this since the last recovery: flush rather than read them all. */
const MAX_OUTAGES = 64;
/** Bytes of keys per append. */
const APPEND_BYTES = 256 * 1024;

export interface Gathered {
  /** why the master must be flushed instead (null: deleting `keys` is enough) */
  flush: string | null;
  keys: string[];
  /** the outage number read up to, and the lost counters read: recovered() records them */
  upTo: number | null;
  lost: Array<string | undefined>;
}

interface OutageNumbers {
  outageNumber(i: number): number | null;
  latest(i: number): number | null;
}

export class OutageJournal {
  /** per master: keys journaled by this proxy's workers and not yet published */
  private readonly pending: Array<{ keys: string[]; overflowed: boolean }>;
  /** per master: the outage number up to which this proxy's recoveries have read (null: not known yet) */
  private readonly readUpTo: Array<number | null>;
  /** per master, per backup: the lost counter as of the last recovery ("value:cas", "" absent) */
  private readonly lostSeen: Array<Array<string | undefined>>;
  private numbers: OutageNumbers | null = null;
  private publishing = false;

  constructor(
    private readonly masters: readonly ServerAddress[],
    private readonly backups: readonly ServerAddress[],
    private readonly timeoutMs: number,
  ) {
    this.pending = masters.map(() => ({ keys: [], overflowed: false }));
    this.readUpTo = masters.map(() => null);
    this.lostSeen = masters.map(() => backups.map(() => undefined));
    this.moved = masters.map(() => false);
  }

  /** per master: a reload moved its journal to another backup during an outage */
  private readonly moved: boolean[];

  /**
   * After a reload: what `old` had pending and had read, for the masters and
   * backups both know (by name). `away(i)`: master i is in an outage now.
   */
  adopt(old: OutageJournal, away: (i: number) => boolean): void {
    for (let i = 0; i < this.masters.length; i++) {
      const o = old.masters.findIndex((m) => m.name === this.masters[i]!.name);
      if (o < 0) continue;
      const p = old.pending[o]!;
      this.pending[i] = { keys: [...p.keys], overflowed: p.overflowed };
      p.keys = [];
      p.overflowed = false;
      this.readUpTo[i] = old.readUpTo[o]!;
      for (let b = 0; b < this.backups.length; b++) {
        const ob = old.backups.findIndex((x) => x.name === this.backups[b]!.name);
        // Another journal backup now (the backup list changed): its numbers are not the old ones.
        if (ob >= 0) this.lostSeen[i]![b] = old.lostSeen[o]![ob];
      }
      if (old.journalBackupName(o) !== this.journalBackupName(i)) {
        // The journal moved to another backup: the current outage's keys are in the old one.
        this.readUpTo[i] = null;
        this.moved[i] = away(i);
      }
    }
  }

  private journalBackupName(i: number): string {
    return this.backups[this.journalBackup(i)]!.name;
  }

  /** The outage numbers come from the peers' counters. */
  attach(numbers: OutageNumbers): void {
    this.numbers = numbers;
  }

  /** The backup holding master i's journal. */
  journalBackup(i: number): number {
    return i % this.backups.length;
  }

  /** The first outage number read for master i: earlier outages were before this proxy's time. */
  baseline(i: number, n: number): void {
    if (this.readUpTo[i] === null) this.readUpTo[i] = n;
  }

  /** Keys this proxy's workers journaled for a master (by name), to publish. */
  add(master: string, keys: readonly string[], overflowed: boolean): void {
    const i = this.masters.findIndex((m) => m.name === master);
    if (i < 0) return; // removed by a reload: its recovery is over
    const p = this.pending[i]!;
    if (overflowed) { p.overflowed = true; p.keys = []; return; }
    if (!p.overflowed) for (const k of keys) p.keys.push(Buffer.from(k, 'latin1').toString('base64'));
  }

  /** Whether keys wait to be published. */
  get idle(): boolean {
    return this.pending.every((p) => p.keys.length === 0 && !p.overflowed);
  }

  /** Opens outage n's journal of master i (an empty item); false if its backup did not take it. */
  async open(i: number, n: number): Promise<boolean> {
    const key = this.journalKey(i, n);
    const { text } = await exchange(this.backups[this.journalBackup(i)]!, `add ${key} 0 ${JOURNAL_TTL_S} 0\r\n\r\n`, this.timeoutMs, lines(1));
    // NOT_STORED: opened already (a number reused after the counter was wiped): appends go on in it.
    return text === 'STORED\r\n' || text === 'NOT_STORED\r\n';
  }

  /** Appends what is pending to the journals; called often, one run at a time. */
  async publish(): Promise<void> {
    if (this.publishing || this.numbers === null || this.backups.length === 0) return;
    this.publishing = true;
    try {
      for (let i = 0; i < this.masters.length; i++) {
        const p = this.pending[i]!;
        if (p.overflowed) {
          if (await this.markLost(i, 'outage journal full')) { p.overflowed = false; p.keys = []; }
          continue;
        }
        if (p.keys.length === 0) continue;
        const n = this.numbers.outageNumber(i);
        if (n === null) continue; // announced yet by nobody: kept until it is
        while (p.keys.length > 0) {
          let bytes = 0;
          let count = 0;
          while (count < p.keys.length && bytes < APPEND_BYTES) bytes += p.keys[count++]!.length + 1;
          const data = p.keys.slice(0, count).join('\n') + '\n';
          const { text } = await exchange(this.backups[this.journalBackup(i)]!,
            `append ${this.journalKey(i, n)} 0 0 ${data.length}\r\n${data}\r\n`, this.timeoutMs, lines(1));
          if (text === 'STORED\r\n') { p.keys.splice(0, count); continue; }
          if (text === null) break; // no answer: tried again at the next run
          // NOT_STORED (the item is gone) or SERVER_ERROR (too large): these keys cannot be told.
          if (await this.markLost(i, `journal append answered ${text.trim()}`)) p.keys = [];
          break;
        }
      }
    } finally {
      this.publishing = false;
    }
  }

  /** Bumps master i's lost counter on every backup; true if at least one took it. */
  private async markLost(i: number, why: string): Promise<boolean> {
    const key = LOST_PREFIX + this.masters[i]!.name;
    let told = false;
    for (const b of this.backups) {
      let { text } = await exchange(b, `incr ${key} 1\r\n`, this.timeoutMs, lines(1));
      if (text === 'NOT_FOUND\r\n') ({ text } = await exchange(b, `add ${key} 0 0 1\r\n1\r\n`, this.timeoutMs, lines(1)));
      if (text !== null && /^(\d+|STORED)\r\n/.test(text)) told = true;
    }
    if (told) log.warn('outage journal incomplete: every proxy flushes the master when it returns', { server: this.masters[i]!.name, reason: why });
    return told;
  }

  /**
   * What master i's recovery must delete: the keys of every outage since this
   * proxy last recovered it, or why it must be flushed instead.
   */
  async gather(i: number): Promise<Gathered> {
    const lost: Array<string | undefined> = this.backups.map(() => undefined);
    const to = this.numbers?.latest(i) ?? null;
    const flush = (why: string): Gathered => ({ flush: why, keys: [], upTo: to, lost });
    if (this.backups.length === 0) return flush('no backups to journal in');
    if (this.moved[i]) return flush('a reload moved the journal to another backup during the outage');
    const from = this.readUpTo[i];
    if (from === null || to === null) return flush('outage numbers unknown (journal backup not read yet)');
    if (to < from) return flush('outage counter reset');
    if (to - from > MAX_OUTAGES) return flush(`${to - from} outages since the last recovery`);
    const lostKey = LOST_PREFIX + this.masters[i]!.name;
    const jb = this.journalBackup(i);
    const names: string[] = [];
    for (let n = from + 1; n <= to; n++) names.push(this.journalKey(i, n));
    let journals: Map<string, { value: string; cas: string }> | null = null;
    await Promise.all(this.backups.map(async (b, at) => {
      const request = at === jb ? `gets ${lostKey} ${names.join(' ')}\r\n` : `gets ${lostKey}\r\n`;
      const { text } = await exchange(b, request, this.timeoutMs, endsWithEnd);
      if (text === null || !endsWithEnd(text)) return;
      const values = parseValues(text);
      const l = values.get(lostKey);
      lost[at] = l === undefined ? '' : `${l.value}:${l.cas}`;
      if (at === jb) journals = values;
    }));
    if (journals === null) return flush('journal backup did not answer');
    for (let at = 0; at < this.backups.length; at++) {
      const before = this.lostSeen[i]![at];
      if (lost[at] !== undefined && before !== undefined && lost[at] !== before) return flush('a proxy could not journal every key');
    }
    const keys: string[] = [];
    for (const name of names) {
      const item = (journals as Map<string, { value: string; cas: string }>).get(name);
      if (item === undefined) return flush(`journal ${name} missing`);
      for (const line of item.value.split('\n')) if (line !== '') keys.push(Buffer.from(line, 'base64').toString('latin1'));
    }
    return { flush: null, keys, upTo: to, lost };
  }

  /** Master i's recovery succeeded with what gather() returned (keys deleted, or flushed). */
  recovered(i: number, g: Gathered): void {
    if (g.upTo !== null) this.readUpTo[i] = g.upTo;
    this.moved[i] = false;
    for (let b = 0; b < g.lost.length; b++) if (g.lost[b] !== undefined) this.lostSeen[i]![b] = g.lost[b];
  }

  /** Reads the lost counters once, at start: what counts as a change from then on. */
  async readLostBaseline(): Promise<void> {
    const keys = this.masters.map((m) => LOST_PREFIX + m.name);
    await Promise.all(this.backups.map(async (b, at) => {
      const states = await readStates(b, keys, this.timeoutMs);
      if (states !== null) for (let i = 0; i < keys.length; i++) this.lostSeen[i]![at] ??= states.get(keys[i]!);
    }));
  }

  private journalKey(i: number, n: number): string {
    return `${JOURNAL_PREFIX}${this.masters[i]!.name}:${n}`;
  }
}
