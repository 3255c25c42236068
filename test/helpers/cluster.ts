// The deployment of DESIGN.md, started for a test: four masters, two backups and
// two entry proxies with identical flags,
//
//   e1, e2: mcrelay -s m0 -s m1 -s m2 -s m3 -b b0 -b b1 --workers 2 ...
//
// plus what recovery tests need around it: `stats servers` read as a table,
// waiting for a server state on every entry, finding which server holds a key
// (by asking the servers themselves), and pipelined direct meta reads of many
// keys (value, client flags, remaining TTL).
import { startMemcached, startProxy, sleep, type Proc } from './procs.js';
import { WireClient } from './wire.js';
import { getMany } from './mc.js';

export interface Cluster {
  masters: Proc[];
  backups: Proc[];
  entries: [Proc, Proc];
  /** every process started for this cluster, replaced ones included */
  started: Proc[];
  /** the flags both entries were started with */
  flags: string[];
}

export const TIMEOUT_MS = 300;
export const RETRY_MS = 200;

/** Starts 6 memcached and 2 entry proxies; `extra` flags go to both proxies. */
export async function startCluster(extra: string[] = []): Promise<Cluster> {
  const started: Proc[] = [];
  try {
    const mcs = await Promise.all(Array.from({ length: 6 }, () => startMemcached()));
    started.push(...mcs);
    const masters = mcs.slice(0, 4);
    const backups = mcs.slice(4);
    const flags = [
      ...masters.flatMap((m) => ['-s', m.addr]),
      ...backups.flatMap((b) => ['-b', b.addr]),
      '--workers', '2', '--timeout', String(TIMEOUT_MS), '--retry-interval', String(RETRY_MS),
      ...extra,
    ];
    const e1 = await startProxy(flags);
    started.push(e1);
    const e2 = await startProxy(flags);
    started.push(e2);
    return { masters, backups, entries: [e1, e2], started, flags };
  } catch (err) {
    await stopAll(started);
    throw err;
  }
}

/** Resumes anything stopped, then kills every process of the cluster. */
export async function stopCluster(c: Cluster | undefined): Promise<void> {
  if (c !== undefined) await stopAll(c.started);
}

async function stopAll(procs: Proc[]): Promise<void> {
  for (const p of procs) p.signal('SIGCONT');
  await Promise.all(procs.map((p) => p.stop('SIGKILL')));
}

/** Restarts a killed memcached, empty, on the same port; it replaces the old one in the cluster. */
export async function restartMemcached(c: Cluster, old: Proc): Promise<Proc> {
  const p = await startMemcached({ port: old.port });
  c.started.push(p);
  const i = c.masters.indexOf(old);
  if (i >= 0) c.masters[i] = p;
  const j = c.backups.indexOf(old);
  if (j >= 0) c.backups[j] = p;
  return p;
}

export async function withDirect<T>(port: number, f: (c: WireClient) => Promise<T>): Promise<T> {
  const c = await WireClient.connect(port);
  try { return await f(c); } finally { c.close(); }
}

/** `stats servers` of an entry: address -> field -> value. */
export type ServerTable = Map<string, Map<string, string>>;

export async function serverStats(port: number): Promise<{ raw: string; table: ServerTable }> {
  const raw = await withDirect(port, (c) => c.request('stats servers\r\n', 'END\r\n', 3000));
  const table: ServerTable = new Map();
  for (const line of raw.split('\r\n')) {
    // STAT <host>:<port>:<field> <value>
    const m = /^STAT (.+):([^:\s]+) (\S*)$/.exec(line);
    if (m === null) continue;
    let row = table.get(m[1]!);
    if (row === undefined) table.set(m[1]!, row = new Map());
    row.set(m[2]!, m[3]!);
  }
  return { raw, table };
}

export async function stateOf(port: number, addr: string): Promise<string | undefined> {
  return (await serverStats(port)).table.get(addr)?.get('state');
}

/**
 * Polls `stats servers` of every entry until each shows `addr` in one of
 * `states`; returns how long that took, or throws with what was seen last.
 */
