// A reload (SIGHUP) in the middle of a server's recovery (issue 22 item 1): for
// each state the master can be in (down, recovering, warming) and each kind of
// reload (the same file, a setting changed, a server added), the master gets
// back to up within two retry intervals past its warm-up, and then the tables
// (`stats servers`), /metrics and the log agree, and reads reach the master.
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

type State = 'down' | 'recovering' | 'warming';
type Kind = 'the same file' | 'a setting changed' | 'a master added';

async function scenario(state: State, kind: Kind): Promise<void> {
  const [master, backup, extra] = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
  procs.push(master, backup, extra);
  const port = await freePort();
  const admin = await freePort();
  const file = path.join(dir, `${state}-${kind.replace(/ /g, '-')}.yml`);
  const yaml = (masters: string[], verbose = false): string => [
    `listen: 127.0.0.1:${port}`, `admin: 127.0.0.1:${admin}`, 'workers: 2', 'timeout_ms: 300',
    `retry_interval_ms: ${RETRY_MS}`, `warmup: { seconds: ${WARMUP_S} }`, `verbose: ${verbose ? 1 : 0}`,
    'masters:', ...masters.map((m) => `  - ${m}`), 'backups:', `  - ${backup.addr}`, '',
  ].join('\n');
  fs.writeFileSync(file, yaml([master.addr]));
  const proxy = new Proc(spawn(process.execPath, [CLI, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }), port);
  procs.push(proxy);
  await waitForPort(port, 10_000);
  const c = await WireClient.connect(port);
  try {
    const data = Array.from({ length: 200 }, (_, i): [string, string] => [`rl:${i}`, `v${i}`]);
    assert.equal(await setMany(c, data), [], 'stored');
    await sleep(RETRY_MS * 2); // the prober has the master's identity
    let live = master;
    if (state === 'down') {
      master.signal('SIGSTOP');
      await getMany(c, data.slice(0, 5).map(([k]) => k), 1, 5);
      await waitState([proxy], master.addr, ['down'], 5000);
    } else {
      await master.stop();
      await getMany(c, data.slice(0, 5).map(([k]) => k), 1, 5);
      await waitState([proxy], master.addr, ['down'], 5000);
      live = await startMemcached({ port: master.port });
      procs.push(live);
      await waitState([proxy], master.addr, [state], 5000);
    }
    if (kind === 'a setting changed') fs.writeFileSync(file, yaml([master.addr], true));
    if (kind === 'a master added') fs.writeFileSync(file, yaml([master.addr, extra.addr]));
    proxy.signal('SIGHUP');
    if (state === 'down') { await sleep(RETRY_MS); master.signal('SIGCONT'); }
    const within = WARMUP_S * 1000 + 2 * RETRY_MS + 2000;
    await waitState([proxy], master.addr, ['up'], within);
    await sleep(RETRY_MS);
    assert.is((await serverStats(port)).table.get(master.addr)?.get('state'), 'up', 'stats servers');
    assert.match(await metrics(admin), `mcrelay_server_state{server="${master.addr}",role="master",state="up"} 1`, '/metrics');
    assert.is(lastLogged(proxy, master.addr), 'up', `the log's last word on the master:\n${proxy.output}`);
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

for (const state of ['down', 'recovering', 'warming'] as const) {
  for (const kind of ['the same file', 'a setting changed', 'a master added'] as const) {
    test(`a reload while the master is ${state}, with ${kind}: it gets back to up, and tables, metrics and log agree`, () => scenario(state, kind));
  }
}

test.run();
