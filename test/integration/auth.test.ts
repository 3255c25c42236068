// memcached's ASCII authentication (-Y), on both sides of mcrelay.
//
//   client --auth set--> mcrelay --auth_file--> STORED | CLIENT_ERROR ... + close
//   mcrelay --backend_auth_file: auth set first on every connection--> memcached -Y
//
// The replies a client gets before it has authenticated are compared with
// those of a memcached started with -Y on the same file, in the same test;
// mcrelay closes the connection after them (memcached lets the client try
// again). Nothing the client sent, and no password, may reach the log.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { CLI, freePort, Proc, sleep, startMemcached, startProxy } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { eventually } from '../helpers/mc.js';

const procs: Proc[] = [];
test.after.each(async () => { for (const p of procs.splice(0)) await p.stop(); });

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcrelay-auth-'));
const PASSWORD = 'Sesame-7f3a';
const users = path.join(dir, 'users.txt');
fs.writeFileSync(users, `alice:${PASSWORD}\nbob:pw two\n`);

const AUTH_ALICE = `set auth 0 0 ${6 + PASSWORD.length}\r\nalice ${PASSWORD}\r\n`;
const WRONG = 'set auth 0 0 17\r\nalice Sesame-WRONG\r\n';

async function started(p: Promise<Proc>): Promise<Proc> {
  const proc = await p;
  procs.push(proc);
  return proc;
}

/** Sends `wire` and reads what comes until the connection closes (or 1 s of quiet). */
async function answer(port: number, wire: string | Buffer): Promise<{ reply: Buffer; closed: boolean }> {
  const c = await WireClient.connect(port);
  try {
    c.write(wire);
    const reply = await c.readQuiet(300, 3000);
    return { reply, closed: c.closed };
  } finally {
    c.close();
  }
}

async function stat(port: number, name: string): Promise<string | undefined> {
  const c = await WireClient.connect(port);
  try {
    assert.is(await c.request(AUTH_ALICE), 'STORED\r\n');
    const text = await c.request('stats\r\n', 'END\r\n');
    return new RegExp(`^STAT ${name} (\\S+)\\r$`, 'm').exec(text)?.[1];
  } finally {
    c.close();
  }
}

test('a client that authenticates gets STORED, then is served; through a failover to the backup too', async () => {
  const master = await started(startMemcached());
  const backup = await started(startMemcached());
  const proxy = await started(startProxy(['-s', master.addr, '-b', backup.addr, '--auth-file', users, '--workers', '2', '--timeout', '300', '--retry-interval', '200']));
  const c = await WireClient.connect(proxy.port);
  // The auth set and the requests after it in one write.
  c.write(`${AUTH_ALICE}set k1 5 0 2\r\nv1\r\nget k1\r\n`);
  const b = await c.readUntil((x) => x.toString('latin1').endsWith('END\r\n'));
  assert.is(b.toString('latin1'), 'STORED\r\nSTORED\r\nVALUE k1 5 2\r\nv1\r\nEND\r\n');
  assert.is(await c.request('mg k1 v\r\n', '\r\nv1\r\n'), 'VA 2\r\nv1\r\n', 'the meta protocol once authenticated');
  // The other user, whose password has a space.
  const d = await WireClient.connect(proxy.port);
  assert.is(await d.request('set a 0 0 10\r\nbob pw two\r\n'), 'STORED\r\n');
  assert.is(await d.request('get k1\r\n', 'END\r\n'), 'VALUE k1 5 2\r\nv1\r\nEND\r\n');
  d.close();
  // The auth sets were answered by mcrelay: neither server holds their key.
  for (const server of [master, backup]) {
    const direct = await WireClient.connect(server.port);
    assert.is(await direct.request('get auth a\r\n', 'END\r\n'), 'END\r\n', `no auth set reached ${server.addr}`);
    direct.close();
  }
  // The master dies: the authenticated client reads from the backup, and a new one authenticates as before.
  await master.stop();
  assert.is(await c.request('get k1\r\n', 'END\r\n'), 'VALUE k1 5 2\r\nv1\r\nEND\r\n');
  const e = await WireClient.connect(proxy.port);
  assert.is(await e.request(AUTH_ALICE), 'STORED\r\n');
  assert.is(await e.request('get k1\r\n', 'END\r\n'), 'VALUE k1 5 2\r\nv1\r\nEND\r\n');
  e.close();
  c.close();
});

