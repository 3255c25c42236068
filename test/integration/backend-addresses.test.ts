// The forms a backend address takes, as the worker's own connections see them:
// a host name (looked up), a unix socket path, a name that does not resolve and
// a port nothing listens on. A client observes the values it stored, and the
// log names why a server was marked down.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { eventually } from '../helpers/mc.js';
import { freePort, type Proc, startMemcached, startProxy } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';

const procs: Proc[] = [];
const dirs: string[] = [];
test.after.each(async () => {
  for (const p of procs.splice(0)) await p.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** memcached listening on a unix socket only; returns the socket's path. */
async function startUnixMemcached(): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mcrelay-sock-'));
  dirs.push(dir);
  const sock = path.join(dir, 'mc.sock');
  const proc = await startMemcached({ socketPath: sock, memoryMb: 16 });
  procs.push(proc);
  return sock;
}

/** One request on a connection of its own: to a TCP port on 127.0.0.1, or to a unix socket path. */
async function request(to: number | string, text: string, until: string): Promise<string> {
  const c = typeof to === 'number' ? await WireClient.connect(to) : await WireClient.connectPath(to);
  try {
    return await c.request(text, until);
  } finally {
    c.close();
  }
}

test('a master given by host name and a backup on a unix socket: a set lands on both, a get reads it back', async () => {
  const master = await startMemcached();
  procs.push(master);
  const backup = await startUnixMemcached();
  const proxy = await startProxy(['-s', `localhost:${master.port}`, '-b', backup, '--workers', '1']);
  procs.push(proxy);
  assert.is(await request(proxy.port, 'set k 5 0 5\r\nhello\r\n', '\r\n'), 'STORED\r\n');
  assert.is(await request(proxy.port, 'get k\r\n', 'END\r\n'), 'VALUE k 5 5\r\nhello\r\nEND\r\n');
  assert.is(await request(master.port, 'get k\r\n', 'END\r\n'), 'VALUE k 5 5\r\nhello\r\nEND\r\n', 'on the master');
  const onBackup = await request(backup, 'get k\r\n', 'END\r\n');
  assert.is(onBackup, 'VALUE k 5 5\r\nhello\r\nEND\r\n', 'on the backup, through its unix socket');
});

test('a master whose name does not resolve, or whose port refuses: marked down with the reason, the backup answers', async () => {
  const backup = await startMemcached();
  procs.push(backup);
  const refused = await freePort();
  const seed = await WireClient.connect(backup.port);
  for (const k of ['a', 'b']) assert.is(await seed.request(`set ${k} 0 0 1\r\n${k}\r\n`, '\r\n'), 'STORED\r\n');
  seed.close();
  for (const master of ['no-such-host.invalid:11211', `127.0.0.1:${refused}`]) {
    const proxy = await startProxy(['-s', master, '-b', backup.addr, '--workers', '1', '--retry-interval', '60000']);
    procs.push(proxy);
    const c = await WireClient.connect(proxy.port);
    // The first read goes to the master and fails over; later ones go to the backup directly.
    for (let i = 0; i < 3; i++) assert.is(await c.request('get a b\r\n', 'END\r\n'), 'VALUE a 0 1\r\na\r\nVALUE b 0 1\r\nb\r\nEND\r\n');
    c.close();
    const reason = master.startsWith('no-such') ? 'ENOTFOUND no-such-host.invalid:11211' : `connect ECONNREFUSED 127.0.0.1:${refused}`;
    assert.ok(await eventually(async () => proxy.output.includes('server marked down') && proxy.output.includes(reason), 2000),
      `log names the reason (${reason}): ${proxy.output}`);
    await proxy.stop();
  }
});

test.run();
