// A server is down when it fails, not when a connection ends; a master that
// missed no writes is never flushed (issue 21). Real memcached throughout:
//
//   idle timeout   masters with -o idle_timeout=2 close every quiet connection:
//                  5,000 keys and 30 s of idle and sparse traffic lose nothing
//                  (with a backup, and without one)
//   idle reset     a relay resets every idle connection between reads: the same
//   partition      SIGSTOP of a master past the timeout, reads only: after
//                  SIGCONT it keeps every key and goes straight back to up
//   journal        the same with writes through both entry proxies: only the
//                  written keys are deleted on the master, 0 stale reads
//   restart        kill -9 and restart: seen as a restart, no flush
//   refused        memcached at its connection limit (ERROR Too many open
//                  connections): the read fails over, the master is not flushed
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startMemcached, startProxy, sleep, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { getMany, setMany } from '../helpers/mc.js';
import {
  ownership, serverStats, startCluster, stopCluster, waitState, withDirect, type Cluster,
} from '../helpers/cluster.js';
import { FaultRelay } from '../helpers/fault-relay.js';

const started: Proc[] = [];
const clients: WireClient[] = [];
let cluster: Cluster | undefined;

async function teardown(): Promise<void> {
  for (const c of clients.splice(0)) c.close();
  for (const p of started) p.signal('SIGCONT');
  await Promise.all(started.splice(0).map((p) => p.stop()));
  await stopCluster(cluster);
  cluster = undefined;
}

async function mc(extraArgs: string[] = []): Promise<Proc> {
  const p = await startMemcached({ extraArgs });
  started.push(p);
  return p;
}

async function proxy(flags: string[]): Promise<Proc> {
  const p = await startProxy(flags);
  started.push(p);
  return p;
}

async function connect(p: Proc | number): Promise<WireClient> {
  const c = await WireClient.connect(typeof p === 'number' ? p : p.port);
  clients.push(c);
  return c;
}

function items(prefix: string, n: number): Array<[string, string]> {
  return Array.from({ length: n }, (_, i) => [`${prefix}:${i}`, `${prefix}-value-${i}`]);
}

/** How many of `keys` the server holds, asked of it directly. */
async function held(server: Proc | number, keys: readonly string[]): Promise<Map<string, string>> {
  return (await withDirect(typeof server === 'number' ? server : server.port, (c) => getMany(c, keys))).found;
}

/** A server's figure in an entry's `stats servers`. */
async function figure(entry: Proc, addr: string, field: string): Promise<number> {
  return Number((await serverStats(entry.port)).table.get(addr)?.get(field));
}

function downMarks(p: Proc, addr: string): string[] {
  return p.output.split('\n').filter((l) => l.includes('server marked down') && l.includes(addr));
}

function logOf(p: Proc, addr: string): string {
  return p.output.split('\n').filter((l) => l.includes(addr)).join('\n');
}

/** One master, one backup, one proxy in front; n keys stored through it. */
async function single(prefix: string, n: number, workers = 2) {
  const [master, backup] = await Promise.all([mc(), mc()]);
  const p = await proxy(['-s', master.addr, '-b', backup.addr, '--workers', String(workers), '--timeout', '300', '--retry-interval', '200']);
  const data = items(prefix, n);
  const keys = data.map(([k]) => k);
  const c = await connect(p);
  assert.equal(await setMany(c, data), [], 'stored');
  return { master, backup, p, c, keys };
}