test('before authenticating: memcached -Y\'s replies, byte for byte, then mcrelay closes', async () => {
  const mc = await started(startMemcached({ extraArgs: ['-Y', users] }));
  const backend = await started(startMemcached());
  const proxy = await started(startProxy(['-s', backend.addr, '--auth-file', users, '--workers', '1']));
  const cases = [
    'get k\r\n',
    'mg k v\r\n',
    'ms k 2\r\nhi\r\n',
    'version\r\n',
    'stats\r\n',
    'flush_all\r\n',
    'settle x 0 0 12\r\n',
    WRONG,
    'set auth 0 0 11\r\nalicesecret\r\n',
    // (memcached answers this, then reads what follows as the next request: nothing here)
    'set auth 0 0 5\r\nalicexy',
  ];
  for (const wire of cases) {
    const want = await answer(mc.port, wire);
    const got = await answer(proxy.port, wire);
    assert.ok(want.reply.length > 0, `memcached -Y answers ${JSON.stringify(wire)}`);
    assert.is(got.reply.toString('latin1'), want.reply.toString('latin1'), JSON.stringify(wire));
    assert.ok(got.closed, `mcrelay closed after ${JSON.stringify(wire)}`);
  }
  // Nothing of those requests reached the server behind.
  const direct = await WireClient.connect(backend.port);
  assert.is(await direct.request('get k auth\r\n', 'END\r\n'), 'END\r\n');
  direct.close();
  // And the right password: the same STORED as memcached's, and the connection stays.
  const want = await answer(mc.port, AUTH_ALICE);
  const got = await answer(proxy.port, AUTH_ALICE);
  assert.is(got.reply.toString('latin1'), want.reply.toString('latin1'));
  assert.is(got.reply.toString('latin1'), 'STORED\r\n');
  assert.not.ok(got.closed);
});

test('a binary request before authenticating: status 0x20 (auth error) for its opcode and opaque, then a close', async () => {
  const backend = await started(startMemcached());
  const proxy = await started(startProxy(['-s', backend.addr, '--auth-file', users, '--workers', '1']));
  // GET "foo", opaque 0xdeadbeef
  const req = Buffer.alloc(27);
  req[0] = 0x80;
  req[1] = 0x00;
  req.writeUInt16BE(3, 2);
  req.writeUInt32BE(3, 8);
  req.writeUInt32BE(0xdeadbeef, 12);
  req.write('foo', 24, 'latin1');
  const { reply, closed } = await answer(proxy.port, req);
  assert.ok(reply.length >= 24, `a binary reply: ${reply.toString('hex')}`);
  assert.is(reply[0], 0x81, 'response magic');
  assert.is(reply[1], 0x00, 'the request\'s opcode');
  assert.is(reply.readUInt16BE(6), 0x20, 'status: auth error');
  assert.is(reply.readUInt32BE(12), 0xdeadbeef, 'the request\'s opaque');
  assert.is(reply.toString('latin1', 24), 'Auth failure.', 'memcached\'s words for the status');
  assert.ok(closed);
});

