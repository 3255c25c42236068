// A backup that keeps almost nothing no longer goes unnoticed (issue 22 item 3).
//
//   mcrelay -s m (64 MB) -b evicting (-m 2) -b refusing (-m 2 -M) -b good (64 MB)
//   20,000 x 1 KB sets through it: each backup gets a third, about 6.8 MB
//
// The two small backups fall under backup_coverage_warn (0.95): each is logged
// once (at most once a minute), /ready says degraded and stays 200, `stats
// servers` and /metrics show coverage, the evicting one's evictions and the
// refusing one's write refusals; the 64 MB backup is covered and not logged.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import { freePort, startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { eventually, setMany } from '../helpers/mc.js';
import { serverStats } from '../helpers/cluster.js';

const RETRY_MS = 500;
const WARNING = 'backup holds too few of its masters\' keys';
const procs: Proc[] = [];
let master: Proc;
let evicting: Proc;
let refusing: Proc;
let good: Proc;
let proxy: Proc;
let admin = 0;

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

function warnings(server: Proc): number {
  return proxy.output.split('\n').filter((l) => l.includes(WARNING) && l.includes(`"server":"${server.addr}"`)).length;
}

test.before(async () => {
  [master, evicting, refusing, good] = await Promise.all([
    startMemcached(), startMemcached({ memoryMb: 2 }), startMemcached({ memoryMb: 2, extraArgs: ['-M'] }), startMemcached(),
  ]);
  procs.push(master, evicting, refusing, good);
  admin = await freePort();
  proxy = await startProxy(['-s', master.addr, '-b', evicting.addr, '-b', refusing.addr, '-b', good.addr,
    '--workers', '2', '--retry-interval', String(RETRY_MS), '--timeout', '1000', '--admin', `127.0.0.1:${admin}`]);
  procs.push(proxy);
  const c = await WireClient.connect(proxy.port);
  try {
    const value = 'v'.repeat(1024);
    const bad = await setMany(c, Array.from({ length: 20_000 }, (_, i): [string, string] => [`cov:${i}`, value]));
    // The master stores everything: every client sees STORED, whatever the backups did.
    assert.equal(bad, []);
  } finally {
    c.close();
  }
});

test.after(async () => {
  await Promise.all(procs.map((p) => p.stop('SIGKILL')));
});

test('coverage falls under the threshold for the small backups only, in stats servers', async () => {
  // A check may have run while the small backups still held all they had been sent.
  const measured = await eventually(async () => {
    const { table } = await serverStats(proxy.port);
    return table.get(good.addr)?.has('coverage') === true &&
      [evicting, refusing].every((b) => Number(table.get(b.addr)?.get('coverage') ?? 1) < 0.95);
  }, 10_000, 100);
  const { table, raw } = await serverStats(proxy.port);
  assert.ok(measured, raw);
  const row = (p: Proc): Map<string, string> => table.get(p.addr)!;
  assert.ok(Number(row(evicting).get('coverage')) < 0.95, raw);
  assert.ok(Number(row(refusing).get('coverage')) < 0.95, raw);
  assert.is(row(good).get('coverage'), '1.000', raw);
  assert.ok(Number(row(evicting).get('coverage_checked')) >= 8, raw);
  // What the servers say of themselves, and what mcrelay saw of their replies.
  assert.ok(Number(row(evicting).get('evictions')) > 0, raw);
  assert.is(row(evicting).get('write_refusals'), '0');
  assert.ok(Number(row(refusing).get('write_refusals')) > 0, raw);
  assert.ok(Number(row(refusing).get('store_no_memory')) > 0, raw);
  assert.is(row(good).get('write_refusals'), '0');
  assert.is(row(good).get('evictions'), '0');
  // Masters have no coverage of their own.
  assert.is(row(master).get('coverage'), undefined);
});

test('one warning per low backup, none for the covered one, however many checks pass', async () => {
  assert.ok(await eventually(async () => warnings(evicting) > 0 && warnings(refusing) > 0, 5000, 50), proxy.output.slice(-2000));
  // Several more checks: still one line each (at most once a minute).
  await new Promise((r) => setTimeout(r, RETRY_MS * 4));
  assert.is(warnings(evicting), 1);
  assert.is(warnings(refusing), 1);
  assert.is(warnings(good), 0);
  const line = proxy.output.split('\n').find((l) => l.includes(WARNING) && l.includes(evicting.addr))!;
  const logged = JSON.parse(line) as { level: number | string; coverage: number; threshold: number; checked: number };
  assert.ok(logged.coverage < 0.95);
  assert.is(logged.threshold, 0.95);
});

test('/ready: 200, and its JSON body says redundancy is degraded, naming the backups', async () => {
  const r = await get(admin, '/ready');
  assert.is(r.status, 200);
  const body = JSON.parse(r.body) as { status: string; redundancy: string; backups: Array<{ server: string; state: string; coverage: number }> };
  assert.is(body.status, 'ready');
  assert.is(body.redundancy, 'degraded');
  const of = (p: Proc) => body.backups.find((b) => b.server === p.addr)!;
  assert.ok(of(evicting).coverage < 0.95);
  assert.ok(of(refusing).coverage < 0.95);
  assert.is(of(good).coverage, 1);
  assert.is(of(good).state, 'up');
});

test('/metrics: coverage and write refusals per backup', async () => {
  const { body } = await get(admin, '/metrics');
  const value = (name: string, p: Proc): number => {
    const m = new RegExp(`^mcrelay_${name}\\{server="${p.addr}",role="backup"\\} (\\S+)$`, 'm').exec(body);
    assert.ok(m !== null, `${name} for ${p.addr}`);
    return Number(m![1]);
  };
  assert.ok(value('server_backup_coverage', evicting) < 0.95);
  assert.is(value('server_backup_coverage', good), 1);
  assert.ok(value('server_write_refusals_total', refusing) > 0);
  assert.is(value('server_write_refusals_total', good), 0);
  assert.ok(value('server_items_evicted_total', evicting) > 0);
  assert.ok(value('server_store_no_memory_total', refusing) > 0);
});

test.run();
