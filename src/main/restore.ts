// Eager restore of a returning server: every key the other pool holds for it
// is copied back, so that a cold server does not stay partly cold once warm-up
// (which fills only what clients read) is over.
//
//   one proxy holds "mcrelay:restore:<server>" (an add with a TTL it renews)
//   for each source (a returning master: the backups; a returning backup: the masters)
//     lru_crawler metadump all --key=<url-encoded> ...--> route: does it belong to the server?
//       mg <key> v f t c (source) --> ms <key> <size> F T ME (target: an add, never over
//       a newer value) --> HD: mg <key> c (source) again: changed or gone since the
//       read? then md <key> on the target (the check warm-up fills make too)
//
// Copies are paced (restore.keys_per_second, restore.max_inflight) and use
// connections of their own; the dump is read as a stream and paused while the
// copies behind it catch up. A copy is an add checked against its source, so
// a restore started again from the beginning (the lock holder died) is harmless.
// A source without lru_crawler (-o no_lru_crawler, an error) makes the restore
// `unavailable`: logged once, lazy warm-up carries on.

import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { backupNames, masterNames, parseServerAddress, type Config, type ServerAddress } from '../config/config.js';
import { Router } from '../routing/router.js';
import { DOWN, type HealthTable } from '../shared/health.js';
import { DONE, FAILED, IDLE, RUNNING, S, UNAVAILABLE, type ServerStats } from '../shared/server-stats.js';
import { validKey } from '../protocol/request-rules.js';
import { codeOf } from '../errors.js';
import { log } from '../log.js';
import { MetaClient } from './meta-client.js';
import { exchange, lines } from '../backend/server-request.js';
import { isProxyKey, metadump } from '../backend/metadump.js';

const LOCK_PREFIX = 'mcrelay:restore:';
const DONE_PREFIX = 'mcrelay:restored:';
const LOCK_TTL_S = 10;
const RENEW_MS = 3000;
const WAIT_MS = 1000;
const PROGRESS_LOG_MS = 10_000;
/** memcached reads an exptime above 30 days as a unix time. */
const RELATIVE_TTL_MAX = 60 * 60 * 24 * 30;

interface Run {
  token: string;
  stop: boolean;
  /** copy only the keys this accepts (a placement change: the keys that moved to the server) */
  only: ((key: Buffer) => boolean) | null;
  /** the lock holder's token as last seen, while another proxy restores */
  seen?: string;
}

export class Restorer {
  private readonly servers: ServerAddress[];
  private readonly masterCount: number;
  private readonly router: Router;
  private readonly runs = new Map<number, Run>();

  constructor(
    private readonly config: Config,
    private readonly health: HealthTable,
    private readonly stats: ServerStats,
  ) {
    this.servers = [...config.masters, ...config.backups];
    this.masterCount = config.masters.length;
    this.router = new Router(config.distribution, masterNames(config), backupNames(config));
  }

  /** Whether a restore of the server is in progress (warm-up waits for it). */
  running(server: number): boolean {
    return this.runs.has(server);
  }

  /** Starts (or starts again) the restore of a server that has just come back, or that keys moved to (`only` accepts them). */
  start(server: number, only: ((key: Buffer) => boolean) | null = null): void {
    const prev = this.runs.get(server);
    if (prev !== undefined) prev.stop = true;
    // The run it replaces may have copied more: a whole restore stays whole, two filters add up.
    const pf = prev?.only;
    if (prev !== undefined && (pf === null || only === null)) only = null;
    else if (pf !== undefined && pf !== null && only !== null) { const f = only; only = (key) => pf(key) || f(key); }
    const run: Run = { token: randomBytes(8).toString('hex'), stop: false, only };
    this.runs.set(server, run);
    void this.run(server, run).catch((err: Error) => {
      this.figures(server)[S.RESTORE_STATE] = FAILED;
      log.error('restore failed', { server: this.servers[server]!.name, code: codeOf(err), error: err.message });
    }).finally(() => {
      if (this.runs.get(server) === run) this.runs.delete(server);
    });
  }

  /** A reload replaced this restorer (or mcrelay stops): runs stop at their next step. The servers whose restore was cut short, by name. */
  stop(): string[] {
    const cut = [...this.runs.keys()].map((i) => this.servers[i]!.name);
    for (const r of this.runs.values()) r.stop = true;
    this.runs.clear();
    return cut;
  }

  /**
   * After a reload: the restores the previous restorer cut short start again
   * for the servers still configured and not down (from the beginning: every
   * copy is an add checked against its source, so keys copied already are
   * skipped). A server down again gets a new restore when it comes back.
   */
  resume(names: string[]): void {
    for (const name of names) {
      const i = this.servers.findIndex((s) => s.name === name);
      if (i < 0 || this.health.state(i) === DOWN) continue;
      log.info('restore started again after a reload', { server: name });
      this.start(i);
    }
  }

  private figures(server: number): Float64Array {
    return this.stats.block(this.stats.workers, server);
  }

