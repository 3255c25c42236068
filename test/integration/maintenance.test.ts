// Planned maintenance (issue 16 item 5): a master drained through one entry's
// admin listener (`mcrelay ctl drain`), rebooted empty, and undrained, under
// the verified load through both entries: 0 misses of keys written before,
// 0 stale values, 0 unanswered requests. Write endpoints refuse a non-loopback
// admin address.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { CLI, freePort, sleep, startMemcached, startProxy, waitForPort, type Proc } from '../helpers/procs.js';
import { Load } from '../helpers/load.js';
import { waitState } from '../helpers/cluster.js';

const procs: Proc[] = [];

function ctl(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'ctl', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('exit', (code) => resolve({ code, out }));
  });
}

test('drain, reboot and undrain of a master under load through both entries: 0 misses, 0 stale, 0 unanswered', async () => {
  const loads: Load[] = [];
  try {
    const [m0, m1, b0] = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
    procs.push(m0, m1, b0);
    const admins = [await freePort(), await freePort()];
    const flags = ['-s', m0.addr, '-s', m1.addr, '-b', b0.addr, '--workers', '2', '--timeout', '300', '--retry-interval', '200', '--warmup-seconds', '2'];
    const entries = [await startProxy([...flags, '--admin', `127.0.0.1:${admins[0]}`]), await startProxy([...flags, '--admin', `127.0.0.1:${admins[1]}`])];
    procs.push(...entries);
    entries.forEach((e, i) => loads.push(new Load({ port: e.port, connections: 4, keysPerConnection: 50, countersPerConnection: 2, deadlineMs: 3000, pauseMs: 2, prefix: `mt${i}` })));
    for (const l of loads) l.start();
    await sleep(1000);

    const drained = await ctl(['drain', m0.addr, '--admin', `127.0.0.1:${admins[0]}`]);
    assert.is(drained.code, 0, drained.out);
    assert.match(drained.out, /"state":"(draining|drained)"/);
    await waitState(entries, m0.addr, ['drained'], 5000);
    // Maintenance: it is rebooted (comes back empty).
    await m0.stop();
    await sleep(300);
    const back = await startMemcached({ port: m0.port });
    procs.push(back);
    await sleep(500);
    assert.equal((await Promise.all(entries.map((e) => waitState([e], m0.addr, ['drained'], 1000).then(() => 'drained')))), ['drained', 'drained'], 'not probed back while drained');

    const undrained = await ctl(['undrain', m0.addr, '--admin', `127.0.0.1:${admins[1]}`]);
    assert.is(undrained.code, 0, undrained.out);
    await waitState(entries, m0.addr, ['up'], 10_000);
    await sleep(500);
    for (const l of loads) await l.stop();
    for (let i = 0; i < loads.length; i++) await loads[i]!.finalCheck(entries[i]!.port);
    for (const [i, l] of loads.entries()) {
      const v = l.verifier;
      console.log(`    entry ${i + 1}: ${v.summary()}`);
      assert.equal(v.problems.slice(0, 5), [], `entry ${i + 1}: ${v.summary()}`);
      assert.ok(v.counts.reads > 100 && v.counts.acked > 100, `entry ${i + 1} carried a load: ${v.summary()}`);
    }
    const status = await ctl(['status', m0.addr, '--admin', `127.0.0.1:${admins[0]}`]);
    assert.match(status.out, /"state":"up"/);
  } finally {
    for (const l of loads) await l.stop();
    await Promise.all(procs.splice(0).map((p) => p.stop()));
  }
});

test('drain on a non-loopback admin address: 403; unknown server: 404; bad usage: exit 2', async () => {
  try {
    const [m0, b0] = await Promise.all([startMemcached(), startMemcached()]);
    procs.push(m0, b0);
    // A port free on 127.0.0.1 a moment ago may since be the local end of some
    // connection, which 0.0.0.0 cannot bind (mcrelay then runs without its admin
    // listener and says so): another port, up to three times.
    let admin = 0;
    for (let attempt = 1; admin === 0; attempt++) {
      const port = await freePort();
      const p = await startProxy(['-s', m0.addr, '-b', b0.addr, '--workers', '1', '--admin', `0.0.0.0:${port}`, '--admin-insecure']);
      procs.push(p);
      try {
        await waitForPort(port, 2000);
        admin = port;
      } catch (err) {
        if (attempt === 3) throw err;
        await procs.pop()!.stop();
      }
    }
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: admin, method: 'POST', path: `/servers/${m0.addr}/drain` }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
      req.on('error', reject);
      req.end();
    });
    assert.is(status, 403);
    const unknown = await ctl(['status', '127.0.0.1:1', '--admin', `127.0.0.1:${admin}`]);
    assert.is(unknown.code, 1);
    assert.match(unknown.out, /not a master of this proxy/);
    assert.is((await ctl(['frobnicate', m0.addr])).code, 2);
  } finally {
    await Promise.all(procs.splice(0).map((p) => p.stop()));
  }
});

test.run();