test('refusals are counted: auth_failures in stats and mcrelay_auth_failures_total in /metrics; no credential is logged', async () => {
  const backend = await started(startMemcached());
  const adminPort = await freePort();
  const proxy = await started(startProxy(['-s', backend.addr, '--auth-file', users, '--workers', '2', '-vv', '--admin', `127.0.0.1:${adminPort}`]));
  assert.is(await stat(proxy.port, 'auth_failures'), '0');
  const settings = await WireClient.connect(proxy.port);
  assert.is(await settings.request(AUTH_ALICE), 'STORED\r\n');
  assert.ok((await settings.request('stats settings\r\n', 'END\r\n')).includes(`STAT auth_enabled_ascii ${users}\r\n`), 'stats settings names the file, as memcached does');
  settings.close();
  await answer(proxy.port, WRONG);
  await answer(proxy.port, `set auth 0 0 ${7 + PASSWORD.length}\r\nalicex ${PASSWORD}\r\n`);
  await answer(proxy.port, 'get k\r\n');
  assert.is(await stat(proxy.port, 'auth_failures'), '3');
  const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  assert.ok(metrics.split('\n').includes('mcrelay_auth_failures_total 3'), `/metrics: ${metrics.split('\n').filter((l) => l.includes('auth')).join(' | ')}`);
  // Junk and an unknown command after authenticating are logged at debug level (their first bytes): not the auth set.
  const c = await WireClient.connect(proxy.port);
  c.write(`${AUTH_ALICE}bogus command\r\n`);
  await c.readQuiet(200);
  c.close();
  await sleep(200);
  assert.ok(proxy.output.includes('client refused: authentication failed'), 'refusals are told at debug level');
  assert.ok(proxy.output.includes('no command memcached knows'), 'the debug log of client bytes was on');
  for (const secret of [PASSWORD, 'Sesame-WRONG', Buffer.from(PASSWORD).toString('hex'), Buffer.from('Sesame-WRONG').toString('hex')]) {
    assert.not.ok(proxy.output.includes(secret), `the log holds ${secret}`);
  }
});

test('SIGHUP reads the auth file again: a new user gets in, a removed one is refused, a client already in stays in', async () => {
  const backend = await started(startMemcached());
  const file = path.join(dir, 'reload-users.txt');
  fs.writeFileSync(file, `alice:${PASSWORD}\n`);
  const config = path.join(dir, 'reload.yml');
  const port = await freePort();
  fs.writeFileSync(config, `listen: 127.0.0.1:${port}\nadmin: "off"\nworkers: 2\nmasters: [${backend.addr}]\nauth_file: ${file}\n`);
  const proxy = await started(startProxy(['--config', config], { port }));
  const inside = await WireClient.connect(port);
  assert.is(await inside.request(AUTH_ALICE), 'STORED\r\n');
  assert.is((await answer(port, 'set a 0 0 10\r\ncarol new1\r\n')).reply.toString('latin1'), 'CLIENT_ERROR authentication failure\r\n');

  fs.writeFileSync(file, 'carol:new1\n');
  proxy.signal('SIGHUP');
  assert.ok(await proxy.waitForOutput('configuration reloaded'), proxy.output);
  const ok = await eventually(async () => (await answer(port, 'set a 0 0 10\r\ncarol new1\r\n')).reply.toString('latin1') === 'STORED\r\n', 3000, 50);
  assert.ok(ok, 'the new user gets in');
  const old = await answer(port, AUTH_ALICE);
  assert.is(old.reply.toString('latin1'), 'CLIENT_ERROR authentication failure\r\n', 'the removed user is refused');
  assert.ok(old.closed);
  assert.is(await inside.request('set k 0 0 2\r\nhi\r\n'), 'STORED\r\n', 'the client authenticated before the reload is still served');
  assert.is(await inside.request('get k\r\n', 'END\r\n'), 'VALUE k 0 2\r\nhi\r\nEND\r\n');

  // A file that went bad: the reload is refused and the running users stay.
  fs.writeFileSync(file, 'carol-without-colon\n');
  proxy.signal('SIGHUP');
  assert.ok(await proxy.waitForOutput('reload refused'), proxy.output);
  assert.ok(proxy.output.includes(`${file}:1: auth_file: expected user:password`), proxy.output);
  assert.not.ok(proxy.output.includes('carol-without-colon'));
  assert.is((await answer(port, 'set a 0 0 10\r\ncarol new1\r\n')).reply.toString('latin1'), 'STORED\r\n');

  // auth_file taken out: new clients are served unasked; one that was half way
  // through its auth set finishes it as an auth set, its password stored nowhere.
  const waiting = await WireClient.connect(port);
  waiting.write('set pw 0 0 10\r\n');
  await sleep(100);
  fs.writeFileSync(config, `listen: 127.0.0.1:${port}\nadmin: "off"\nworkers: 2\nmasters: [${backend.addr}]\n`);
  const reloads = proxy.output.split('configuration reloaded').length;
  proxy.signal('SIGHUP');
  assert.ok(await eventually(async () => proxy.output.split('configuration reloaded').length > reloads, 5000, 20), proxy.output);
  assert.is(await waiting.request('carol new1\r\n'), 'STORED\r\n');
  assert.is(await waiting.request('get k\r\n', 'END\r\n'), 'VALUE k 0 2\r\nhi\r\nEND\r\n');
  const open = await WireClient.connect(port);
  assert.is(await open.request('get k pw\r\n', 'END\r\n'), 'VALUE k 0 2\r\nhi\r\nEND\r\n', 'served unasked, and no key pw');
  open.close();
  waiting.close();
  inside.close();
});