  /** The server the lock lives on: the first of the other pool, then of its own, that is up. */
  private lockServer(server: number): ServerAddress | null {
    const order = server < this.masterCount
      ? [...this.servers.keys()].slice(this.masterCount).concat([...this.servers.keys()].slice(0, this.masterCount))
      : [...this.servers.keys()];
    for (const i of order) if (i !== server && this.health.state(i) !== DOWN) return this.servers[i]!;
    return null;
  }

  private async run(server: number, run: Run): Promise<void> {
    const name = this.servers[server]!.name;
    const f = this.figures(server);
    f[S.RESTORE_STATE] = RUNNING;
    f[S.RESTORE_COPIED] = 0;
    f[S.RESTORE_SKIPPED] = 0;
    f[S.RESTORE_SECONDS] = 0;
    const t0 = Date.now();
    // One proxy copies; the others wait for it to finish, or take over if it dies.
    const lockAt = this.lockServer(server);
    if (lockAt === null) { f[S.RESTORE_STATE] = FAILED; log.warn('restore not started: no server to hold its lock', { server: name }); return; }
    const lockKey = LOCK_PREFIX + name;
    for (;;) {
      if (run.stop) return;
      const got = await exchange(lockAt, `add ${lockKey} 0 ${LOCK_TTL_S} ${run.token.length}\r\n${run.token}\r\n`, this.config.timeoutMs, lines(1));
      if (got.text === 'STORED\r\n') break;
      const held = await exchange(lockAt, `get ${lockKey} ${DONE_PREFIX}${name}\r\n`, this.config.timeoutMs, (t) => t.endsWith('END\r\n'));
      const holder = /VALUE mcrelay:restore:\S+ \d+ \d+\r\n(\w+)\r\n/.exec(held.text ?? '')?.[1];
      const done = /VALUE mcrelay:restored:\S+ \d+ \d+\r\n(\w+)\r\n/.exec(held.text ?? '')?.[1];
      if (holder === undefined && done !== undefined && done === run.seen) {
        f[S.RESTORE_STATE] = DONE;
        log.info('restore done by another proxy', { server: name });
        return;
      }
      if (holder !== undefined) run.seen = holder;
      await sleep(WAIT_MS);
    }
    const renew = setInterval(() => { void exchange(lockAt, `touch ${lockKey} ${LOCK_TTL_S}\r\n`, this.config.timeoutMs, lines(1)); }, RENEW_MS);
    renew.unref();
    log.info('restore started', { server: name });
    const progress = setInterval(() => {
      f[S.RESTORE_SECONDS] = (Date.now() - t0) / 1000;
      log.info('restore progress', { server: name, copied: f[S.RESTORE_COPIED], skipped: f[S.RESTORE_SKIPPED], keysPerSecond: Math.round(f[S.RESTORE_COPIED]! / ((Date.now() - t0) / 1000)) });
    }, PROGRESS_LOG_MS);
    progress.unref();
    try {
      const isMaster = server < this.masterCount;
      const sources = isMaster ? [...this.servers.keys()].slice(this.masterCount) : [...this.servers.keys()].slice(0, this.masterCount);
      let unavailable = 0;
      let failed = 0;
      for (const source of sources) {
        if (run.stop) return;
        if (this.health.state(source) === DOWN) { failed++; continue; }
        const r = await this.copyFrom(source, server, run);
        if (r === 'unavailable') unavailable++;
        else if (r === 'failed') failed++;
      }
      if (run.stop) return;
      f[S.RESTORE_SECONDS] = (Date.now() - t0) / 1000;
      const summary = { server: name, copied: f[S.RESTORE_COPIED], skipped: f[S.RESTORE_SKIPPED], seconds: f[S.RESTORE_SECONDS], keysPerSecond: Math.round(f[S.RESTORE_COPIED]! / Math.max(0.001, f[S.RESTORE_SECONDS]!)) };
      if (unavailable > 0 && unavailable + failed === sources.length) {
        f[S.RESTORE_STATE] = UNAVAILABLE;
        log.warn('restore unavailable: no source lists its keys (lru_crawler off or refused); warm-up on reads carries on', summary);
      } else if (failed > 0 || unavailable > 0) {
        f[S.RESTORE_STATE] = FAILED;
        log.warn('restore incomplete: a source could not be read to the end', { ...summary, failed, unavailable });
      } else {
        f[S.RESTORE_STATE] = DONE;
        log.info('restore done', summary);
      }
    } finally {
      clearInterval(renew);
      clearInterval(progress);
      if (f[S.RESTORE_STATE] === DONE || f[S.RESTORE_STATE] === UNAVAILABLE) {
        await exchange(lockAt, `set ${DONE_PREFIX}${name} 0 ${LOCK_TTL_S * 6} ${run.token.length}\r\n${run.token}\r\n`, this.config.timeoutMs, lines(1));
      }
      await exchange(lockAt, `delete ${lockKey}\r\n`, this.config.timeoutMs, lines(1));
    }
  }

