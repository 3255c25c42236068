// A reload that changes where keys live (issue 20): a master added (on one
// entry proxy, and on two reloaded 2 s apart, which switch at one agreed time),
// a master removed, magent's distribution switched to jump, a backup added, and
// a change reverted. The keys written before the change stay hits (the new
// master warms from the backup), the moved keys are restored onto their new
// server with their flags and TTLs, the old servers' copies of them are deleted
// (the sweeps' progress in stats servers and /metrics), and a change reverted
// does not bring back a value overwritten or deleted meanwhile. A verified load
// runs throughout: no wrong value, nothing unanswered.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { CLI, freePort, Proc, sleep, startMemcached, waitForPort } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { getMany } from '../helpers/mc.js';
import { metaGetMany, serverStats, waitState, withDirect } from '../helpers/cluster.js';
import { Load } from '../helpers/load.js';
import { Router } from '../../src/routing/router.js';
import type { Distribution } from '../../src/config/config.js';

const RETRY_MS = 200;
const WARMUP_S = 3;
const KEYS = 2000;
const TTL_S = 600;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcrelay-placement-'));
const procs: Proc[] = [];

test.after.each(async () => {
  for (const p of procs) p.signal('SIGCONT');
  await Promise.all(procs.splice(0).map((p) => p.stop()));
});
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Layout { masters: Proc[]; distribution: Distribution }

function yaml(port: number, admin: number, layout: Layout, backups: Proc | readonly Proc[], switchDelayS = 0): string {
  return [
    `listen: 127.0.0.1:${port}`, `admin: 127.0.0.1:${admin}`, 'workers: 2', 'timeout_ms: 300', `retry_interval_ms: ${RETRY_MS}`, `switch_delay_seconds: ${switchDelayS}`,
    `warmup: { seconds: ${WARMUP_S} }`, 'restore: { keys_per_second: 100000 }', `distribution: ${layout.distribution}`,
    'masters:', ...layout.masters.map((m) => `  - ${m.addr}`), 'backups:', ...[backups].flat().map((b) => `  - ${b.addr}`), '',
  ].join('\n');
}

function ownerOf(layout: Layout, backup: Proc, key: string): Proc {
  const r = new Router(layout.distribution, layout.masters.map((m) => m.addr), [backup.addr]);
  r.route(Buffer.from(key), 0, key.length);
  return layout.masters[r.master]!;
}

/** Sets the keys through the proxy with a TTL (flags 7). */
async function setAll(c: WireClient, keys: readonly string[], value: (k: string) => string): Promise<void> {
  for (let i = 0; i < keys.length; i += 500) {
    const batch = keys.slice(i, i + 500);
    c.write(batch.map((k) => `set ${k} 7 ${TTL_S} ${value(k).length}\r\n${value(k)}\r\n`).join(''));
    const b = await c.readUntil((x) => x.toString('latin1').split('STORED\r\n').length > batch.length, 10_000);
    assert.is(b.toString('latin1'), 'STORED\r\n'.repeat(batch.length), 'stored through the proxy');
  }
}

interface Entry { proxy: Proc; port: number; admin: number; file: string; c: WireClient }
/** Entry proxies on one layout (the first is `proxy`, `port`, `file`, `c`), and a verified load spread over them. */
interface Run extends Entry { entries: Entry[]; backup: Proc; load: Load; switchDelayS: number }

async function startRun(layout: Layout, backup: Proc, name: string, proxies = 1, switchDelayS = 0): Promise<Run> {
  const entries: Entry[] = [];
  for (let i = 0; i < proxies; i++) {
    const port = await freePort();
    const admin = await freePort();
    const file = path.join(dir, `${name}-${i}.yml`);
    fs.writeFileSync(file, yaml(port, admin, layout, backup, switchDelayS));
    const proxy = new Proc(spawn(process.execPath, [CLI, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }), port);
    procs.push(proxy);
    await waitForPort(port, 10_000);
    entries.push({ proxy, port, admin, file, c: await WireClient.connect(port) });
  }
  const ports = entries.map((e) => e.port);
  const load = new Load({ port: ports[0]!, ports, connections: 4 * proxies, keysPerConnection: 40, countersPerConnection: 2, deadlineMs: 2000, pauseMs: 2, prefix: `${name}-load` });
  return { ...entries[0]!, entries, backup, load, switchDelayS };
}