export async function waitState(entries: readonly Proc[], addr: string, states: readonly string[], timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  let seen: Array<string | undefined> = [];
  while (Date.now() - t0 < timeoutMs) {
    seen = await Promise.all(entries.map((e) => stateOf(e.port, addr)));
    if (seen.every((s) => s !== undefined && states.includes(s))) return Date.now() - t0;
    await sleep(20);
  }
  throw new Error(`${addr} not ${states.join('|')} on every entry within ${timeoutMs} ms; last seen: ${seen.join(', ')}`);
}

/** Which server of the list holds each key, asked of the servers directly. */
export async function ownership(servers: readonly Proc[], keys: readonly string[]): Promise<Map<string, number>> {
  const owner = new Map<string, number>();
  for (let s = 0; s < servers.length; s++) {
    const { found } = await withDirect(servers[s]!.port, (c) => getMany(c, keys));
    for (const k of found.keys()) {
      if (owner.has(k)) throw new Error(`${k} held by two servers of one pool (${owner.get(k)} and ${s})`);
      owner.set(k, s);
    }
  }
  return owner;
}

/** A server's own copy of a key, as `mg <key> k v f t` shows it; ttl -1 is no expiry. */
export interface Held { value: string; flags: number; ttl: number; cas?: string }

/** A meta miss: EN, with the flags that echo (k, O) when asked. */
export function isMiss(line: string): boolean {
  return line === 'EN' || line.startsWith('EN ');
}

/** Parses the meta replies (VA ... k<key> .../EN) at the start of buf; stops at an incomplete one. */
export function parseMeta(buf: Buffer): { replies: Array<{ key: string | null; item: Held | null; line: string }>; consumed: number } {
  const replies: Array<{ key: string | null; item: Held | null; line: string }> = [];
  let pos = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', pos, 'latin1');
    if (eol < 0) break;
    const line = buf.toString('latin1', pos, eol);
    if (line.startsWith('VA ')) {
      const t = line.split(' ');
      const len = Number(t[1]);
      if (buf.length < eol + 2 + len + 2) break;
      const item: Held = { value: buf.toString('latin1', eol + 2, eol + 2 + len), flags: 0, ttl: -1 };
      let key: string | null = null;
      for (const f of t.slice(2)) {
        if (f[0] === 'f') item.flags = Number(f.slice(1));
        else if (f[0] === 't') item.ttl = Number(f.slice(1));
        else if (f[0] === 'k') key = f.slice(1);
        else if (f[0] === 'c') item.cas = f.slice(1);
      }
      replies.push({ key, item, line });
      pos = eol + 2 + len + 2;
      continue;
    }
    replies.push({ key: null, item: null, line });
    pos = eol + 2;
  }
  return { replies, consumed: pos };
}

/**
 * Pipelined `mg <key> v f t` for many keys (window at a time) on one connection:
 * the value, flags and remaining TTL of each key, null for a miss (EN).
 */
export async function metaGetMany(c: WireClient, keys: readonly string[], window = 500, flags = 'v f t'): Promise<Map<string, Held | null>> {
  const out = new Map<string, Held | null>();
  for (let i = 0; i < keys.length; i += window) {
    const batch = keys.slice(i, i + window);
    c.write(Buffer.from(batch.map((k) => `mg ${k} ${flags}\r\n`).join(''), 'latin1'));
    const b = await c.readUntil((x) => parseMeta(x).replies.length >= batch.length, 10_000);
    const { replies, consumed } = parseMeta(b);
    if (replies.length !== batch.length || consumed !== b.length) {
      throw new Error(`mg batch: ${replies.length} of ${batch.length} replies${c.closed ? ', connection closed' : ''}: ${JSON.stringify(b.toString('latin1', 0, 200))}`);
    }
    replies.forEach((r, j) => {
      if (r.item === null && !isMiss(r.line)) throw new Error(`mg ${batch[j]}: ${r.line}`);
      out.set(batch[j]!, r.item);
    });
  }
  return out;
}
