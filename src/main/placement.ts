// Where keys live, across reloads that change it (issue 20): a master or a
// backup added, removed or moved in its list, or another distribution.
//
//   reload: placement P --> N
//     every server S of N gets N appended to its chain: the placements since it
//     was last swept; S is clean when its chain is one placement
//     S may now own keys one of its chain gave to another server: it "gains"
//       --> RECOVERING (no reads from it) --> swept --> WARMING (a master with
//           backups: misses filled from the backup) and restored, the moved
//           keys only --> UP
//     S only loses keys (or gains some with no backup pool to read them from)
//       --> stays UP, swept in the background
//
// The sweep walks S's own dump (lru_crawler metadump) and deletes every item
// that S did not own under every placement of its chain, and whose cas is below
// a mark taken on S before the switch (takeMarks()). Those are the copies that
// may be stale: a key S held before it went elsewhere, was written there, and
// came back (a change reverted); or anything a server new to the list held.
// Items stored since the mark (writes under N, warm-up fills, the restore's
// copies, other proxies' writes) stay; one written under P between the mark
// and the switch is either still S's under N or not served by S, and deleted
// by the sweep of any later change that gives it back to S (the key is then
// not S's under every placement of that chain). The dump lists what is really
// there, so a key deleted while it lived elsewhere is found too, which a walk
// of the backups' keys would miss.

import { createHash, randomBytes } from 'node:crypto';
import { backupNames, masterNames, type Config, type Distribution, type ServerAddress } from '../config/config.js';
import { Router } from '../routing/router.js';
import { exchange } from '../backend/server-request.js';
import { log } from '../log.js';
import { MetaClient } from './meta-client.js';
import { isProxyKey, metadump } from '../backend/metadump.js';
import { DONE, FAILED, RUNNING, S, UNAVAILABLE } from '../shared/server-stats.js';

/** A switch time stays readable this long past itself, for a proxy reloaded late. */
const SWITCH_RECORD_EXTRA_S = 300;

/** Deletes a sweep has in flight on its connection, at most. */
const SWEEP_INFLIGHT = 64;

export interface Placement {
  readonly distribution: Distribution;
  readonly masters: readonly string[];
  readonly backups: readonly string[];
}

export function placementOf(config: Config): Placement {
  return { distribution: config.distribution, masters: masterNames(config), backups: backupNames(config) };
}

