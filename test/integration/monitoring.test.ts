// Monitoring a cache tier through mcrelay (issue 22 item 2): plain `stats` adds
// the servers' own totals over the masters serving reads (backups apart, in
// `stats servers`), `stats <group> <server>` is that server's own answer,
// `stats <group>` alone says which form to use, `stats settings` is mcrelay's,
// and commands that act on one server are refused with a CLIENT_ERROR.
//
//   this test --> mcrelay (-s m1 -s m2 -b b, --config, retry 200 ms) --> m1, m2, b
//        \----------------------- direct: what each server itself answers ----/
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { CLI, freePort, Proc, startMemcached, waitForPort } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { eventually, setMany } from '../helpers/mc.js';
import { serverStats, waitState, withDirect } from '../helpers/cluster.js';

const RETRY_MS = 200;
const MB64 = 64 * 1024 * 1024;
const procs: Proc[] = [];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcrelay-monitoring-'));
let m1: Proc;
let m2: Proc;
let backup: Proc;
let proxy: Proc;
let file = '';
let c: WireClient;

function yaml(masters: readonly Proc[], port: number): string {
  return [`listen: 127.0.0.1:${port}`, 'admin: off', 'workers: 2', 'timeout_ms: 500', `retry_interval_ms: ${RETRY_MS}`, 'switch_delay_seconds: 0',
    'masters:', ...masters.map((m) => `  - ${m.addr}`), 'backups:', `  - ${backup.addr}`, ''].join('\n');
}

/** `stats` (or another stats line) as name -> value. */
async function statsOf(port: number, line = 'stats'): Promise<Map<string, string>> {
  const raw = await withDirect(port, (d) => d.request(`${line}\r\n`, 'END\r\n', 3000));
  return new Map(raw.split('\r\n').filter((l) => l.startsWith('STAT ')).map((l) => {
    const sp = l.indexOf(' ', 5);
    return [l.slice(5, sp), l.slice(sp + 1)] as [string, string];
  }));
}

/** One reply through the proxy's client connection, whole: a line, or STAT/VALUE lines up to END. */
async function ask(line: string): Promise<string> {
  c.write(`${line}\r\n`);
  const b = await c.readUntil((x) => {
    const t = x.toString('latin1');
    if (!t.endsWith('\r\n')) return false;
    return t.startsWith('STAT ') || t.startsWith('VALUE ') ? t.endsWith('END\r\n') : true;
  }, 3000);
  return b.toString('latin1');
}

test.before(async () => {
  [m1, m2, backup] = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
  procs.push(m1, m2, backup);
  const port = await freePort();
  file = path.join(dir, 'mcrelay.yml');
  fs.writeFileSync(file, yaml([m1, m2], port));
  proxy = new Proc(spawn(process.execPath, [CLI, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }), port);
  procs.push(proxy);
  await waitForPort(port, 10_000);
  c = await WireClient.connect(port);
  const bad = await setMany(c, Array.from({ length: 100 }, (_, i): [string, string] => [`mon:${i}`, 'x'.repeat(100)]));
  assert.equal(bad, []);
});