test('an unreadable or malformed auth file at start: one line naming the file, exit status 2', async () => {
  const bad = path.join(dir, 'bad-users.txt');
  fs.writeFileSync(bad, `alice:${PASSWORD}\nbob ${PASSWORD}\n`);
  for (const [flags, message] of [
    [['--auth-file', path.join(dir, 'missing.txt')], `mcrelay: ${path.join(dir, 'missing.txt')}: cannot read the auth_file: no such file\n`],
    [['--auth-file', bad], `mcrelay: ${bad}:2: auth_file: expected user:password\n`],
    [['--backend-auth-file', bad], `mcrelay: ${bad}:2: backend_auth_file: expected user:password\n`],
  ] as const) {
    const child = spawn(process.execPath, [CLI, '-s', '127.0.0.1:1', '--admin', 'off', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    assert.is(code, 2);
    assert.is(err, message);
  }
});

test('backend auth: mcrelay in front of memcached -Y serves gets and sets, and its probes get through', async () => {
  const secret = path.join(dir, 'backend.txt');
  fs.writeFileSync(secret, `svc:${PASSWORD}\n`);
  const master = await started(startMemcached({ extraArgs: ['-Y', secret] }));
  const backup = await started(startMemcached({ extraArgs: ['-Y', secret] }));
  const proxy = await started(startProxy(['-s', master.addr, '-b', backup.addr, '--backend-auth-file', secret, '--workers', '2', '--retry-interval', '200', '--timeout', '300']));
  const c = await WireClient.connect(proxy.port);
  assert.is(await c.request('set k 3 0 2\r\nhi\r\n'), 'STORED\r\n');
  assert.is(await c.request('get k\r\n', 'END\r\n'), 'VALUE k 3 2\r\nhi\r\nEND\r\n');
  assert.is(await c.request('mg k v f\r\n', '\r\nhi\r\n'), 'VA 2 f3\r\nhi\r\n');
  // The prober's stats polls authenticate too: the servers' own figures show, and nothing is marked down.
  const polled = await eventually(async () => (await c.request('stats servers\r\n', 'END\r\n')).includes(`STAT ${master.addr}:curr_items `), 3000, 100);
  assert.ok(polled, 'the main thread reads the servers\' stats');
  await sleep(600);
  const servers = await c.request('stats servers\r\n', 'END\r\n');
  assert.ok(servers.includes(`STAT ${master.addr}:state up\r\n`) && servers.includes(`STAT ${backup.addr}:state up\r\n`), servers);
  assert.not.ok(proxy.output.includes('marked down'), proxy.output);
  c.close();
});

test('backend auth: a master of -Y servers restarted empty is restored from the backup (metadump and copies authenticate)', async () => {
  const secret = path.join(dir, 'backend-restore.txt');
  fs.writeFileSync(secret, `svc:${PASSWORD}\n`);
  const master = await started(startMemcached({ extraArgs: ['-Y', secret] }));
  const backup = await started(startMemcached({ extraArgs: ['-Y', secret] }));
  const proxy = await started(startProxy(['-s', master.addr, '-b', backup.addr, '--backend-auth-file', secret, '--workers', '1',
    '--retry-interval', '200', '--timeout', '300', '--warmup-seconds', '0']));
  const c = await WireClient.connect(proxy.port);
  const N = 50;
  for (let i = 0; i < N; i++) assert.is(await c.request(`set r${i} 0 0 3\r\nv${String(i).padStart(2, '0')}\r\n`), 'STORED\r\n');
  await master.stop();
  const again = await started(startMemcached({ port: master.port, extraArgs: ['-Y', secret] }));
  const state = (text: string, field: string): string | undefined => new RegExp(`^STAT ${again.addr}:${field} (\\S+)\\r$`, 'm').exec(text)?.[1];
  const done = await eventually(async () => state(await c.request('stats servers\r\n', 'END\r\n'), 'restore_state') === 'done', 10_000, 100);
  const servers = await c.request('stats servers\r\n', 'END\r\n');
  assert.ok(done, `restore done: ${servers.split('\r\n').filter((l) => l.includes(`${again.addr}:`) && /state|restore/.test(l)).join(' | ')}\n${proxy.output}`);
  assert.is(state(servers, 'restore_keys_copied'), String(N));
  // Read on the server itself, authenticated.
  const direct = await WireClient.connect(again.port);
  assert.is(await direct.request(`set auth 0 0 ${4 + PASSWORD.length}\r\nsvc ${PASSWORD}\r\n`), 'STORED\r\n');
  assert.is(await direct.request('get r0 r49\r\n', 'END\r\n'), 'VALUE r0 0 3\r\nv00\r\nVALUE r49 0 3\r\nv49\r\nEND\r\n');
  direct.close();
  c.close();
});

test('backend auth refused: the server is marked down, the log says why and never the password', async () => {
  const secret = path.join(dir, 'backend-right.txt');
  fs.writeFileSync(secret, `svc:${PASSWORD}\n`);
  const wrong = path.join(dir, 'backend-wrong.txt');
  fs.writeFileSync(wrong, 'svc:Not-The-Password\n');
  const master = await started(startMemcached({ extraArgs: ['-Y', secret] }));
  const proxy = await started(startProxy(['-s', master.addr, '--backend-auth-file', wrong, '--workers', '1', '--retry-interval', '200', '--timeout', '300']));
  const c = await WireClient.connect(proxy.port);
  // Whichever comes first (this request or the prober's poll) finds the server refusing.
  await c.request('get k\r\n', 'END\r\n');
  assert.ok(await proxy.waitForOutput('server marked down', 3000), proxy.output);
  const line = proxy.output.split('\n').find((l) => l.includes('server marked down'))!;
  assert.ok(line.includes('backend authentication refused: CLIENT_ERROR'), line);
  assert.ok(line.includes('MCRELAY_BACKEND_AUTH'), line);
  assert.is(await c.request('set k 0 0 2\r\nhi\r\n'), 'SERVER_ERROR backend unavailable\r\n');
  const servers = await c.request('stats servers\r\n', 'END\r\n');
  assert.ok(servers.includes(`STAT ${master.addr}:state down\r\n`), servers);
  await sleep(500);
  assert.not.ok(proxy.output.includes('Not-The-Password'), proxy.output);
  // The right password, read on SIGHUP: the server is probed back up and serves.
  fs.writeFileSync(wrong, `svc:${PASSWORD}\n`);
  proxy.signal('SIGHUP');
  assert.ok(await proxy.waitForOutput('configuration reloaded'), proxy.output);
  const back = await eventually(async () => (await c.request('stats servers\r\n', 'END\r\n')).includes(`STAT ${master.addr}:state up\r\n`), 5000, 100);
  assert.ok(back, proxy.output);
  assert.is(await c.request('set k 0 0 2\r\nhi\r\n'), 'STORED\r\n');
  assert.is(await c.request('get k\r\n', 'END\r\n'), 'VALUE k 0 2\r\nhi\r\nEND\r\n');
  c.close();
});

test.run();