test('idle_timeout=2 on the master: 5,000 keys and 30 s of idle and sparse traffic lose nothing; without a backup too', async () => {
  try {
    const [master, backup, lone] = await Promise.all([mc(['-o', 'idle_timeout=2']), mc(), mc(['-o', 'idle_timeout=2'])]);
    const [withBackup, without] = await Promise.all([
      proxy(['-s', master.addr, '-b', backup.addr, '--workers', '2', '--timeout', '300', '--retry-interval', '200']),
      proxy(['-s', lone.addr, '--workers', '2', '--timeout', '300', '--retry-interval', '200']),
    ]);
    const data = items('idle', 5000);
    const keys = data.map(([k]) => k);
    const [a, b] = [await connect(withBackup), await connect(without)];
    assert.equal(await setMany(a, data), [], 'stored through the proxy with a backup');
    assert.equal(await setMany(b, data), [], 'stored through the proxy without a backup');

    // 30 s: quiet stretches longer than the idle timeout, each ended by a few reads.
    const misses: string[] = [];
    const t0 = Date.now();
    for (let round = 0; Date.now() - t0 < 30_000 && round < 10; round++) {
      await sleep(round % 2 === 0 ? 4500 : 2500);
      const sample = Array.from({ length: 20 }, (_, j) => keys[(round * 397 + j * 251) % keys.length]!);
      for (const [c, name] of [[a, 'with backup'], [b, 'without backup']] as const) {
        const { found, errors } = await getMany(c, sample, 5, 4);
        assert.equal(errors, [], `${name}: read errors`);
        for (const k of sample) if (!found.has(k)) misses.push(`${name} round ${round}: ${k}`);
      }
    }
    assert.equal(misses, [], 'reads through the proxies all hit');

    for (const [p, server] of [[withBackup, master], [without, lone]] as const) {
      assert.is((await held(server, keys)).size, keys.length, `${server.addr} keeps every key`);
      assert.equal(downMarks(p, server.addr), [], `${server.addr} never marked down`);
      assert.is(await figure(p, server.addr, 'flushes'), 0, `${server.addr}: no flush`);
      // What makes this test able to fail: memcached did close the quiet connections.
      assert.ok(await figure(p, server.addr, 'reconnects') >= 3, `${server.addr}: idle connections were closed and reopened (${await figure(p, server.addr, 'reconnects')})`);
    }
  } finally {
    await teardown();
  }
});

test('a relay that resets idle connections: reads keep hitting, the master is never marked down nor flushed', async () => {
  let relay: FaultRelay | undefined;
  try {
    const [master, backup] = await Promise.all([mc(), mc()]);
    relay = await new FaultRelay(master.port).listen();
    const relayAddr = `127.0.0.1:${relay.port}`;
    const p = await proxy(['-s', relayAddr, '-b', backup.addr, '--workers', '2', '--timeout', '300', '--retry-interval', '200']);
    const data = items('rst', 5000);
    const keys = data.map(([k]) => k);
    const c = await connect(p);
    assert.equal(await setMany(c, data), [], 'stored');
    const misses: string[] = [];
    let resets = 0;
    for (let round = 0; round < 8; round++) {
      await sleep(300);
      resets += relay.resetAll();
      await sleep(50);
      const sample = keys.slice(round * 600, round * 600 + 600);
      const { found, errors } = await getMany(c, sample, 20, 5);
      assert.equal(errors, [], `round ${round}: read errors`);
      for (const k of sample) if (!found.has(k)) misses.push(k);
    }
    assert.equal(misses, [], 'every read hit');
    assert.is((await held(master, keys)).size, keys.length, 'the master keeps every key');
    assert.equal(downMarks(p, relayAddr), [], 'never marked down');
    assert.is(await figure(p, relayAddr, 'flushes'), 0, 'no flush');
    assert.is(await figure(p, relayAddr, 'backup_reads'), 0, 'no read needed the backup');
    // What makes this test able to fail: connections were reset, and mcrelay saw it.
    assert.ok(resets >= 4, `the relay reset ${resets} idle connections`);
    assert.ok(await figure(p, relayAddr, 'reconnects') >= 1, 'the resets were seen and the connections reopened');
  } finally {
    await relay?.close();
    await teardown();
  }
});

test('partition with reads only: after SIGCONT the master keeps every key and goes straight back to up', async () => {
  try {
    const { master, p, c, keys } = await single('ro', 3000);
    await master.pause();
    try {
      // Reads time out on the master and fail over until it is marked down.
      for (let i = 0; i < 10; i++) await getMany(c, keys.slice(i * 10, i * 10 + 10), 1, 10);
      await waitState([p], master.addr, ['down'], 5000);
      const { found } = await getMany(c, keys);
      assert.is(found.size, keys.length, 'every key read from the backup meanwhile');
    } finally {
      master.signal('SIGCONT');
    }
    await waitState([p], master.addr, ['up'], 5000);
    assert.is((await held(master, keys)).size, keys.length, 'the master kept every key');
    assert.is(await figure(p, master.addr, 'flushes'), 0, 'no flush');
    assert.is(await figure(p, master.addr, 'restarts_seen'), 0, 'not taken for a restart');
    assert.match(logOf(p, master.addr), /"case":"outage, nothing written"/, 'the log says which case it was');
    assert.not.match(logOf(p, master.addr), /server warming/, 'no warm-up: it lacks nothing');
  } finally {
    await teardown();
  }
});