function closeRun(run: Run): void {
  for (const e of run.entries) e.c.close();
}

/** Reads the keys through the proxy every 50 ms until `until` resolves: the wrong values and misses seen. */
async function watchReads(c: WireClient, keys: readonly string[], expected: (k: string) => string | null, until: Promise<unknown>): Promise<{ wrong: string[]; misses: number; reads: number }> {
  let over = false;
  void until.finally(() => { over = true; });
  const out = { wrong: [] as string[], misses: 0, reads: 0 };
  do {
    const { found, errors } = await getMany(c, keys);
    assert.equal(errors, [], 'read errors');
    for (const k of keys) {
      const want = expected(k);
      const got = found.get(k) ?? null;
      out.reads++;
      if (got === null) { if (want !== null) out.misses++; } else if (got !== want) out.wrong.push(`${k}: ${got}, not ${want}`);
    }
    await sleep(50);
  } while (!over);
  return out;
}

/**
 * The change from `from` to `to`, reloaded on each entry proxy `gapMs` after
 * the one before, under the verified load and reads of keys written before it.
 */
async function change(run: Run, from: Layout, to: Layout, name: string, gapMs = 0): Promise<void> {
  const keys = Array.from({ length: KEYS }, (_, i) => `${name}:${i}`);
  const value = (k: string): string => `v-${k}`;
  await setAll(run.c, keys, value);
  run.load.start();
  await sleep(300);
  const proxies = run.entries.map((e) => e.proxy);
  // Every master of the new list back to up on every proxy: switched, warm-up over, restores done.
  const settled = (async () => {
    for (const [i, e] of run.entries.entries()) {
      if (i > 0) await sleep(gapMs);
      fs.writeFileSync(e.file, yaml(e.port, e.admin, to, run.backup, run.switchDelayS));
      e.proxy.signal('SIGHUP');
    }
    for (const p of proxies) assert.ok(await p.waitForOutput('configuration reloaded', run.switchDelayS * 1000 + 5000), p.output);
    for (const m of to.masters) await waitState(proxies, m.addr, ['up'], WARMUP_S * 1000 + 10_000);
  })();
  const seen = await Promise.all(run.entries.map((e) => watchReads(e.c, keys, value, settled)));
  await settled;
  await run.load.stop();
  await run.load.finalCheck(run.port);
  const v = run.load.verifier.counts;
  assert.equal(run.load.verifier.problems.filter((p) => p.kind === 'wrong' || p.kind === 'unanswered').slice(0, 5), [], 'the verified load');
  assert.ok(v.reads > 100, `the load read (${v.reads})`);
  for (const [i, s] of seen.entries()) {
    assert.equal(s.wrong.slice(0, 5), [], `no wrong value through the change, through proxy ${i}`);
    assert.ok(s.misses <= s.reads / 1000, `hits through the change, through proxy ${i}: ${s.misses} misses of ${s.reads} reads`);
  }
  // The moved keys are on their new master, with their flags and TTL; their old master no longer has them.
  const moved = keys.filter((k) => ownerOf(from, run.backup, k).addr !== ownerOf(to, run.backup, k).addr);
  assert.ok(moved.length > KEYS / 10, `keys moved: ${moved.length}`);
  let absent = 0;
  const stale: string[] = [];
  const source = await withDirect(run.backup.port, (d) => metaGetMany(d, moved));
  for (const m of to.masters) {
    const its = moved.filter((k) => ownerOf(to, run.backup, k) === m);
    const held = await withDirect(m.port, (d) => metaGetMany(d, its));
    for (const k of its) {
      const h = held.get(k);
      if (h === null || h === undefined) { absent++; continue; }
      // The TTL the backup has left for the key, within 2 s.
      const ttl = source.get(k)?.ttl ?? NaN;
      if (h.value !== value(k) || h.flags !== 7 || !(Math.abs(h.ttl - ttl) <= 2)) stale.push(`${k}: ${h.value} flags ${h.flags} ttl ${h.ttl} (backup: ${ttl})`);
    }
  }
  assert.ok(absent <= moved.length / 1000, `${absent} of ${moved.length} moved keys not on their new master`);
  assert.equal(stale.slice(0, 5), [], 'moved keys hold their value, flags and TTL');
  for (const e of run.entries) {
    const stats = await serverStats(e.port);
    for (const m of to.masters) assert.is(stats.table.get(m.addr)?.get('state'), 'up', `${m.addr} up`);
  }
  let leftBehind = 0;
  for (const m of from.masters.filter((x) => to.masters.includes(x))) {
    const left = moved.filter((k) => ownerOf(from, run.backup, k) === m && ownerOf(to, run.backup, k) !== m);
    const deadline = Date.now() + 5000;
    let held = left.length;
    while (held > 0 && Date.now() < deadline) {
      held = (await withDirect(m.port, (d) => getMany(d, left))).found.size;
      if (held > 0) await sleep(100);
    }
    leftBehind += held;
    // The sweeps' progress, as stats servers and /metrics show it: done, and (over the proxies) every left key deleted.
    let deleted = 0;
    for (const e of run.entries) {
      const row = (await serverStats(e.port)).table.get(m.addr);
      assert.is(row?.get('sweep_state'), 'done', `${m.addr} swept`);
      deleted += Number(row?.get('sweep_keys_deleted'));
      assert.ok(Number(row?.get('sweep_keys_walked')) >= Number(row?.get('sweep_keys_deleted')), 'walked at least what it deleted');
      const metrics = await (await fetch(`http://127.0.0.1:${e.admin}/metrics`)).text();
      assert.match(metrics, `mcrelay_server_sweep_state{server="${m.addr}",role="master",state="done"} 1`, '/metrics');
    }
    assert.ok(deleted >= left.length, `${m.addr}: the sweeps deleted ${deleted}, ${left.length} of the keys written before moved away`);
  }
  assert.is(leftBehind, 0, 'the keys that moved away are deleted from their old master');
}

