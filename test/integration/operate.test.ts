// Operating a running proxy: SIGHUP reload under load, SIGTERM drain.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { CLI, freePort, Proc, sleep, startMemcached, startProxy, waitForPort } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { eventually, getMany, inspect, setMany } from '../helpers/mc.js';
import { withDirect } from '../helpers/cluster.js';

const procs: Proc[] = [];
test.after.each(async () => { for (const p of procs.splice(0)) await p.stop(); });

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcrelay-operate-'));

async function proxyWithConfig(yaml: string): Promise<{ proxy: Proc; file: string }> {
  const file = path.join(dir, `c${Date.now()}.yml`);
  const port = await freePort();
  fs.writeFileSync(file, `listen: 127.0.0.1:${port}\nadmin: "off"\nswitch_delay_seconds: 0\n${yaml}`);
  const child = spawn(process.execPath, [CLI, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const proxy = new Proc(child, port);
  procs.push(proxy);
  await waitForPort(port, 10_000);
  return { proxy, file };
}

/** What one load client did: each get checked against the set just before it. */
interface Load {
  ops: number;
  /** keys whose get, right after their set, missed */
  misses: string[];
  /** anything else unexpected: a set not STORED, a wrong value, a dropped connection */
  errors: string[];
  /** key -> the value last stored */
  last: Map<string, string>;
}

/** One client doing set-then-get of its own keys until stopped (or 100,000 rounds, or a minute). */
async function worker(port: number, id: number, stop: () => boolean, load: Load): Promise<void> {
  const c = await WireClient.connect(port);
  const until = Date.now() + 60_000;
  for (let i = 0; !stop() && i < 100_000 && Date.now() < until; i++) {
    const key = `w${id}-${i % 200}`;
    const value = `v${i}`;
    const set = await c.request(`set ${key} 0 0 ${value.length}\r\n${value}\r\n`);
    if (set !== 'STORED\r\n') load.errors.push(`set ${key}: ${JSON.stringify(set)}`);
    load.last.set(key, value);
    const get = await c.request(`get ${key}\r\n`, 'END\r\n');
    if (get === 'END\r\n') load.misses.push(key);
    else if (get !== `VALUE ${key} 0 ${value.length}\r\n${value}\r\nEND\r\n`) load.errors.push(`get ${key}: ${JSON.stringify(get)}`);
    if (c.closed) { load.errors.push('connection dropped'); break; }
    load.ops += 2;
  }
  c.close();
}

/** Waits until every load client has done `n` more operations. */
async function progressed(loads: readonly Load[], n: number): Promise<void> {
  const base = loads.map((l) => l.ops);
  const ok = await eventually(async () => loads.every((l, i) => l.ops >= base[i]! + n), 10_000);
  assert.ok(ok, `every load client kept working: ${loads.map((l, i) => l.ops - base[i]!).join(', ')} operations`);
}

/**
 * Sets probe keys through c until one lands on `added` (asked directly): from
 * then on c's worker routes by the reloaded list.
 */
async function routesTo(c: WireClient, added: Proc): Promise<void> {
  const d = await WireClient.connect(added.port);
  try {
    const deadline = Date.now() + 5000;
    for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
      assert.is(await c.request(`set probe-${i} 0 0 1\r\np\r\n`), 'STORED\r\n');
      if ((await inspect(d, `probe-${i}`)) !== null) return;
    }
    assert.unreachable('no key set through the proxy reached the added master');
  } finally {
    d.close();
  }
}

test('SIGHUP reload under load: keys that keep their server keep their values, only keys that moved miss, the new list serves every key', async () => {
  const a = await startMemcached();
  const b = await startMemcached();
  procs.push(a, b);
  const { proxy, file } = await proxyWithConfig(`workers: 2\nmasters: [${a.addr}]\n`);
  const c = await WireClient.connect(proxy.port);
  let stopping = false;
  try {
    const before = Array.from({ length: 400 }, (_, i) => [`before-${i}`, `b${i}`] as const);
    assert.equal(await setMany(c, before), [], 'keys set before the reload, all on a');
    const loads: Load[] = Array.from({ length: 8 }, () => ({ ops: 0, misses: [], errors: [], last: new Map() }));
    const running = loads.map((l, i) => worker(proxy.port, i, () => stopping, l));
    await progressed(loads, 20);
    // Add a master.
    fs.writeFileSync(file, `listen: 127.0.0.1:${proxy.port}\nadmin: "off"\nswitch_delay_seconds: 0\nworkers: 2\nmasters: [${a.addr}, ${b.addr}]\n`);
    proxy.signal('SIGHUP');
    assert.ok(await eventually(async () => /configuration reloaded/.test(proxy.output), 5000), `no reload: ${proxy.output}`);
    await routesTo(c, b);
    await progressed(loads, 20);
    // A broken file changes nothing.
    fs.writeFileSync(file, `listen: 127.0.0.1:${proxy.port}\nworkers: 2\nmasters: []\n`);
    proxy.signal('SIGHUP');
    assert.ok(await eventually(async () => /reload refused/.test(proxy.output), 5000), `no refusal: ${proxy.output}`);
    await progressed(loads, 20);
    stopping = true;
    await Promise.all(running);
    assert.equal(loads.flatMap((l) => l.errors), [], 'no error, no wrong value, no dropped connection');
    assert.ok(proxy.alive);

    // What the proxy serves now, before anything is written again.
    const loadKeys = loads.flatMap((l) => [...l.last.keys()]);
    const last = new Map(loads.flatMap((l) => [...l.last]));
    const all = [...before.map(([k]) => k), ...loadKeys];
    const afterReload = await getMany(c, all);
    assert.equal(afterReload.errors, []);

    // Which keys the new list puts on b: each written again through the proxy,
    // then looked for on the servers directly.
    assert.equal(await setMany(c, all.map((k) => [k, `new-${k}`] as const)), []);
    const onA = (await withDirect(a.port, (d) => getMany(d, all))).found;
    const onB = (await withDirect(b.port, (d) => getMany(d, all))).found;
    const moved = new Set(all.filter((k) => onB.get(k) === `new-${k}`));
    for (const k of all) {
      if (moved.has(k)) assert.is.not(onA.get(k), `new-${k}`, `${k} written to both servers`);
      else assert.is(onA.get(k), `new-${k}`, `${k} written to neither server`);
    }
    // Jump hash moves about half of the keys to a second server.
    assert.ok(moved.size > all.length * 0.3 && moved.size < all.length * 0.7, `${moved.size} of ${all.length} keys moved to b`);

    // Set before the reload: a key still on a is read with its value; one that
    // moved is read from b, which never had it (nothing copies between masters).
    for (const [k, v] of before) {
      if (moved.has(k)) assert.is(afterReload.found.get(k), undefined, `${k} moved to b, yet was read from a`);
      else assert.is(afterReload.found.get(k), v, `${k} stayed on a`);
    }
    // Set during the reloads: a key still on a holds its last value; one that
    // moved holds it if it was last set after the switch, and misses otherwise.
    for (const k of loadKeys) {
      const got = afterReload.found.get(k);
      if (!moved.has(k)) assert.is(got, last.get(k), `${k} stayed on a`);
      else if (got !== undefined) assert.is(got, last.get(k), `${k} moved to b`);
    }
    // A load client's get missed only where it straddled its worker's switch to
    // the new list (the set on a, the get on b): at most once, for a key that moved.
    for (const [i, l] of loads.entries()) {
      assert.ok(l.misses.length <= 1, `client ${i} missed ${l.misses.join(' ')}`);
      for (const k of l.misses) assert.ok(moved.has(k), `client ${i} missed ${k}, which stayed on a`);
    }
    // The new list serves every key from its server; so does a proxy started
    // with that list, which reads each key where the reloaded one wrote it.
    const ref = await startProxy(['-s', a.addr, '-s', b.addr, '--workers', '1']);
    procs.push(ref);
    for (const [who, port] of [['the reloaded proxy', proxy.port], ['a proxy started with the new list', ref.port]] as const) {
      const now = await withDirect(port, (d) => getMany(d, all));
      assert.equal(now.errors, []);
      assert.equal(all.filter((k) => now.found.get(k) !== `new-${k}`), [], `keys ${who} does not read with their new value`);
    }
  } finally {
    stopping = true;
    c.close();
  }
});

test('SIGHUP reload: the replaced backend connections close and stay closed (the checks of writes just before do not reopen them)', async () => {
  const m = await startMemcached();
  const b = await startMemcached();
  procs.push(m, b);
  const yaml = `workers: 1\nmasters: [${m.addr}]\nbackups: [${b.addr}]\n`;
  const { proxy, file } = await proxyWithConfig(yaml);
  const c = await WireClient.connect(proxy.port);
  try {
    const backupStat = async (name: string): Promise<number> => {
      const stats = await withDirect(b.port, (d) => d.request('stats\r\n', 'END\r\n'));
      return Number(new RegExp(`STAT ${name} (\\d+)\r\n`).exec(stats)?.[1]);
    };
    const writes = async (): Promise<void> => {
      for (let i = 0; i < 20; i++) assert.is(await c.request(`set k${i} 0 0 1\r\nx\r\n`), 'STORED\r\n');
    };
    // Each write's key is read (mg) on master and backup 100 ms later, through
    // the dispatcher that sent it: 20 writes, 20 more gets on the backup.
    const checked = async (gets: number, what: string): Promise<void> => {
      let n = gets;
      const ok = await eventually(async () => { n = await backupStat('cmd_get'); return n >= gets + 20; }, 5000);
      assert.ok(ok, `${what}: ${n - gets} of 20 checks reached the backup`);
    };
    let gets = await backupStat('cmd_get');
    await writes();
    await checked(gets, 'the writes before the reload');
    const before = await backupStat('curr_connections');
    // These writes' checks are due on the dispatcher the reload retires at once.
    await writes();
    fs.writeFileSync(file, `listen: 127.0.0.1:${proxy.port}\nadmin: "off"\n${yaml}drain_seconds: 7\n`);
    proxy.signal('SIGHUP');
    // The worker runs the new configuration once its settings show the changed one.
    const switched = await eventually(async () => /STAT drain_seconds 7\r\n/.test(await c.request('stats settings\r\n', 'END\r\n')), 5000);
    assert.ok(switched, `the worker did not take the reload: ${proxy.output}`);
    gets = await backupStat('cmd_get');
    await writes();
    await checked(gets, 'the writes after the reload, checked by the new dispatcher');
    // The retired dispatcher's checks were due before these: had they reopened
    // its connection to the backup, it would be open now and stay open.
    let now = -1;
    const closed = await eventually(async () => (now = await backupStat('curr_connections')) === before, 3000);
    assert.ok(closed, `connections to the backup: ${now}, ${before} before the reload`);
    assert.match(proxy.output, /configuration reloaded/);
  } finally {
    c.close();
  }
});

test('SIGTERM drains: every request already sent is answered, then exit 0', async () => {
  const a = await startMemcached();
  procs.push(a);
  const { proxy } = await proxyWithConfig(`workers: 2\nmasters: [${a.addr}]\ndrain_seconds: 5\n`);
  const clients = await Promise.all(Array.from({ length: 10 }, () => WireClient.connect(proxy.port)));
  // Each client pipelines 200 sets and gets, then the proxy is told to stop.
  let expect = '';
  let batch = '';
  for (let i = 0; i < 200; i++) {
    batch += `set d${i} 0 0 1\r\n${i % 10}\r\nget d${i}\r\n`;
    expect += `STORED\r\nVALUE d${i} 0 1\r\n${i % 10}\r\nEND\r\n`;
  }
  for (const c of clients) c.write(batch);
  await sleep(50);
  proxy.signal('SIGTERM');
  const replies = await Promise.all(clients.map((c) => c.readUntil((b) => b.length >= expect.length, 5000)));
  for (const r of replies) assert.is(r.length, expect.length, `reply bytes: ${JSON.stringify(r.toString("latin1").slice(0, 200))} proxy: ${proxy.output}`);
  for (const r of replies) assert.is(r.toString("latin1"), expect);
  assert.is(await proxy.wait(), 0);
  for (const c of clients) c.close();
});

test.run();