test('partition with writes through both entries: only the written keys go from the master; 0 stale reads through either entry', async () => {
  const c = cluster = await startCluster(['--warmup-seconds', '30']);
  try {
    const [e1, e2] = c.entries;
    const [c1, c2] = [await connect(e1), await connect(e2)];
    const data = items('jr', 4000);
    const keys = data.map(([k]) => k);
    assert.equal(await setMany(c1, data), [], 'stored');
    const owner = await ownership(c.masters, keys);
    const mine = keys.filter((k) => owner.get(k) === 0);
    const via1 = mine.slice(0, 60);
    const via2 = mine.slice(60, 120);
    const deleted = mine.slice(120, 160);
    const untouched = mine.slice(160);
    const frozen = c.masters[0]!;
    await frozen.pause();
    try {
      assert.equal(await setMany(c1, via1.map((k) => [k, `new1-${k}`])), [], 'writes through entry 1 answered');
      assert.equal(await setMany(c2, via2.map((k) => [k, `new2-${k}`])), [], 'writes through entry 2 answered');
      c2.write(deleted.map((k) => `delete ${k}\r\n`).join(''));
      const dels = await c2.readUntil((b) => b.toString().split('\r\n').length > deleted.length, 5000);
      assert.not.match(dels.toString(), /ERROR/, 'deletes answered');
      await waitState([e1, e2], frozen.addr, ['down'], 5000);
    } finally {
      frozen.signal('SIGCONT');
    }
    await waitState([e1, e2], frozen.addr, ['up', 'warming'], 5000);
    const expected = new Map<string, string | null>();
    for (const k of mine) expected.set(k, `jr-value-${k.split(':')[1]}`);
    for (const k of via1) expected.set(k, `new1-${k}`);
    for (const k of via2) expected.set(k, `new2-${k}`);
    for (const k of deleted) expected.set(k, null);
    const stale: string[] = [];
    for (const [cl, name] of [[c1, 'entry 1'], [c2, 'entry 2']] as const) {
      const { found } = await getMany(cl, mine);
      for (const [k, want] of expected) {
        const got = found.get(k) ?? null;
        if (got !== want) stale.push(`${name} ${k}: ${got} (want ${want})`);
      }
    }
    assert.equal(stale, [], 'every read through either entry is the latest value');
    const onMaster = await held(frozen, mine);
    const kept = untouched.filter((k) => onMaster.has(k));
    assert.is(kept.length, untouched.length, 'keys nobody wrote stayed on the master');
    for (const k of [...via1, ...via2, ...deleted]) {
      const v = onMaster.get(k);
      if (v !== undefined && v !== expected.get(k)) stale.push(`master holds ${k}: ${v}`);
    }
    assert.equal(stale, [], 'the master holds no overwritten or deleted value');
    for (const e of [e1, e2]) {
      assert.is(await figure(e, frozen.addr, 'flushes'), 0, 'no flush');
      assert.ok(await figure(e, frozen.addr, 'invalidated_keys') >= via1.length + via2.length + deleted.length,
        `every written key deleted by each entry's recovery: ${await figure(e, frozen.addr, 'invalidated_keys')} by entry ${e === e1 ? 1 : 2}; their logs:\n${logOf(e1, frozen.addr)}\n--\n${logOf(e2, frozen.addr)}`);
    }
  } finally {
    await teardown();
  }
});

test('kill -9 and restart of the master: seen as a restart, no flush; its keys warm from the backup', async () => {
  try {
    const { master, p, c, keys } = await single('rs', 2000);
    await sleep(500); // the prober has read the master's identity
    await master.stop();
    started.splice(started.indexOf(master), 1);
    await getMany(c, keys.slice(0, 10), 1, 10); // the failure is seen
    await waitState([p], master.addr, ['down'], 5000);
    const again = await startMemcached({ port: master.port });
    started.push(again);
    await waitState([p], master.addr, ['warming', 'up'], 5000);
    assert.is(await figure(p, master.addr, 'restarts_seen'), 1, 'the return was seen as a restart');
    assert.is(await figure(p, master.addr, 'flushes'), 0, 'no flush was sent');
    assert.match(logOf(p, master.addr), /"case":"restart"/, 'the log says so');
    const { found } = await getMany(c, keys);
    assert.is(found.size, keys.length, 'every key hits (warmed from the backup)');
  } finally {
    await teardown();
  }
});