export function samePlacement(a: Placement, b: Placement): boolean {
  return a.distribution === b.distribution && sameList(a.masters, b.masters) && sameList(a.backups, b.backups);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * The servers of one pool that may own, under `next`, keys that `old` gave to
 * another server (or that `old`'s list did not have). From the shape of the
 * change, not from keys: a superset where an exact answer would take a scan.
 *   jump: a renamed slot's new server; the slots past the old count (grown);
 *         every server (shrunk: the removed slots' keys spread over all)
 *   magent (modulo): a renamed slot's server; every server if the count changed
 *   ketama: added servers; every server if one was removed (its arcs go to neighbours)
 * Another distribution: every server (but a pool of the same one server).
 */
export function gainers(oldDist: Distribution, old: readonly string[], nextDist: Distribution, next: readonly string[]): Set<string> {
  const all = new Set(next);
  // One server before and after: it owns every key under any distribution.
  if (old.length === 1 && next.length === 1 && old[0] === next[0]) return new Set();
  if (oldDist !== nextDist || old.length === 0) return all;
  if (nextDist === 'ketama') {
    if (old.some((n) => !next.includes(n))) return all;
    return new Set(next.filter((n) => !old.includes(n)));
  }
  if (next.length < old.length || (nextDist === 'magent' && next.length !== old.length)) return all;
  return new Set(next.filter((n, i) => i >= old.length || old[i] !== n));
}

/** One placement, as a key -> owner function for each pool. */
class Owners {
  private readonly router: Router;
  constructor(readonly placement: Placement) {
    this.router = new Router(placement.distribution, placement.masters, placement.backups);
  }
  /** The name of the key's master (pool 'masters') or backup (pool 'backups'); null if that pool is empty. */
  owner(key: Buffer, pool: Pool): string | null {
    this.router.route(key, 0, key.length);
    if (pool === 'masters') return this.placement.masters[this.router.master] ?? null;
    return this.router.backup < 0 ? null : this.placement.backups[this.router.backup]!;
  }
}

export type Pool = 'masters' | 'backups';

/** A server's placements since it was last swept (or since mcrelay started). */
interface Chain { pool: Pool; owners: Owners[] }

function chainKey(pool: Pool, name: string): string {
  return `${pool}:${name}`;
}

/** Cas marks taken before a switch, by chainKey: an item stored on the server since has at least its mark. */
export type Marks = ReadonlyMap<string, bigint>;

export class Placements {
  private current: Owners;
  private readonly chains = new Map<string, Chain>();
  /** the marks taken before the last switch, for the servers not swept since */
  private marks: Map<string, bigint> = new Map();

  constructor(config: Config) {
    this.current = new Owners(placementOf(config));
    this.reset();
  }

  get placement(): Placement { return this.current.placement; }

  /** Every server of the current placement is taken as clean. */
  private reset(): void {
    this.chains.clear();
    for (const pool of ['masters', 'backups'] as const) {
      for (const name of this.current.placement[pool]) this.chains.set(chainKey(pool, name), { pool, owners: [this.current] });
    }
  }

  /**
   * The placement changes to `next`: each server's chain gets it. The servers
   * that gain keys (may serve stale copies until swept), and those that only
   * need a sweep (they lost keys), by pool and name. `marks`: taken on the
   * servers before this proxy placed any key by `next` (takeMarks()); a
   * sweep deletes only below them, and a server without one takes its own.
   */
  change(next: Placement, marks: Marks): { gain: Set<string>; sweep: Set<string> } {
    // Only the latest marks: an item written since an earlier one, under the placement between, may be stale under the next.
    this.marks = new Map(marks);
    const owners = new Owners(next);
    const gain = new Set<string>();
    const sweep = new Set<string>();
    const kept = new Map<string, Chain>();
    for (const pool of ['masters', 'backups'] as const) {
      for (const name of next[pool]) {
        const key = chainKey(pool, name);
        // A server new to the list: it was clean under nothing, so it owned nothing (its chain starts with the previous placement).
        const chain = this.chains.get(key) ?? { pool, owners: [this.current] };
        const owners2 = [...chain.owners, owners];
        kept.set(key, { pool, owners: owners2 });
        for (const o of chain.owners) {
          const p = o.placement;
          if (gainers(p.distribution, p[pool], next.distribution, next[pool]).has(name)) gain.add(key);
        }
        if (!gain.has(key) && !chain.owners.every((o) => sameOwnership(o.placement, next, pool, name))) sweep.add(key);
      }
    }
    this.chains.clear();
    for (const [k, c] of kept) {
      // A server whose keys did not move is clean under the new placement as it was under the old.
      this.chains.set(k, gain.has(k) || sweep.has(k) ? c : { pool: c.pool, owners: [owners] });
    }
    this.current = owners;
    return { gain, sweep };
  }

  /** Whether the server needs a sweep before it is clean. */
  pending(pool: Pool, name: string): boolean {
    return (this.chains.get(chainKey(pool, name))?.owners.length ?? 1) > 1;
  }

  /**
   * The server owned `key` under every placement of its chain: its copy, if it
   * has one, is not stale. False for a key it gained.
   */
  heldThroughout(pool: Pool, name: string, key: Buffer): boolean {
    const chain = this.chains.get(chainKey(pool, name));
    if (chain === undefined) return false;
    for (const o of chain.owners) if (o.owner(key, pool) !== name) return false;
    return true;
  }

  /** Ownership test for the restore: a key the server owns now but did not own throughout (a moved key), as a function. */
  moved(pool: Pool, name: string): (key: Buffer) => boolean {
    const chain = this.chains.get(chainKey(pool, name));
    if (chain === undefined || chain.owners.length < 2) return () => false;
    const owners = [...chain.owners];
    return (key) => owners.some((o) => o.owner(key, pool) !== name);
  }

  /**
   * Sweeps the server: takes a cas mark, then deletes every item below it that
   * the server did not own throughout its chain. True when the dump was read to
   * the end (the server is then clean under the current placement).
   */
  async sweep(pool: Pool, name: string, address: ServerAddress, timeoutMs: number, stopped: () => boolean, figures: Float64Array): Promise<{ ok: boolean; deleted: number }> {
    const key = chainKey(pool, name);
    const chain = this.chains.get(key);
    if (chain === undefined || chain.owners.length < 2) return { ok: true, deleted: 0 };
    const owners = [...chain.owners];
    figures[S.SWEEP_STATE] = RUNNING;
    figures[S.SWEEP_WALKED] = 0;
    figures[S.SWEEP_DELETED] = 0;
    const mark = this.marks.get(key) ?? await casMark(address, timeoutMs);
    if (mark === null) { figures[S.SWEEP_STATE] = FAILED; return { ok: false, deleted: 0 }; }
    const client = new MetaClient(address, timeoutMs);
    let deleted = 0;
    let broken = false;
    const inflight: Array<Promise<unknown>> = [];
    try {
      const { end } = await metadump(address, async (k, cas) => {
        if (stopped()) return false;
        figures[S.SWEEP_WALKED]!++;
        if (cas >= mark || isProxyKey(k)) return true;
        if (owners.every((o) => o.owner(k, pool) === name)) return true;
        const token = k.toString('base64');
        // Only the item the dump listed: one written since (a write that raced the dump) has another cas (EX) and stays.
        inflight.push(client.request(`md ${token} b C${cas}\r\n`).then((r) => {
          if (r === null) broken = true;
          else if (r.line.startsWith('HD')) figures[S.SWEEP_DELETED] = ++deleted;
          else if (!r.line.startsWith('NF') && !r.line.startsWith('EX')) broken = true;
        }));
        if (inflight.length >= SWEEP_INFLIGHT) await Promise.all(inflight.splice(0));
        return !broken;
      });
      await Promise.all(inflight.splice(0));
      const ok = end === 'done' && !broken && !stopped();
      // Clean under the current placement, unless the placement changed again meanwhile (then the new chain is longer).
      if (ok && this.chains.get(key) === chain) {
        this.chains.set(key, { pool, owners: [owners.at(-1)!] });
        this.marks.delete(key);
      }
      if (end === 'unavailable') log.warn('placement sweep unavailable: the server lists no keys (lru_crawler off?)', { server: name });
      figures[S.SWEEP_STATE] = ok ? DONE : end === 'unavailable' ? UNAVAILABLE : FAILED;
      return { ok, deleted };
    } finally {
      client.close();
    }
  }
}

/** Whether `name` owns the same keys under both placements (same pool, same distribution, same place). */
function sameOwnership(a: Placement, b: Placement, pool: Pool, name: string): boolean {
  return sameList(a[pool], b[pool]) && a[pool].includes(name) && (a.distribution === b.distribution || a[pool].length === 1);
}

/**
 * A cas mark on every server of `config`, taken before the switch to its
 * placement: items below one were stored before any key was placed by it here.
 * A server that does not answer has none (its sweep takes its own).
 */
export async function takeMarks(config: Config): Promise<Marks> {
  const servers = [...config.masters.map((s) => ['masters', s] as const), ...config.backups.map((s) => ['backups', s] as const)];
  const marks = new Map<string, bigint>();
  await Promise.all(servers.map(async ([pool, server]) => {
    const mark = await casMark(server, config.timeoutMs);
    if (mark !== null) marks.set(chainKey(pool, server.name), mark);
  }));
  return marks;
}

/** The server's next cas id: an item stored from now on has at least this one. */
async function casMark(address: ServerAddress, timeoutMs: number): Promise<bigint | null> {
  const key = `mcrelay:mark:${randomBytes(6).toString('hex')}`;
  const { text } = await exchange(address, `set ${key} 0 10 1\r\nx\r\ngets ${key}\r\ndelete ${key}\r\n`, timeoutMs, (t) => /(DELETED|NOT_FOUND|ERROR)\r\n$/.test(t));
  const m = /VALUE \S+ \d+ \d+ (\d+)\r\n/.exec(text ?? '');
  return m === null ? null : BigInt(m[1]!) + 1n;
}

/**
 * When the change from `old`'s placement to `next` takes effect, agreed among
 * the entry proxies: the first to reload it stores now + delayMs under a key
 * named by both placements (add: the first one wins) on the first server of
 * `old`'s backups, then masters, that answers; every other proxy reloading the
 * same change reads it there. All of them switch at that time: until then they
 * place keys as before, so that no two place a key differently (a proxy not
 * reloaded by then still does: operators reload every proxy within the delay).
 * `where` null: no server answered, and the time is now.
 */
export async function agreeSwitch(old: Config, next: Placement, delayMs: number): Promise<{ at: number; where: string | null; first: boolean }> {
  const id = createHash('sha1').update(JSON.stringify([placementOf(old), next])).digest('hex').slice(0, 20);
  const key = `mcrelay:switch:${id}`;
  const proposed = String(Date.now() + delayMs);
  const ttl = Math.ceil(delayMs / 1000) + SWITCH_RECORD_EXTRA_S;
  for (const server of [...old.backups, ...old.masters]) {
    const added = await exchange(server, `add ${key} 0 ${ttl} ${proposed.length}\r\n${proposed}\r\n`, old.timeoutMs, (t) => t.endsWith('\r\n'));
    if (added.text === 'STORED\r\n') return { at: Number(proposed), where: server.name, first: true };
    if (added.text !== 'NOT_STORED\r\n') continue;
    const got = await exchange(server, `get ${key}\r\n`, old.timeoutMs, (t) => t.endsWith('END\r\n'));
    const m = /^VALUE \S+ \d+ \d+\r\n(\d+)\r\nEND\r\n$/.exec(got.text ?? '');
    if (m !== null) return { at: Number(m[1]), where: server.name, first: false };
  }
  return { at: Date.now(), where: null, first: false };
}
