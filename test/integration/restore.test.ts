// Eager restore of a returning server (issue 16), on the deployment of
// DESIGN.md (4 masters, 2 backups, 2 entry proxies), with no client reading:
// only the restore can bring the keys back.
//
//   master   20,000 keys (TTL 0 and 60-600 s); kill -9 of a master; 2,000
//            writes and 1,000 deletes of its keys through the other entry; it
//            comes back empty: within 60 s >= 99.9% of what the backups hold for
//            it is on it, TTLs within 2 s, no deleted key back, no older value
//   backup   a backup killed and restarted empty: every live key of the
//            masters that routes to it is back on it
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sleep, startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { setMany } from '../helpers/mc.js';
import {
  metaGetMany, ownership, restartMemcached, serverStats, startCluster, stopCluster, waitState, withDirect, type Cluster, type Held,
} from '../helpers/cluster.js';

let cluster: Cluster | undefined;

function ttlOf(i: number): number {
  return i % 2 === 0 ? 0 : 60 + (i % 541);
}

async function store(c: WireClient, prefix: string, n: number): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; i < n; i += 500) {
    const lines: string[] = [];
    for (let j = i; j < Math.min(n, i + 500); j++) {
      const k = `${prefix}:${j}`;
      const v = `${prefix}-v${j}`;
      keys.push(k);
      lines.push(`set ${k} ${j % 7} ${ttlOf(j)} ${v.length}\r\n${v}\r\n`);
    }
    c.write(lines.join(''));
    const got = await c.readUntil((b) => b.toString('latin1').split('STORED\r\n').length > lines.length, 10_000);
    assert.is(got.toString('latin1').split('STORED\r\n').length - 1, lines.length, 'stored');
  }
  return keys;
}

/** Every key's item on a pool, the first server holding it. */
async function heldBy(servers: Cluster['masters'], keys: readonly string[]): Promise<Map<string, Held>> {
  const out = new Map<string, Held>();
  for (const s of servers) {
    const m = await withDirect(s.port, (d) => metaGetMany(d, keys));
    for (const [k, v] of m) if (v !== null && !out.has(k)) out.set(k, v);
  }
  return out;
}

async function eventuallyOn(server: Cluster['masters'][number], want: ReadonlyMap<string, Held>, ratio: number, ms: number): Promise<Map<string, Held | null>> {
  const t0 = Date.now();
  const keys = [...want.keys()];
  for (;;) {
    const got = await withDirect(server.port, (d) => metaGetMany(d, keys));
    const present = keys.filter((k) => got.get(k) !== null).length;
    if (present >= ratio * keys.length || Date.now() - t0 > ms) return got;
    await sleep(500);
  }
}

test('a master killed and restarted empty gets back >= 99.9% of its keys within 60 s with nobody reading: TTLs kept, no deleted key, no older value', async () => {
  const c = cluster = await startCluster(['--warmup-seconds', '30']);
  const clients: WireClient[] = [];
  try {
    const [e1, e2] = c.entries;
    const [c1, c2] = [await WireClient.connect(e1.port), await WireClient.connect(e2.port)];
    clients.push(c1, c2);
    const keys = await store(c1, 'rs', 20_000);
    const owner = await ownership(c.masters, keys);
    const mine = keys.filter((k) => owner.get(k) === 0);
    const killed = c.masters[0]!;
    await killed.stop();
    // Writes and deletes of its keys through the other entry while it is away.
    const written = mine.slice(0, 2000);
    const deleted = mine.slice(2000, 3000);
    assert.equal(await setMany(c2, written.map((k) => [k, `new-${k}`])), [], 'writes during the outage');
    c2.write(deleted.map((k) => `delete ${k}\r\n`).join(''));
    await c2.readUntil((b) => b.toString('latin1').split('\r\n').length > deleted.length, 10_000);
    await waitState([e1, e2], killed.addr, ['down'], 5000);
    const back = await restartMemcached(c, killed);
    const tBack = Date.now();
    await waitState([e1, e2], back.addr, ['warming', 'up'], 5000);
    const onBackups = await heldBy(c.backups, mine);
    const got = await eventuallyOn(back, onBackups, 0.999, 60_000);
    const took = Date.now() - tBack;
    const present = [...onBackups.keys()].filter((k) => got.get(k) !== null);
    assert.ok(present.length >= 0.999 * onBackups.size, `${present.length} of ${onBackups.size} keys back on the master ${took} ms after its return`);
    const bad: string[] = [];
    for (const k of present) {
      const m = got.get(k)!;
      const b = onBackups.get(k)!;
      if (m.value !== b.value) bad.push(`${k}: ${m.value}, the backup has ${b.value}`);
      if (m.flags !== b.flags) bad.push(`${k}: flags ${m.flags}, the backup has ${b.flags}`);
      if ((m.ttl === -1) !== (b.ttl === -1) || Math.abs(m.ttl - b.ttl) > 2 + took / 1000) bad.push(`${k}: ttl ${m.ttl}, the backup had ${b.ttl}`);
    }
    for (const k of deleted) if (got.get(k) !== undefined && got.get(k) !== null) bad.push(`deleted ${k} came back`);
    const deletedNow = await withDirect(back.port, (d) => metaGetMany(d, deleted));
    for (const k of deleted) if (deletedNow.get(k) !== null) bad.push(`deleted ${k} is on the master`);
    assert.equal(bad.slice(0, 10), [], `${bad.length} wrong`);
    // One proxy copied; the other saw it done (it looks at the lock every second).
    const figure = (field: string) => Promise.all([e1, e2].map(async (e) => (await serverStats(e.port)).table.get(back.addr)?.get(field)));
    let states = await figure('restore_state');
    for (let i = 0; i < 50 && states.some((s) => s !== 'done'); i++) { await sleep(100); states = await figure('restore_state'); }
    assert.equal(states, ['done', 'done'], 'restore_state on both entries');
    const copied = (await figure('restore_keys_copied')).map(Number);
    // One holds the lock at a time; a restore cut short (the master marked down again) is taken up by the next.
    const total = copied.reduce((x, y) => x + y, 0);
    assert.ok(total >= present.length * 0.99 && total <= present.length * 1.1, `the entries copied ${copied.join(' + ')} keys: once each, not twice`);
  } finally {
    for (const cl of clients) cl.close();
    await stopCluster(cluster);
    cluster = undefined;
  }
});