test('a master restarted while its connections were idle is seen as restarted and warmed, not read empty', async () => {
  try {
    const { master, p, c, keys } = await single('ri', 1000, 1);
    await sleep(500);
    await master.stop();
    started.splice(started.indexOf(master), 1);
    const again = await startMemcached({ port: master.port });
    started.push(again);
    // No request failed: only the prober's identity check can tell.
    await waitState([p], master.addr, ['warming'], 5000);
    const { found } = await getMany(c, keys);
    assert.is(found.size, keys.length, 'every key hits');
    assert.is(await figure(p, master.addr, 'restarts_seen'), 1, 'counted as a restart');
  } finally {
    await teardown();
  }
});

test('ERROR Too many open connections: the read fails over to the backup; the master is not flushed', async () => {
  const hogs: WireClient[] = [];
  try {
    const [master, backup] = await Promise.all([mc(['-c', '40']), mc()]);
    const p = await proxy(['-s', master.addr, '-b', backup.addr, '--workers', '1', '--timeout', '300', '--retry-interval', '200']);
    const keep = items('keep', 50);
    await withDirect(master.port, (d) => setMany(d, keep));
    await withDirect(backup.port, (d) => setMany(d, [['k', 'from-backup']]));
    await withDirect(master.port, (d) => setMany(d, [['k', 'from-master']]));
    // Take every connection the master has left.
    for (let i = 0; i < 200; i++) {
      const h = await WireClient.connect(master.port);
      hogs.push(h);
      const r = await h.request('version\r\n').catch((e: Error) => e.message);
      if (r.startsWith('ERROR Too many open connections')) break;
    }
    const c = await connect(p);
    const r = await c.request('get k\r\n', 'END\r\n');
    assert.is(r, 'VALUE k 0 11\r\nfrom-backup\r\nEND\r\n', 'answered by the backup, not with the ERROR line');
    for (const h of hogs.splice(0)) h.close();
    await waitState([p], master.addr, ['up'], 5000);
    assert.is(await figure(p, master.addr, 'flushes'), 0, 'no flush');
    assert.is((await held(master, keep.map(([k]) => k))).size, keep.length, 'the master kept its keys');
    assert.is(await c.request('get k\r\n', 'END\r\n'), 'VALUE k 0 11\r\nfrom-master\r\nEND\r\n', 'read from the master again');
  } finally {
    for (const h of hogs) h.close();
    await teardown();
  }
});

test('keys of 1, 186, 187 and 250 bytes and binary keys written while the backup was away: deleted on it, and it returns at once', async () => {
  try {
    const [master, backup] = await Promise.all([mc(), mc()]);
    const p = await proxy(['-s', master.addr, '-b', backup.addr, '--workers', '1', '--timeout', '300', '--retry-interval', '200']);
    const c = await connect(p);
    const text = [1, 186, 187, 250].map((n) => 'k'.repeat(n));
    // Binary keys (a space, control bytes) reach memcached as base64 tokens: 186 bytes is the longest that fits 250 characters.
    const binary = [Buffer.from('a b\x01c'), Buffer.from(Array.from({ length: 186 }, (_, i) => i % 256))];
    const b64 = binary.map((k) => k.toString('base64'));
    const writeAll = async (v: string): Promise<void> => {
      for (const k of text) assert.is(await c.request(`set ${k} 0 0 ${v.length}\r\n${v}\r\n`), 'STORED\r\n', `set of a ${k.length}-byte key`);
      for (const k of b64) assert.is(await c.request(`ms ${k} ${v.length} b\r\n${v}\r\n`), 'HD\r\n', 'ms of a binary key');
    };
    await writeAll('old');
    await backup.pause();
    try {
      await writeAll('new');
      await waitState([p], backup.addr, ['down'], 5000);
    } finally {
      backup.signal('SIGCONT');
    }
    await waitState([p], backup.addr, ['up'], 3000);
    assert.not.match(p.output, /recovery failed/, 'every journaled key could be deleted');
    const onBackup = await withDirect(backup.port, async (d) => {
      const out: string[] = [];
      for (const k of text) out.push(await d.request(`get ${k}\r\n`, 'END\r\n'));
      for (const k of b64) out.push(await d.request(`mg ${k} b v\r\n`));
      return out.join('');
    });
    assert.not.match(onBackup, /old/, 'the backup holds no value it missed the update of');
    // With the master gone, the backup answers: never the old value.
    await master.stop();
    for (const k of text) assert.not.match(await c.request(`get ${k}\r\n`, 'END\r\n'), /old/, `a ${k.length}-byte key`);
    for (const k of b64) assert.not.match(await c.request(`mg ${k} b v\r\n`), /old/, 'a binary key');
  } finally {
    await teardown();
  }
});

test.run();
