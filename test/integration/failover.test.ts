// Failover in the deployment of DESIGN.md: two identical entry proxies in front
// of four masters, two backups behind.
//
//   e1, e2: mcrelay --workers 2 --timeout 500 --retry-interval 300 -s m0..m3 -b b0 -b b1
//
// Written through e1, read through e2; then one master is killed (its keys must
// still hit, from the backups), restarted (it must be used again within two
// probe intervals), another is frozen with SIGSTOP (each read of its keys must
// still answer, from the backup, within timeout + 200 ms), and finally a master
// and its backup are both gone (reads miss, writes fail). The tests run in order
// and share the cluster.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { performance } from 'node:perf_hooks';
import { startMemcached, startProxy, sleep, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { getMany, inspect, roundTrip, setMany } from '../helpers/mc.js';

const TIMEOUT_MS = 500;
const RETRY_MS = 300;
const KEYS = 10_000;

const masters: Proc[] = [];
const backups: Proc[] = [];
/** every process this file started, replaced ones included, for cleanup */
const started: Proc[] = [];
let e1: Proc | undefined;
let e2: Proc | undefined;
let c1: WireClient;
let c2: WireClient;

const keys = Array.from({ length: KEYS }, (_, i) => `fo:key:${i}`);
const expected = new Map(keys.map((k, i) => [k, `value-${i}-${'v'.repeat(i % 50)}`]));
/** index of the master / backup holding each key, found by asking the servers themselves */
const masterOf = new Map<string, number>();
const backupOf = new Map<string, number>();

const KILLED = 1; // the master killed and restarted
const FROZEN = 2; // the master stopped with SIGSTOP

test.before(async () => {
  const mcs = await Promise.all(Array.from({ length: 6 }, () => startMemcached()));
  started.push(...mcs);
  masters.push(...mcs.slice(0, 4));
  backups.push(...mcs.slice(4));
  const flags = [
    ...masters.flatMap((m) => ['-s', m.addr]),
    ...backups.flatMap((b) => ['-b', b.addr]),
    '--workers', '2', '--timeout', String(TIMEOUT_MS), '--retry-interval', String(RETRY_MS),
  ];
  [e1, e2] = await Promise.all([startProxy(flags), startProxy(flags)]);
  started.push(e1, e2);
  [c1, c2] = await Promise.all([WireClient.connect(e1.port), WireClient.connect(e2.port)]);
});

test.after(async () => {
  c1?.close();
  c2?.close();
  for (const p of started) p.signal('SIGCONT');
  await Promise.all(started.map((p) => p.stop('SIGKILL')));
});

async function withDirect<T>(port: number, f: (c: WireClient) => Promise<T>): Promise<T> {
  const c = await WireClient.connect(port);
  try { return await f(c); } finally { c.close(); }
}

/** Reads the given keys through a client; asserts every one hits with its own value. */
async function assertAllHit(c: WireClient, which: readonly string[], label: string): Promise<void> {
  const { found, errors } = await getMany(c, which);
  assert.equal(errors, [], `${label}: error replies`);
  const missing = which.filter((k) => !found.has(k));
  assert.is(missing.length, 0, `${label}: ${missing.length} of ${which.length} missed, e.g. ${missing.slice(0, 3).join(' ')} (masters ${missing.slice(0, 3).map((k) => masterOf.get(k)).join(',')})`);
  const wrong = which.filter((k) => found.get(k) !== expected.get(k));
  assert.is(wrong.length, 0, `${label}: ${wrong.length} wrong values, e.g. ${wrong[0]}`);
}

async function stat(port: number, name: string): Promise<number> {
  return withDirect(port, async (c) => {
    const raw = await c.request('stats\r\n', 'END\r\n');
    return Number(new RegExp(`STAT ${name} (\\d+)`).exec(raw)?.[1]);
  });
}

function keysOf(master: number): string[] {
  return keys.filter((k) => masterOf.get(k) === master);
}

test('10,000 keys written through entry 1 all hit through entry 2; each is on exactly one master and one backup', async () => {
  const t0 = Date.now();
  const bad = await setMany(c1, keys.map((k) => [k, expected.get(k)!] as const), 500);
  assert.equal(bad, [], 'every set STORED');
  await assertAllHit(c2, keys, 'entry 2');
  await assertAllHit(c1, keys, 'entry 1');
  // where the keys live, as the servers see it
  for (const [list, owner] of [[masters, masterOf], [backups, backupOf]] as const) {
    for (let s = 0; s < list.length; s++) {
      const { found } = await withDirect(list[s]!.port, (c) => getMany(c, keys));
      for (const [k, v] of found) {
        assert.is(v, expected.get(k), `${k} on server ${s}`);
        assert.not.ok(owner.has(k), `${k} held by two servers of the same pool (${owner.get(k)} and ${s})`);
        owner.set(k, s);
      }
    }
  }
  assert.is(masterOf.size, KEYS, 'every key is on a master');
  assert.is(backupOf.size, KEYS, 'every key is on a backup');
  for (let s = 0; s < 4; s++) {
    const n = keysOf(s).length;
    assert.ok(n > KEYS / 4 * 0.8 && n < KEYS / 4 * 1.2, `master ${s} holds ${n} keys`);
  }
  console.log(`    wrote and verified ${KEYS} keys in ${Date.now() - t0} ms`);
});

test('kill -9 of one master: all 10,000 keys still hit through both entries', async () => {
  assert.ok(masterOf.size === KEYS, 'needs the first test');
  const before1 = await stat(e1!.port, 'get_failover');
  await masters[KILLED]!.stop('SIGKILL');
  // writes to its keys right away (before any read): the backup takes them and answers
  const rewritten = keysOf(KILLED).slice(0, 100);
  for (const k of rewritten) expected.set(k, `rewritten-${k}`);
  const bad = await setMany(c2, rewritten.map((k) => [k, expected.get(k)!] as const), 50);
  assert.equal(bad, [], 'sets of the dead master\'s keys answered STORED');
  await assertAllHit(c1, keys, 'entry 1 after kill');
  await assertAllHit(c2, keys, 'entry 2 after kill');
  // a second pass: by now the master is known down everywhere
  await assertAllHit(c2, keys, 'entry 2, again');
  await assertAllHit(c1, keys, 'entry 1, again');
  const failovers = (await stat(e1!.port, 'get_failover')) - before1;
  assert.ok(failovers >= keysOf(KILLED).length, `entry 1 counted ${failovers} failover reads`);
});

test('the killed master, restarted on its port, is used again within two retry intervals', async () => {
  const probeKeys = keysOf(KILLED).slice(0, 2);
  const restarted = await startMemcached({ port: masters[KILLED]!.port });
  started.push(restarted);
  masters[KILLED] = restarted;
  const t0 = performance.now();
  // a write of one of its keys through each entry lands on it once the entry sees it up
  const landed: Array<number | null> = [null, null];
  const deadline = t0 + 4 * RETRY_MS;
  let n = 0;
  await withDirect(restarted.port, async (direct) => {
    while ((landed[0] === null || landed[1] === null) && performance.now() < deadline) {
      n++;
      for (const i of [0, 1] as const) {
        if (landed[i] !== null) continue;
        const k = probeKeys[i]!;
        const v = `after-restart-${n}`;
        const r = await roundTrip(i === 0 ? c1 : c2, `set ${k} 0 0 ${v.length}\r\n${v}\r\n`);
        assert.is(r.line, 'STORED', `set through entry ${i + 1}`);
        expected.set(k, v);
        if ((await inspect(direct, k))?.value === v) landed[i] = performance.now() - t0;
      }
      await sleep(10);
    }
  });
  console.log(`    restarted master used by entry 1 after ${landed[0]?.toFixed(0)} ms, entry 2 after ${landed[1]?.toFixed(0)} ms`);
  assert.ok(landed[0] !== null && landed[0] <= 2 * RETRY_MS, `entry 1 used it after ${landed[0]?.toFixed(0) ?? 'never'} ms (limit ${2 * RETRY_MS})`);
  assert.ok(landed[1] !== null && landed[1] <= 2 * RETRY_MS, `entry 2 used it after ${landed[1]?.toFixed(0) ?? 'never'} ms (limit ${2 * RETRY_MS})`);
  // (A write that lands while the master is recovering may be flushed with the rest
  // before it serves reads; the backup has it, and the warm-up brings it back.)
});

test('SIGSTOP of one master: every read of its keys answers from the backup within timeout + 200 ms', async () => {
  const frozen = masters[FROZEN]!;
  const mine = keysOf(FROZEN);
  assert.ok(mine.length > 1000);
  await frozen.pause();
  try {
    // first, before the entries know anything: one get of 100 keys over all live masters,
    // its keys on the frozen one retried on the backup when that op times out
    const mixed = keys.filter((k) => masterOf.get(k) !== KILLED).slice(0, 100);
    assert.ok(mixed.some((k) => masterOf.get(k) === FROZEN));
    for (const [c, name] of [[c1, 'entry 1'], [c2, 'entry 2']] as const) {
      const t = performance.now();
      const r = await roundTrip(c, `get ${mixed.join(' ')}\r\n`, 3000);
      const dt = performance.now() - t;
      assert.is(r.line, 'END');
      assert.equal(r.values.map((v) => v.key), mixed, `${name}: every key, in order`);
      for (const v of r.values) assert.is(v.data.toString('latin1'), expected.get(v.key), `${name} ${v.key}`);
      assert.ok(dt <= TIMEOUT_MS + 200, `${name}: multi-get answered in ${dt.toFixed(0)} ms`);
      console.log(`    first 100-key get while frozen (${name}): ${dt.toFixed(0)} ms`);
    }
    const slow: string[] = [];
    let max = 0;
    let slowest = '';
    const t0 = performance.now();
    for (let i = 0; i < mine.length; i++) {
      for (const [c, name] of [[c1, 'entry 1'], [c2, 'entry 2']] as const) {
        const k = mine[i]!;
        const t = performance.now();
        const r = await roundTrip(c, `get ${k}\r\n`, 3000);
        const dt = performance.now() - t;
        if (dt > max) { max = dt; slowest = `${name} ${k}`; }
        if (dt > TIMEOUT_MS + 200) slow.push(`${name} ${k} ${dt.toFixed(0)} ms`);
        assert.is(r.line, 'END', `${name} ${k}`);
        assert.is(r.values.length, 1, `${name} ${k} hit (request ${i})`);
        assert.is(r.values[0]!.data.toString('latin1'), expected.get(k), `${name} ${k} value`);
      }
    }
    console.log(`    ${2 * mine.length} reads of the frozen master's keys in ${(performance.now() - t0).toFixed(0)} ms; slowest ${max.toFixed(0)} ms (${slowest})`);
    assert.equal(slow, [], `reads slower than ${TIMEOUT_MS + 200} ms`);
    // a multi-key get spanning every master also answers in full
    const t = performance.now();
    await assertAllHit(c1, keys.filter((k) => masterOf.get(k) !== KILLED), 'entry 1 multi-get while frozen');
    await assertAllHit(c2, keys.filter((k) => masterOf.get(k) !== KILLED), 'entry 2 multi-get while frozen');
    console.log(`    full multi-get pass through both entries while frozen: ${(performance.now() - t).toFixed(0)} ms`);
  } finally {
    frozen.signal('SIGCONT');
  }
});

test('a master and its backup both dead: reads miss (END), writes answer SERVER_ERROR backend unavailable', async () => {
  // a key of the restarted master, and the backup that holds it
  const k = keysOf(KILLED).find((x) => backupOf.get(x) !== undefined)!;
  const b = backupOf.get(k)!;
  // a key on another master and the other backup: it must keep working
  const alive = keys.find((x) => masterOf.get(x) !== KILLED && masterOf.get(x) !== FROZEN && backupOf.get(x) !== b)!;
  await Promise.all([masters[KILLED]!.stop('SIGKILL'), backups[b]!.stop('SIGKILL')]);
  for (const pass of [1, 2]) {
    for (const [c, name] of [[c1, 'entry 1'], [c2, 'entry 2']] as const) {
      const label = `${name}, pass ${pass}`;
      const t = performance.now();
      assert.is((await roundTrip(c, `get ${k}\r\n`)).line, 'END', `${label}: get`);
      const g = await roundTrip(c, `get ${k}\r\n`);
      assert.equal([g.line, g.values.length], ['END', 0], `${label}: get is a miss`);
      const multi = await roundTrip(c, `get ${k} ${alive}\r\n`);
      assert.equal(multi.values.map((v) => v.key), [alive], `${label}: multi-get returns only the live key`);
      for (const w of [`set ${k} 0 0 1\r\nx\r\n`, `add ${k} 0 0 1\r\nx\r\n`, `delete ${k}\r\n`, `incr ${k} 1\r\n`, `touch ${k} 10\r\n`]) {
        assert.is((await roundTrip(c, w)).line, 'SERVER_ERROR backend unavailable', `${label}: ${w.split(' ')[0]}`);
      }
      const dt = performance.now() - t;
      assert.ok(dt < TIMEOUT_MS, `${label}: answered without waiting for a timeout (${dt.toFixed(0)} ms)`);
    }
    await sleep(2 * RETRY_MS); // probes of the dead servers fail; nothing changes
  }
});

test.run();
