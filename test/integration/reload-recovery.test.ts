// A reload (SIGHUP) in the middle of a server's recovery (issue 22 item 1): for
// each state the master can be in (up, down, recovering, warming, restoring)
// and each kind of reload (the same file, a setting changed, a master added, a
// master removed), the master gets back to up within two retry intervals past
// its warm-up (and its restore), and then the tables (`stats servers`),
// /metrics and the log agree, reads reach the master, and every key the backup
// holds for it is back on it. A reload that removes the master itself stops
// its recovery and its restore.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { CLI, freePort, Proc, sleep, startMemcached, waitForPort } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { getMany, setMany } from '../helpers/mc.js';
import { serverStats, waitState, withDirect } from '../helpers/cluster.js';
import { Router } from '../../src/routing/router.js';

const RETRY_MS = 200;
const WARMUP_S = 2;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcrelay-reload-'));
const procs: Proc[] = [];

function metrics(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** The last state change the log reports for a server. */
function lastLogged(p: Proc, addr: string): string | undefined {
  const lines = p.output.split('\n').filter((l) => l.includes(`"server":"${addr}"`) && /server (marked up|marked down|recovering|warming)/.test(l));
  const m = /"msg":"server (marked up|marked down|recovering|warming)"/.exec(lines.at(-1) ?? '');
  return m === null ? undefined : { 'marked up': 'up', 'marked down': 'down', recovering: 'recovering', warming: 'warming' }[m[1]!];
}

type State = 'up' | 'down' | 'recovering' | 'warming' | 'restoring';
type Kind = 'the same file' | 'a setting changed' | 'a master added' | 'a master removed';

/** Keys found on a memcached, read directly. */
async function heldOn(port: number, keys: readonly string[]): Promise<Set<string>> {
  return new Set((await withDirect(port, (d) => getMany(d, keys))).found.keys());
}

async function scenario(state: State, kind: Kind): Promise<void> {
  const [master, backup, extra] = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
  procs.push(master, backup, extra);
  const port = await freePort();
  const admin = await freePort();
  const file = path.join(dir, `${state}-${kind.replace(/ /g, '-')}.yml`);
  // Restoring: slow enough (200 keys at 100 a second) for the reload to land in the middle.
  const keysPerSecond = state === 'restoring' ? 100 : 100_000;
  const yaml = (masters: string[], verbose = false): string => [
    `listen: 127.0.0.1:${port}`, `admin: 127.0.0.1:${admin}`, 'workers: 2', 'timeout_ms: 300',
    `retry_interval_ms: ${RETRY_MS}`, 'switch_delay_seconds: 0', `warmup: { seconds: ${WARMUP_S} }`, `restore: { keys_per_second: ${keysPerSecond} }`,
    `verbose: ${verbose ? 1 : 0}`, 'masters:', ...masters.map((m) => `  - ${m}`), 'backups:', `  - ${backup.addr}`, '',
  ].join('\n');
  const before = kind === 'a master removed' ? [master.addr, extra.addr] : [master.addr];
  const after = kind === 'a master added' ? [master.addr, extra.addr] : [master.addr];
  fs.writeFileSync(file, yaml(before));
  const proxy = new Proc(spawn(process.execPath, [CLI, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }), port);
  procs.push(proxy);
  await waitForPort(port, 10_000);
  const c = await WireClient.connect(port);
  try {
    const data = Array.from({ length: 200 }, (_, i): [string, string] => [`rl:${i}`, `v${i}`]);
    const keys = data.map(([k]) => k);
    assert.equal(await setMany(c, data), [], 'stored');
    await sleep(RETRY_MS * 2); // the prober has the master's identity
    let live = master;
    if (state === 'down') {
      await master.pause();
      await getMany(c, keys.slice(0, 5), 1, 5);
      await waitState([proxy], master.addr, ['down'], 5000);
    } else if (state !== 'up') {
      await master.stop();
      await getMany(c, keys.slice(0, 5), 1, 5);
      await waitState([proxy], master.addr, ['down'], 5000);
      live = await startMemcached({ port: master.port });
      procs.push(live);
      if (state === 'restoring') {
        // Some keys copied, not all.
        let copied = 0;
        for (let i = 0; i < 100 && copied < 20; i++) { await sleep(50); copied = (await heldOn(live.port, keys)).size; }
        assert.ok(copied >= 20 && copied < 150, `the restore is under way: ${copied} keys copied`);
      } else {
        await waitState([proxy], master.addr, [state], 5000);
      }
    }
    if (kind === 'a setting changed') fs.writeFileSync(file, yaml(after, true));
    else fs.writeFileSync(file, yaml(after));
    const reloads = (): number => proxy.output.split('configuration reloaded').length - 1;
    const reloadsBefore = reloads();
    proxy.signal('SIGHUP');
    // Applied before anything is waited for: the master may leave up for a while (a master removed moves keys to it).
    for (let i = 0; i < 100 && reloads() === reloadsBefore; i++) await sleep(50);
    assert.is(reloads(), reloadsBefore + 1, `the reload was applied:\n${proxy.output}`);
    if (state === 'down') { await sleep(RETRY_MS); master.signal('SIGCONT'); }
    // The restore starts over after the reload (the keys copied already are skipped): up to 2 s more.
    const within = WARMUP_S * 1000 + 2 * RETRY_MS + 2000 + (state === 'restoring' ? 3000 : 0);
    await waitState([proxy], master.addr, ['up'], within);
    await sleep(RETRY_MS);
    assert.is((await serverStats(port)).table.get(master.addr)?.get('state'), 'up', 'stats servers');
    assert.match(await metrics(admin), `mcrelay_server_state{server="${master.addr}",role="master",state="up"} 1`, '/metrics');
    // Never changed, the master of state up has no word in the log; unless the
    // removed master's keys move to it, which it is swept and warmed for (placement.test.ts).
    const quiet = state === 'up' && kind !== 'a master removed';
    assert.is(lastLogged(proxy, master.addr), quiet ? undefined : 'up', `the log's last word on the master:\n${proxy.output}`);
    if (state !== 'up' && state !== 'down') {
      // Every key the backup holds that routes to the master now is back on it.
      const router = new Router('jump', after, [backup.addr]);
      const its = keys.filter((k) => { router.route(Buffer.from(k), 0, k.length); return router.master === 0; });
      let missing: string[] = [];
      for (let i = 0; i < 50; i++) {
        const held = await heldOn(live.port, its);
        missing = its.filter((k) => !held.has(k));
        if (missing.length === 0) break;
        await sleep(100);
      }
      assert.equal(missing.slice(0, 5), [], `${missing.length} of the master's ${its.length} keys not restored\n${proxy.output}`);
      assert.is((await serverStats(port)).table.get(master.addr)?.get('restore_state'), 'done', 'restore_state');
    }
    // A key of the master's, changed on the master alone: reading the change proves the read went there.
    const probeKeys = Array.from({ length: 20 }, (_, i) => `om${i}`);
    assert.equal(await setMany(c, probeKeys.map((k) => [k, 'b'])), [], 'probe keys stored');
    const mine = [...(await withDirect(live.port, (d) => getMany(d, probeKeys))).found.keys()];
    assert.ok(mine.length > 0, 'some probe key routes to the master');
    await withDirect(live.port, (d) => setMany(d, mine.map((k) => [k, 'm'])));
    const { found } = await getMany(c, mine);
    assert.equal([...found.values()], mine.map(() => 'm'), 'reads reach the master');
  } finally {
    c.close();
    for (const p of procs) p.signal('SIGCONT');
    await Promise.all(procs.splice(0).map((p) => p.stop()));
  }
}

for (const state of ['up', 'down', 'recovering', 'warming', 'restoring'] as const) {
  for (const kind of ['the same file', 'a setting changed', 'a master added', 'a master removed'] as const) {
    test(`a reload while the master is ${state}, with ${kind}: it gets back to up, and tables, metrics and log agree`, () => scenario(state, kind));
  }
}

test('a reload that removes a master while it is restoring stops its recovery and its restore', async () => {
  const [master, backup, other] = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
  procs.push(master, backup, other);
  const port = await freePort();
  const file = path.join(dir, 'removed.yml');
  const yaml = (masters: string[]): string => [
    `listen: 127.0.0.1:${port}`, 'workers: 2', 'timeout_ms: 300', `retry_interval_ms: ${RETRY_MS}`, 'switch_delay_seconds: 0',
    `warmup: { seconds: ${WARMUP_S} }`, 'restore: { keys_per_second: 100 }',
    'masters:', ...masters.map((m) => `  - ${m}`), 'backups:', `  - ${backup.addr}`, '',
  ].join('\n');
  fs.writeFileSync(file, yaml([master.addr, other.addr]));
  const proxy = new Proc(spawn(process.execPath, [CLI, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }), port);
  procs.push(proxy);
  await waitForPort(port, 10_000);
  const c = await WireClient.connect(port);
  try {
    const keys = Array.from({ length: 400 }, (_, i) => `rm:${i}`);
    assert.equal(await setMany(c, keys.map((k) => [k, 'v'])), [], 'stored');
    await sleep(RETRY_MS * 2);
    await master.stop();
    await getMany(c, keys.slice(0, 20), 1, 5);
    await waitState([proxy], master.addr, ['down'], 5000);
    const live = await startMemcached({ port: master.port });
    procs.push(live);
    let copied = 0;
    for (let i = 0; i < 100 && copied < 10; i++) { await sleep(50); copied = (await heldOn(live.port, keys)).size; }
    assert.ok(copied >= 10, `the restore is under way: ${copied} keys copied`);
    fs.writeFileSync(file, yaml([other.addr]));
    const mark = proxy.output.length;
    proxy.signal('SIGHUP');
    await sleep(1500);
    const atStop = (await heldOn(live.port, keys)).size;
    await sleep(1000);
    assert.is((await heldOn(live.port, keys)).size, atStop, 'no key copied to the removed master after the reload');
    assert.not.ok((await serverStats(port)).table.has(master.addr), 'stats servers no longer lists it');
    const since = proxy.output.slice(mark).split('\n').filter((l) => l.includes(`"server":"${master.addr}"`));
    assert.equal(since.filter((l) => /server (marked|recovering|warming)|restore started/.test(l)), [], 'no state change or restore for it in the log');
  } finally {
    c.close();
    await Promise.all(procs.splice(0).map((p) => p.stop()));
  }
});

test.run();