async function pool(n: number): Promise<{ masters: Proc[]; backup: Proc }> {
  const all = await Promise.all(Array.from({ length: n + 1 }, () => startMemcached()));
  procs.push(...all);
  return { masters: all.slice(0, n), backup: all[n]! };
}

test('a master added (4 -> 5): hits through the change, the moved keys restored on the new master', async () => {
  const { masters, backup } = await pool(5);
  const from = { masters: masters.slice(0, 4), distribution: 'jump' as const };
  const to = { masters, distribution: 'jump' as const };
  const run = await startRun(from, backup, 'add');
  try { await change(run, from, to, 'add'); } finally { closeRun(run); }
});

test('two entry proxies reloaded 2 s apart (4 -> 5): both switch at the time the first agreed, with hits and no wrong value through either', async () => {
  const { masters, backup } = await pool(5);
  const from = { masters: masters.slice(0, 4), distribution: 'jump' as const };
  const to = { masters, distribution: 'jump' as const };
  const run = await startRun(from, backup, 'two', 2, 5);
  try {
    await change(run, from, to, 'two', 2000);
    const logged = (p: Proc, msg: string): Record<string, string> => JSON.parse(p.output.split('\n').find((l) => l.includes(`"msg":"${msg}"`)) ?? 'null') as Record<string, string>;
    const [a, b] = run.entries.map((e) => e.proxy) as [Proc, Proc];
    const planned = [logged(a, 'placement change scheduled'), logged(b, 'placement change scheduled')];
    assert.ok(planned[0] !== null && planned[1] !== null, `both scheduled the switch:\n${a.output}\n${b.output}`);
    assert.is(planned[1]!.switchAt, planned[0]!.switchAt, 'the second proxy switches at the time the first agreed');
    assert.is(planned[0]!.first, true);
    assert.is(planned[1]!.first, false);
    for (const p of [a, b]) {
      const at = Date.parse(logged(p, 'configuration reloaded').time!);
      const due = Date.parse(planned[0]!.switchAt!);
      assert.ok(at >= due && at < due + 1000, `switched at ${new Date(at).toISOString()}, agreed ${planned[0]!.switchAt}`);
    }
  } finally { closeRun(run); }
});

test('a master removed (5 -> 4): the remaining masters gain its keys, swept and warmed', async () => {
  const { masters, backup } = await pool(5);
  const from = { masters, distribution: 'jump' as const };
  const to = { masters: masters.slice(0, 4), distribution: 'jump' as const };
  const run = await startRun(from, backup, 'remove');
  try { await change(run, from, to, 'remove'); } finally { closeRun(run); }
});

test('magent distribution -> jump on 4 masters', async () => {
  const { masters, backup } = await pool(4);
  const from = { masters, distribution: 'magent' as const };
  const to = { masters, distribution: 'jump' as const };
  const run = await startRun(from, backup, 'dist');
  try { await change(run, from, to, 'dist'); } finally { closeRun(run); }
});