test('a backup killed and restarted empty gets back every live key of the masters that routes to it', async () => {
  const c = cluster = await startCluster(['--warmup-seconds', '30']);
  const clients: WireClient[] = [];
  try {
    const [e1, e2] = c.entries;
    const c1 = await WireClient.connect(e1.port);
    clients.push(c1);
    const keys = await store(c1, 'rb', 10_000);
    const owner = await ownership(c.backups, keys);
    const mine = keys.filter((k) => owner.get(k) === 0);
    const killed = c.backups[0]!;
    await killed.stop();
    // A write to each entry, so both see it down.
    for (const e of [e1, e2]) await withDirect(e.port, (d) => setMany(d, mine.slice(0, 20).map((k) => [k, `rb-v${k.split(':')[1]}`])));
    await waitState([e1, e2], killed.addr, ['down'], 5000);
    const back = await restartMemcached(c, killed);
    await waitState([e1, e2], back.addr, ['up'], 5000);
    const onMasters = await heldBy(c.masters, mine);
    const got = await eventuallyOn(back, onMasters, 1, 60_000);
    const missing = [...onMasters.keys()].filter((k) => got.get(k) === null);
    assert.equal(missing.slice(0, 10), [], `${missing.length} of ${onMasters.size} keys not back on the backup`);
    const wrong = [...onMasters].filter(([k, v]) => got.get(k)?.value !== v.value).map(([k]) => k);
    assert.equal(wrong.slice(0, 10), [], 'values as the masters hold them');
  } finally {
    for (const cl of clients) cl.close();
    await stopCluster(cluster);
    cluster = undefined;
  }
});

test('a backup that is an mcrelay (the backup relay of DESIGN.md): its servers are dumped, the keys read through it', async () => {
  const procs: Proc[] = [];
  try {
    const [master, inner] = await Promise.all([startMemcached(), startMemcached()]);
    procs.push(master, inner);
    const relay = await startProxy(['-s', inner.addr, '--workers', '1']);
    procs.push(relay);
    const p = await startProxy(['-s', master.addr, '-b', relay.addr, '--workers', '1', '--timeout', '300', '--retry-interval', '200', '--warmup-seconds', '30']);
    procs.push(p);
    const c = await WireClient.connect(p.port);
    const data = Array.from({ length: 500 }, (_, i): [string, string] => [`rr${i}`, `v${i}`]);
    assert.equal(await setMany(c, data), [], 'stored');
    c.close();
    await sleep(500); // the prober knows the master's identity
    await master.stop();
    await waitState([p], master.addr, ['down'], 5000);
    const again = await startMemcached({ port: master.port });
    procs.push(again);
    const want = new Map(data.map(([k, v]) => [k, { value: v, flags: 0, ttl: -1 } as Held]));
    const got = await eventuallyOn(again, want, 1, 20_000);
    const missing = data.filter(([k]) => got.get(k) === null).map(([k]) => k);
    assert.equal(missing.slice(0, 5), [], `${missing.length} of ${data.length} keys not restored through the relay`);
  } finally {
    await Promise.all(procs.map((x) => x.stop()));
  }
});

test('a backup without lru_crawler: the restore is unavailable, logged once, and warm-up on reads carries on', async () => {
  const procs: Proc[] = [];
  try {
    const [master, backup] = await Promise.all([startMemcached(), startMemcached({ extraArgs: ['-o', 'no_lru_crawler'] })]);
    procs.push(master, backup);
    const p = await startProxy(['-s', master.addr, '-b', backup.addr, '--workers', '1', '--timeout', '300', '--retry-interval', '200', '--warmup-seconds', '30']);
    procs.push(p);
    const c = await WireClient.connect(p.port);
    assert.equal(await setMany(c, [['u1', 'one'], ['u2', 'two']]), [], 'stored');
    await master.stop();
    await c.request('get u1\r\n', 'END\r\n');
    await waitState([p], master.addr, ['down'], 5000);
    const again = await startMemcached({ port: master.port });
    procs.push(again);
    await waitState([p], master.addr, ['warming'], 5000);
    let state: string | undefined;
    for (let i = 0; i < 50 && state !== 'unavailable'; i++) { await sleep(100); state = (await serverStats(p.port)).table.get(master.addr)?.get('restore_state'); }
    assert.is(state, 'unavailable', 'restore_state');
    assert.is(p.output.split('\n').filter((l) => l.includes('restore unavailable')).length, 1, 'logged once');
    assert.is(await c.request('get u2\r\n', 'END\r\n'), 'VALUE u2 0 3\r\ntwo\r\nEND\r\n', 'a read still warms from the backup');
    c.close();
  } finally {
    await Promise.all(procs.map((x) => x.stop()));
  }
});

test.run();
