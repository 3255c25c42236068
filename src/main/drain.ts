// Planned maintenance: an operator drains a master, patches, reboots or moves
// it, and undrains it, with no miss and no stale read.
//
//   drain:   "mcrelay:drain:<master>" set on every backup --> every entry proxy
//            (it reads the flags each retry interval) moves the master
//            UP/WARMING --> DRAINING: reads go to the backup, writes still go to
//            both, while the other proxies hear of it --> a retry interval later
//            DRAINED: writes go to the backup only and are journaled, as in an
//            outage (announced, so the journal is published)
//   undrain: the flag deleted --> DRAINED/DRAINING --> DOWN --> the prober finds it
//            and recovers it like any return: journaled keys deleted (or a flush
//            past the journal), then restored and warmed
//
// The flag lives in the backups so that the drain holds in every proxy, and
// survives a proxy's restart; DRAINED is never probed back nor marked down.

import type { ServerAddress } from '../config/config.js';
import { DOWN, DRAINED, DRAINING, RECOVERING, STATE_NAMES, UP, WARMING, type HealthTable } from '../shared/health.js';
import { log } from '../log.js';
import { exchange, lines, readStates } from '../backend/server-request.js';

export const DRAIN_PREFIX = 'mcrelay:drain:';
/** Extra wait past a retry interval before a draining master stops taking writes. */
const SETTLE_EXTRA_MS = 250;

export interface DrainResult { status: number; body: Record<string, unknown> }

export class Drains {
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private busy = false;

  constructor(
    private readonly masters: readonly ServerAddress[],
    private readonly backups: readonly ServerAddress[],
    private readonly health: HealthTable,
    private readonly retryIntervalMs: number,
    private readonly timeoutMs: number,
  ) {}

  /** Each retry interval: applies the flags the backups hold. */
  async tick(): Promise<void> {
    if (this.busy || this.backups.length === 0) return;
    this.busy = true;
    try {
      const keys = this.masters.map((m) => DRAIN_PREFIX + m.name);
      const flagged = this.masters.map((): boolean | null => null);
      await Promise.all(this.backups.map(async (b) => {
        const states = await readStates(b, keys, this.timeoutMs);
        if (states !== null) keys.forEach((k, i) => { flagged[i] = (flagged[i] ?? false) || states.get(k) !== ''; });
      }));
      flagged.forEach((f, i) => { if (f !== null) this.apply(i, f); });
    } finally {
      this.busy = false;
    }
  }

  stop(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  /** POST /servers/<name>/drain */
  async drain(name: string): Promise<DrainResult> {
    const i = this.masters.findIndex((m) => m.name === name);
    if (i < 0) return this.unknown(name);
    if (this.backups.length === 0) return { status: 409, body: { error: 'no backup pool to serve its keys while it is drained', server: name } };
    const told = await this.tellBackups(`set ${DRAIN_PREFIX}${name} 0 0 1\r\n1\r\n`, 'STORED\r\n');
    if (told === 0) return { status: 503, body: { error: 'no backup took the drain', server: name } };
    this.apply(i, true);
    log.warn('server drained by an operator', { server: name });
    return { status: 200, body: this.describe(i) };
  }

  /** POST /servers/<name>/undrain */
  async undrain(name: string): Promise<DrainResult> {
    const i = this.masters.findIndex((m) => m.name === name);
    if (i < 0) return this.unknown(name);
    const told = await this.tellBackups(`delete ${DRAIN_PREFIX}${name}\r\n`, null);
    if (told === 0) return { status: 503, body: { error: 'no backup answered the undrain', server: name } };
    this.apply(i, false);
    log.warn('server undrained by an operator: it returns through recovery', { server: name });
    return { status: 200, body: this.describe(i) };
  }

  /** GET /servers/<name> */
  status(name: string): DrainResult {
    const i = this.masters.findIndex((m) => m.name === name);
    return i < 0 ? this.unknown(name) : { status: 200, body: this.describe(i) };
  }

  private describe(i: number): Record<string, unknown> {
    return { server: this.masters[i]!.name, role: 'master', state: STATE_NAMES[this.health.state(i)] ?? 'unknown' };
  }

  private unknown(name: string): DrainResult {
    return { status: 404, body: { error: 'not a master of this proxy', server: name, masters: this.masters.map((m) => m.name) } };
  }

  /** Sends a request to every backup; how many answered it (with `ok`, if given). */
  private async tellBackups(request: string, ok: string | null): Promise<number> {
    const answers = await Promise.all(this.backups.map((b) => exchange(b, request, this.timeoutMs, lines(1))));
    return answers.filter((a) => a.text !== null && (ok === null ? !a.text.startsWith('ERROR') && !a.text.includes('_ERROR') : a.text === ok)).length;
  }

  private apply(i: number, drained: boolean): void {
    const s = this.health.state(i);
    if (drained) {
      if (s === UP || s === WARMING) {
        if (!this.health.advance(i, s, DRAINING)) return;
        log.info('server draining', { server: this.masters[i]!.name });
        // Writes go on to it until every other proxy reads from it no more.
        this.timers.set(i, setTimeout(() => {
          this.timers.delete(i);
          if (this.health.advance(i, DRAINING, DRAINED)) log.info('server drained', { server: this.masters[i]!.name });
        }, this.retryIntervalMs + SETTLE_EXTRA_MS));
      } else if (s === DOWN || s === RECOVERING) {
        // Out already: it stays out, and is not probed back.
        if (this.health.advance(i, s, DRAINED)) log.info('server drained', { server: this.masters[i]!.name });
      }
    } else if (s === DRAINING || s === DRAINED) {
      clearTimeout(this.timers.get(i));
      this.timers.delete(i);
      if (this.health.advance(i, s, DOWN)) log.info('server undrained: recovering it', { server: this.masters[i]!.name });
    }
  }
}