test('a backup added (1 -> 2): the keys that move to it are restored from the masters, deleted from the old backup, and serve an outage', async () => {
  const all = await Promise.all(Array.from({ length: 4 }, () => startMemcached()));
  procs.push(...all);
  const layout = { masters: all.slice(0, 2), distribution: 'jump' as const };
  const [b1, b2] = [all[2]!, all[3]!];
  const run = await startRun(layout, b1, 'backup');
  try {
    const keys = Array.from({ length: KEYS }, (_, i) => `backup:${i}`);
    const value = (k: string): string => `v-${k}`;
    await setAll(run.c, keys, value);
    run.load.start();
    await sleep(300);
    fs.writeFileSync(run.file, yaml(run.port, run.admin, layout, [b1, b2]));
    run.proxy.signal('SIGHUP');
    assert.ok(await run.proxy.waitForOutput('configuration reloaded', 5000), run.proxy.output);
    const field = async (addr: string, f: string): Promise<string | undefined> => (await serverStats(run.port)).table.get(addr)?.get(f);
    for (let i = 0; i < 300 && await field(b2.addr, 'restore_state') !== 'done'; i++) await sleep(50);
    assert.is(await field(b2.addr, 'restore_state'), 'done', `the new backup's restore:\n${run.proxy.output}`);
    await run.load.stop();
    await run.load.finalCheck(run.port);
    assert.equal(run.load.verifier.problems.filter((p) => p.kind === 'wrong' || p.kind === 'unanswered').slice(0, 5), [], 'the verified load');

    const r = new Router('jump', layout.masters.map((m) => m.addr), [b1.addr, b2.addr]);
    const toB2 = keys.filter((k) => { r.route(Buffer.from(k), 0, k.length); return r.backup === 1; });
    assert.ok(toB2.length > KEYS / 4, `keys whose backup is now b2: ${toB2.length}`);
    // On b2 with value, flags and the TTL their master has left; gone from b1 once it is swept.
    const onB2 = await withDirect(b2.port, (d) => metaGetMany(d, toB2));
    const onMasters = new Map<string, number>();
    for (const m of layout.masters) for (const [k, h] of await withDirect(m.port, (d) => metaGetMany(d, toB2))) if (h) onMasters.set(k, h.ttl);
    const wrong = toB2.filter((k) => { const h = onB2.get(k); return !h || h.value !== value(k) || h.flags !== 7 || !(Math.abs(h.ttl - (onMasters.get(k) ?? NaN)) <= 2); });
    assert.equal(wrong.slice(0, 5), [], `${wrong.length} of ${toB2.length} keys not on the new backup as on their master`);
    let onB1 = toB2.length;
    for (let i = 0; i < 50 && onB1 > 0; i++) {
      onB1 = (await withDirect(b1.port, (d) => getMany(d, toB2))).found.size;
      if (onB1 > 0) await sleep(100);
    }
    assert.is(onB1, 0, 'the keys that moved to b2 are deleted from b1');
    assert.is(await field(b1.addr, 'sweep_state'), 'done', 'b1 swept');

    // A master stopped: its keys are read from the backups, b2's share too.
    const m0 = layout.masters[0]!;
    const its = keys.filter((k) => ownerOf(layout, b1, k) === m0);
    await m0.pause();
    await getMany(run.c, its.slice(0, 5), 1, 5);
    await waitState([run.proxy], m0.addr, ['down'], 5000);
    const { found } = await getMany(run.c, its);
    assert.equal(its.filter((k) => found.get(k) !== value(k)).slice(0, 5), [], `the stopped master's ${its.length} keys, read from the backups`);
  } finally { closeRun(run); }
});