  /** Copies every key of `source` that belongs to `target`; what became of it. */
  private async copyFrom(source: number, target: number, run: Run): Promise<'done' | 'unavailable' | 'failed'> {
    const from = new MetaClient(this.servers[source]!, this.config.timeoutMs);
    const to = new MetaClient(this.servers[target]!, this.config.timeoutMs);
    const f = this.figures(target);
    const isMaster = target < this.masterCount;
    const perKeyMs = 1000 / this.config.restoreKeysPerSecond;
    let nextAt = Date.now();
    let inflight = 0;
    let broken = false;
    const idle: Array<() => void> = [];
    const copy = async (key: Buffer): Promise<void> => {
      const tok = validKey(key, 0, key.length) ? key.toString('latin1') : null;
      const token = tok ?? key.toString('base64');
      const b = tok === null ? ' b' : '';
      const got = await from.request(`mg ${token} v f t c${b}\r\n`);
      if (got === null) { broken = true; return; }
      if (!got.line.startsWith('VA ') || got.data === null) { f[S.RESTORE_SKIPPED]!++; return; }
      const flag = (c: string): string | undefined => got.line.split(' ').find((t) => t[0] === c)?.slice(1);
      const ttl = Number(flag('t') ?? -1);
      const cas = flag('c');
      const exptime = ttl < 0 ? 0 : ttl > RELATIVE_TTL_MAX ? Math.floor(Date.now() / 1000) + ttl : ttl;
      if (ttl === 0) { f[S.RESTORE_SKIPPED]!++; return; } // expiring this second
      const stored = await to.request(Buffer.concat([
        Buffer.from(`ms ${token} ${got.data.length} F${flag('f') ?? 0} T${exptime} ME${b}\r\n`, 'latin1'), got.data, Buffer.from('\r\n'),
      ]));
      if (stored === null) { broken = true; return; }
      if (!stored.line.startsWith('HD')) { f[S.RESTORE_SKIPPED]!++; return; }
      // Written or deleted through a proxy since the read: the copy may be older than that.
      const again = await from.request(`mg ${token} c${b}\r\n`);
      if (again === null || !again.line.startsWith('HD') || again.line.split(' ').find((t) => t[0] === 'c')?.slice(1) !== cas) {
        await to.request(`md ${token}${b}\r\n`);
        f[S.RESTORE_SKIPPED]!++;
        return;
      }
      f[S.RESTORE_COPIED]!++;
    };
    const schedule = async (key: Buffer): Promise<void> => {
      while (inflight >= this.config.restoreMaxInflight) await new Promise<void>((r) => idle.push(r));
      const wait = nextAt - Date.now();
      nextAt = Math.max(nextAt, Date.now()) + perKeyMs;
      if (wait > 0) await sleep(wait);
      inflight++;
      void copy(key).finally(() => { inflight--; idle.shift()?.(); });
    };
    const onKey = async (key: Buffer): Promise<boolean> => {
      this.router.route(key, 0, key.length);
      const owner = isMaster ? this.router.master : (this.router.backup < 0 ? -1 : this.masterCount + this.router.backup);
      if (owner !== target || isProxyKey(key) || (run.only !== null && !run.only(key))) return !broken;
      await schedule(key);
      return !broken && !run.stop;
    };
    try {
      let result = await this.dump(this.servers[source]!, run, onKey);
      if (result === 'unavailable') {
        // An mcrelay as the source (DESIGN.md's backup relay) has no crawler of
        // its own: its servers are dumped directly, and every key still read
        // through it, which routes it.
        const inner = await relayServers(this.servers[source]!, this.config.timeoutMs);
        for (const address of inner) {
          result = await this.dump(address, run, onKey);
          if (result !== 'done') break;
        }
      }
      while (inflight > 0) await new Promise<void>((r) => idle.push(r));
      if (result !== 'done') return result;
      return broken ? 'failed' : 'done';
    } finally {
      from.close();
      to.close();
    }
  }

  /** A source's dump (backend/metadump.ts), ended early once the run stops. */
  private async dump(address: ServerAddress, run: Run, onKey: (key: Buffer) => Promise<boolean>): Promise<'done' | 'unavailable' | 'failed'> {
    const { end } = await metadump(address, async (key) => (await onKey(key)) && !run.stop);
    return end === 'stopped' ? 'failed' : end;
  }
}

/** The servers an mcrelay reads from (its masters, from `stats servers`); none for anything else. */
async function relayServers(address: ServerAddress, timeoutMs: number): Promise<ServerAddress[]> {
  const { text } = await exchange(address, 'stats servers\r\n', timeoutMs, (t) => t.endsWith('END\r\n'));
  const out: ServerAddress[] = [];
  for (const m of (text ?? '').matchAll(/^STAT (.+):role master\r$/gm)) {
    const a = parseServerAddress(m[1]!);
    if (typeof a !== 'string') out.push(a);
  }
  return out;
}