test.after(async () => {
  c?.close();
  await Promise.all(procs.map((p) => p.stop('SIGKILL')));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('stats: the masters\' own totals, summed; the backup apart, in stats servers', async () => {
  // The backup holds all 100 too: counted in, curr_items would be 200.
  const ok = await eventually(async () => (await statsOf(proxy.port)).get('curr_items') === '100', 3000, 50);
  const s = await statsOf(proxy.port);
  assert.ok(ok, `curr_items ${s.get('curr_items')}`);
  const [d1, d2] = [await statsOf(m1.port), await statsOf(m2.port)];
  assert.is(Number(d1.get('curr_items')) + Number(d2.get('curr_items')), 100);
  assert.is(s.get('limit_maxbytes'), String(2 * MB64));
  assert.is(s.get('total_items'), String(Number(d1.get('total_items')) + Number(d2.get('total_items'))));
  assert.is(s.get('bytes'), String(Number(d1.get('bytes')) + Number(d2.get('bytes'))));
  for (const f of ['evictions', 'expired_unfetched', 'evicted_unfetched', 'get_expired', 'get_flushed', 'reclaimed']) assert.is(s.get(f), '0', f);
  // mcrelay's own counters stay mcrelay's: the clients' 100 sets.
  assert.is(s.get('cmd_set'), '100');
  assert.is(s.get('pid'), String(proxy.pid));

  const { table } = await serverStats(proxy.port);
  assert.is(table.get(backup.addr)?.get('curr_items'), '100');
  assert.is(table.get(backup.addr)?.get('limit_maxbytes'), String(MB64));
  assert.is(table.get(m1.addr)?.get('curr_items'), d1.get('curr_items'));
  assert.is(table.get(m2.addr)?.get('curr_items'), d2.get('curr_items'));
});

test('stats items <server>: what that server itself answers', async () => {
  // Item ages tick with the clock; everything else must match byte for byte.
  const norm = (s: string): string => s.replace(/^(STAT items:\d+:age\w*) \d+$/gm, '$1 N');
  const through = await ask(`stats items ${m1.addr}`);
  const direct = await withDirect(m1.port, (d) => d.request('stats items\r\n', 'END\r\n'));
  assert.match(through, /^STAT items:\d+:number /);
  assert.is(norm(through), norm(direct));
  assert.is(await ask(`stats settings ${backup.addr}`), await withDirect(backup.port, (d) => d.request('stats settings\r\n', 'END\r\n')));
  const slabs = await ask(`stats slabs ${m2.addr}`);
  assert.match(slabs, /\r\nSTAT active_slabs \d+\r\nSTAT total_malloced \d+\r\nEND\r\n$/);
  assert.match(await ask(`stats ${m2.addr}`), new RegExp(`^STAT pid ${m2.pid}\\r\\n`));
  assert.match(await ask(`stats conns ${m1.addr}`), /^STAT \d+:addr tcp:127\.0\.0\.1:/);
  assert.is(await ask(`stats detail dump ${m1.addr}`), 'END\r\n');
  // Pipelined: the server's reply keeps its place before the get's.
  c.write(`stats settings ${m1.addr}\r\nget mon:2\r\n`);
  const both = (await c.readUntil((x) => x.toString('latin1').endsWith('\r\nEND\r\n') && x.includes('VALUE mon:2'), 3000)).toString('latin1');
  assert.match(both, new RegExp(`^STAT maxbytes ${MB64}\\r\\n[^]*\\r\\nEND\\r\\nVALUE mon:2 0 100\\r\\nx{100}\\r\\nEND\\r\\n$`));
});

test('stats <group> with no server: a CLIENT_ERROR naming the form, never ERROR', async () => {
  for (const group of ['items', 'slabs', 'sizes', 'conns', 'detail dump']) {
    assert.is(await ask(`stats ${group}`), `CLIENT_ERROR usage: stats ${group} <server>, a server as stats servers names it: mcrelay answers this for one server at a time\r\n`, group);
  }
  assert.is(await ask('stats items 127.0.0.1:1'), "CLIENT_ERROR unknown server 127.0.0.1:1: stats servers lists mcrelay's servers\r\n");
  assert.is(await ask(`stats detail on ${m1.addr}`), "CLIENT_ERROR stats detail on changes a server's settings: mcrelay does not pass it on; send it to the server directly\r\n");
  assert.is(await ask('stats nonsense'), 'ERROR\r\n');
});

test('stats settings: mcrelay\'s own, in memcached\'s format', async () => {
  const s = await statsOf(proxy.port, 'stats settings');
  assert.is(s.get('maxconns'), '4096');
  assert.is(s.get('tcpport'), String(proxy.port));
  assert.is(s.get('num_threads'), '2');
  assert.is(s.get('item_size_max'), '1048576');
  assert.is(s.get('masters'), `${m1.addr},${m2.addr}`);
  assert.is(s.get('backups'), backup.addr);
  assert.is(s.get('retry_interval_ms'), String(RETRY_MS));
  assert.is(s.get('backup_coverage_warn'), '0.95');
});

test('commands that act on one server: a CLIENT_ERROR that says so, and the connection goes on', async () => {
  for (const [line, name] of [['watch', 'watch'], ['watch fetchers mutations', 'watch'], ['lru_crawler metadump all', 'lru_crawler'],
    ['shutdown', 'shutdown'], ['slabs reassign 1 2', 'slabs'], ['slabs automove 1', 'slabs'], ['cache_memlimit 100', 'cache_memlimit']] as const) {
    assert.is(await ask(line), `CLIENT_ERROR ${name} is not passed on by mcrelay: it acts on one server, send it to that server directly\r\n`, line);
  }
  assert.match(await ask('get mon:1'), /^VALUE mon:1 0 100\r\n/);
  // Nothing reached the servers: memcached would have answered cache_memlimit.
  assert.is((await statsOf(m1.port)).get('limit_maxbytes'), String(MB64));
});

test('a master down: stats sums the masters still up, and its own figures leave stats servers', async () => {
  const d1 = await statsOf(m1.port);
  await m2.stop('SIGKILL');
  assert.ok(await waitState([proxy], m2.addr, ['down'], 3000) >= 0, 'm2 never marked down');
  const ok = await eventually(async () => (await statsOf(proxy.port)).get('limit_maxbytes') === String(MB64), 3000, 50);
  const s = await statsOf(proxy.port);
  assert.ok(ok, `limit_maxbytes ${s.get('limit_maxbytes')}`);
  assert.is(s.get('curr_items'), d1.get('curr_items'));
  const { table } = await serverStats(proxy.port);
  assert.is(table.get(m2.addr)?.get('curr_items'), undefined);
  assert.is(table.get(m1.addr)?.get('curr_items'), d1.get('curr_items'));
  assert.is(await ask(`stats items ${m2.addr}`), 'SERVER_ERROR backend unavailable\r\n');
});

test('a reload: the new master is polled, summed and asked', async () => {
  const m3 = await startMemcached({ memoryMb: 32 });
  procs.push(m3);
  fs.writeFileSync(file, yaml([m1, m3], proxy.port));
  proxy.signal('SIGHUP');
  const want = String(MB64 + 32 * 1024 * 1024);
  const ok = await eventually(async () => (await statsOf(proxy.port)).get('limit_maxbytes') === want, 5000, 50);
  assert.ok(ok, `limit_maxbytes ${(await statsOf(proxy.port)).get('limit_maxbytes')}`);
  assert.is((await serverStats(proxy.port)).table.get(m3.addr)?.get('limit_maxbytes'), String(32 * 1024 * 1024));
  assert.match(await ask(`stats settings ${m3.addr}`), new RegExp(`^STAT maxbytes ${32 * 1024 * 1024}\\r\\n`));
  assert.match(await ask(`stats items ${m2.addr}`), /^CLIENT_ERROR unknown server /);
});

test.run();