test('no backup pool: a master added keeps serving, and what it held from before is swept while it does', async () => {
  const [a, b] = await Promise.all([startMemcached(), startMemcached()]);
  procs.push(a, b);
  const port = await freePort();
  const file = path.join(dir, 'nobackup.yml');
  const write = (masters: Proc[]): void => fs.writeFileSync(file, [`listen: 127.0.0.1:${port}`, 'admin: "off"', 'workers: 2', 'switch_delay_seconds: 0',
    `retry_interval_ms: ${RETRY_MS}`, 'masters:', ...masters.map((m) => `  - ${m.addr}`), ''].join('\n'));
  write([a]);
  const proxy = new Proc(spawn(process.execPath, [CLI, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }), port);
  procs.push(proxy);
  await waitForPort(port, 10_000);
  const c = await WireClient.connect(port);
  try {
    // Left on b by an earlier pool: all of them stale once b serves them again.
    const keys = Array.from({ length: KEYS }, (_, i) => `nb:${i}`);
    await withDirect(b.port, (d) => setAll(d, keys, (k) => `stale-${k}`));
    await setAll(c, keys, (k) => `v-${k}`);
    const two = { masters: [a, b], distribution: 'jump' as const };
    const toB = keys.filter((k) => ownerOf(two, a, k) === b);
    write([a, b]);
    proxy.signal('SIGHUP');
    assert.ok(await proxy.waitForOutput('configuration reloaded', 5000), proxy.output);
    // b serves at once: never recovering (nothing could serve its keys meanwhile).
    assert.is((await serverStats(port)).table.get(b.addr)?.get('state'), 'up', 'b up right after the reload');
    // Written while b is swept (each also stale on b): the sweep must not take them.
    const fresh = toB.slice(0, 50);
    await setAll(c, fresh, (k) => `new-${k}`);
    let state: string | undefined;
    for (let i = 0; i < 100 && (state = (await serverStats(port)).table.get(b.addr)?.get('sweep_state')) !== 'done'; i++) await sleep(50);
    assert.is(state, 'done', `b's background sweep:\n${proxy.output}`);
    const { found } = await getMany(c, toB);
    assert.equal(toB.filter((k) => found.get(k) === `stale-${k}`).slice(0, 5), [], 'no copy from before served once swept');
    assert.equal(fresh.filter((k) => found.get(k) !== `new-${k}`).map((k) => `${k}=${found.get(k)}`), [], 'keys written after the switch kept');
  } finally { c.close(); }
});

test('a change reverted: a key overwritten or deleted while it lived on the new master is not served stale from the old one', async () => {
  const { masters, backup } = await pool(5);
  const four = { masters: masters.slice(0, 4), distribution: 'jump' as const };
  const five = { masters, distribution: 'jump' as const };
  const run = await startRun(four, backup, 'revert');
  try {
    const keys = Array.from({ length: KEYS }, (_, i) => `revert:${i}`);
    await setAll(run.c, keys, (k) => `old-${k}`);
    const moved = keys.filter((k) => ownerOf(five, backup, k) === masters[4]);
    assert.ok(moved.length > 100, `keys that move to the fifth master: ${moved.length}`);
    // The old masters keep their copies: a server paused cannot be swept.
    const olds = [...new Set(moved.map((k) => ownerOf(four, backup, k)))];
    fs.writeFileSync(run.file, yaml(run.port, run.admin, five, backup));
    for (const m of olds) await m.pause();
    run.proxy.signal('SIGHUP');
    await waitState([run.proxy], masters[4]!.addr, ['up'], WARMUP_S * 1000 + 10_000);
    // Half the moved keys overwritten, half deleted, on the fifth master (and the backup).
    const written = moved.filter((_, i) => i % 2 === 0);
    const deleted = moved.filter((_, i) => i % 2 === 1);
    await setAll(run.c, written, (k) => `new-${k}`);
    run.c.write(deleted.map((k) => `delete ${k}\r\n`).join(''));
    await run.c.readUntil((x) => x.toString('latin1').split('\r\n').length > deleted.length, 10_000);
    for (const m of olds) m.signal('SIGCONT');
    // Back to four masters before any sweep of the old ones could run.
    fs.writeFileSync(run.file, yaml(run.port, run.admin, four, backup));
    run.proxy.signal('SIGHUP');
    const expected = (k: string): string | null => (written.includes(k) ? `new-${k}` : deleted.includes(k) ? null : `old-${k}`);
    const settled = (async () => {
      for (const m of four.masters) await waitState([run.proxy], m.addr, ['up'], WARMUP_S * 1000 + 15_000);
    })();
    const seen = await watchReads(run.c, moved, expected, settled);
    await settled;
    assert.equal(seen.wrong.slice(0, 5), [], `no stale value after the revert (${seen.wrong.length} wrong)`);
    const { found } = await getMany(run.c, moved);
    assert.equal(moved.filter((k) => (found.get(k) ?? null) !== expected(k)).slice(0, 5), [], 'every moved key as last written');
  } finally { closeRun(run); }
});

test.run();
