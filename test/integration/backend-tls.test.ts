// TLS toward the memcached servers (issue 18 item 2): memcached started with
// -Z, mcrelay's pools given masters_tls / backups_tls in the file.
//
//   client --plain--> mcrelay --TLS (server certificate verified, client certificate if asked)--> memcached -Z
//
// What a client sees: the cache works through a TLS server; a server whose
// certificate does not verify, or that wants a client certificate mcrelay does
// not have, is marked down (its keys answer as for any server that is down);
// a TLS backup serves a master's outage.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Plan } from '../../src/plan.js';
import { makeCerts, type Certs } from '../helpers/certs.js';
import { serverStats, stateOf, waitState } from '../helpers/cluster.js';
import { CLI, freePort, startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';

let certs: Certs;
const procs: Proc[] = [];

test.before(async () => { certs = await makeCerts(); });
test.after(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  rmSync(certs.dir, { recursive: true, force: true });
});

function tlsMemcached(extra: string[] = []): Promise<Proc> {
  const p = startMemcached({ extraArgs: ['-Z', '-o', [`ssl_chain_cert=${certs.serverCert}`, `ssl_key=${certs.serverKey}`, ...extra].join(',')] });
  return p.then((m) => { procs.push(m); return m; });
}

let files = 0;
async function proxyWith(yaml: string, flags: string[] = []): Promise<Proc> {
  const file = path.join(certs.dir, `backend-tls-${files++}.yml`);
  writeFileSync(file, yaml);
  const p = await startProxy(['--config', file, '--workers', '1', '--retry-interval', '100', '--timeout', '500', ...flags]);
  procs.push(p);
  return p;
}

/** What memcached -Z itself holds under key, asked over TLS. */
async function direct(m: Proc, key: string): Promise<string> {
  const c = await WireClient.connectTls(m.port, { ca: readFileSync(certs.caCert), cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) });
  try { return await c.request(`get ${key}\r\n`, 'END\r\n'); } finally { c.close(); }
}

test('a master over TLS: sets and gets through it, its certificate verified against the CA', async () => {
  const m = await tlsMemcached();
  const p = await proxyWith(`masters: [${m.addr}]\nmasters_tls:\n  ca: ${certs.caCert}\n`);
  await waitState([p], m.addr, ['up'], 5000);
  const c = await WireClient.connect(p.port);
  assert.is(await c.request('set btls:a 3 0 2\r\nok\r\n'), 'STORED\r\n');
  assert.is(await c.request('get btls:a\r\n', 'END\r\n'), 'VALUE btls:a 3 2\r\nok\r\nEND\r\n');
  assert.is(await c.request('mg btls:a v f\r\n'), 'VA 2 f3\r\nok\r\n');
  c.close();
  assert.is(await direct(m, 'btls:a'), 'VALUE btls:a 3 2\r\nok\r\nEND\r\n', 'the value is on the TLS server');
});

test('a server whose certificate another CA signed is marked down, with the reason in the log', async () => {
  const m = await tlsMemcached();
  const p = await proxyWith(`masters: [${m.addr}]\nmasters_tls:\n  ca: ${certs.otherCaCert}\n`);
  await waitState([p], m.addr, ['down'], 5000);
  const c = await WireClient.connect(p.port);
  // Its keys answer as any down server's without a backup: a miss.
  assert.is(await c.request('get btls:b\r\n'), 'END\r\n');
  c.close();
  assert.match(p.output, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify the first certificate/);
});

test('a server that requires a client certificate: down without one, up and serving with it', async () => {
  const m = await tlsMemcached(['ssl_verify_mode=3', `ssl_ca_cert=${certs.caCert}`]);
  const without = await proxyWith(`masters: [${m.addr}]\nmasters_tls: { ca: ${certs.caCert} }\n`);
  const withCert = await proxyWith(`masters: [${m.addr}]\nmasters_tls: { ca: ${certs.caCert}, cert: ${certs.clientCert}, key: ${certs.clientKey} }\n`);
  await waitState([withCert], m.addr, ['up'], 5000);
  await waitState([without], m.addr, ['down'], 5000);
  // memcached refuses it with TLS 1.3's certificate-required alert: the log says so.
  assert.match(without.output, /"msg":"server marked down"/);
  assert.match(without.output, /CERTIFICATE_REQUIRED/);
  const c = await WireClient.connect(withCert.port);
  assert.is(await c.request('set btls:c 0 0 1\r\nc\r\n'), 'STORED\r\n');
  assert.is(await c.request('get btls:c\r\n', 'END\r\n'), 'VALUE btls:c 0 1\r\nc\r\nEND\r\n');
  c.close();
});

test('a TLS backup serves the keys of a plain master while it is down', async () => {
  const master = await startMemcached();
  procs.push(master);
  const backup = await tlsMemcached();
  const p = await proxyWith(`masters: [${master.addr}]\nbackups: [${backup.addr}]\nbackups_tls: { ca: ${certs.caCert}, servername: localhost }\n`);
  await waitState([p], backup.addr, ['up'], 5000);
  const c = await WireClient.connect(p.port);
  for (let i = 0; i < 20; i++) assert.is(await c.request(`set btls:f${i} 0 0 2\r\nv${i % 10}\r\n`), 'STORED\r\n');
  assert.is(await direct(backup, 'btls:f7'), 'VALUE btls:f7 0 2\r\nv7\r\nEND\r\n', 'written to the backup over TLS');
  await master.stop();
  await waitState([p], master.addr, ['down'], 5000);
  for (let i = 0; i < 20; i++) assert.is(await c.request(`get btls:f${i}\r\n`, 'END\r\n'), `VALUE btls:f${i} 0 2\r\nv${i % 10}\r\nEND\r\n`);
  assert.is(await stateOf(p.port, backup.addr), 'up');
  c.close();
});

test('a TLS master that comes back empty is restored from its TLS backup (the main thread\'s dump and copies over TLS)', async () => {
  const master = await tlsMemcached();
  const backup = await tlsMemcached();
  const tlsConf = `{ ca: ${certs.caCert} }`;
  const p = await proxyWith(`masters: [${master.addr}]\nbackups: [${backup.addr}]\nmasters_tls: ${tlsConf}\nbackups_tls: ${tlsConf}\n`);
  await waitState([p], master.addr, ['up'], 5000);
  const c = await WireClient.connect(p.port);
  for (let i = 0; i < 50; i++) assert.is(await c.request(`set btls:r${i} 0 0 3\r\nr${String(i).padStart(2, '0')}\r\n`), 'STORED\r\n');
  c.close();
  await master.stop();
  await waitState([p], master.addr, ['down'], 5000);
  const again = await startMemcached({ port: master.port, extraArgs: ['-Z', '-o', `ssl_chain_cert=${certs.serverCert},ssl_key=${certs.serverKey}`] });
  procs.push(again);
  await waitState([p], master.addr, ['warming', 'up'], 20_000);
  // No client read: only the restore (dump of the backup, copies onto the master) brings them back.
  let held = 0;
  for (let t = 0; t < 100; t++) {
    held = 0;
    for (let i = 0; i < 50; i += 7) if ((await direct(again, `btls:r${i}`)).startsWith('VALUE')) held++;
    if (held === 8) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.is(held, 8, 'sampled keys back on the master');
});

test('TLS and authentication together: clients authenticate over TLS, mcrelay authenticates to a memcached -Z -Y', async () => {
  const users = path.join(certs.dir, 'users');
  writeFileSync(users, 'app:s3cret-app\n', { mode: 0o600 });
  const backendUsers = path.join(certs.dir, 'backend-users');
  writeFileSync(backendUsers, 'relay:s3cret-relay\n', { mode: 0o600 });
  const mY = await startMemcached({ extraArgs: ['-Z', '-o', `ssl_chain_cert=${certs.serverCert},ssl_key=${certs.serverKey}`, '-Y', backendUsers] });
  procs.push(mY);
  const p = await proxyWith(`masters: [${mY.addr}]\nmasters_tls: { ca: ${certs.caCert} }\nbackend_auth_file: ${backendUsers}\nauth_file: ${users}\ntls: { cert: ${certs.serverCert}, key: ${certs.serverKey} }\n`);
  // Its only listener speaks TLS and asks for authentication: stats servers is asked as a client would.
  const c = await WireClient.connectTls(p.port, { ca: readFileSync(certs.caCert) });
  assert.is(await c.request('get btls:x\r\n'), 'CLIENT_ERROR unauthenticated\r\n', 'nothing before the auth set');
  const d = await WireClient.connectTls(p.port, { ca: readFileSync(certs.caCert) });
  assert.is(await d.request('set a 0 0 14\r\napp s3cret-app\r\n'), 'STORED\r\n');
  let state = '';
  for (let i = 0; i < 100 && state !== 'up'; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 50));
    state = new RegExp(`^STAT ${mY.addr}:state (\\S+)\r$`, 'm').exec(await d.request('stats servers\r\n', 'END\r\n'))?.[1] ?? '';
  }
  assert.is(state, 'up', 'the server is up: mcrelay authenticated to it over TLS');
  assert.is(await d.request('set btls:x 0 0 2\r\nxy\r\nget btls:x\r\n', 'END\r\n'), 'STORED\r\nVALUE btls:x 0 2\r\nxy\r\nEND\r\n');
  c.close();
  d.close();
});

test('an idle TLS connection that memcached -Z -Y closes (idle_timeout) is reopened, handshaken and authenticated again', async () => {
  const users = path.join(certs.dir, 'idle-users');
  writeFileSync(users, 'relay:s3cret-idle\n', { mode: 0o600 });
  const m = await startMemcached({ extraArgs: ['-Z', '-o', `ssl_chain_cert=${certs.serverCert},ssl_key=${certs.serverKey},idle_timeout=1`, '-Y', users] });
  procs.push(m);
  const p = await proxyWith(`masters: [${m.addr}]\nmasters_tls: { ca: ${certs.caCert} }\nbackend_auth_file: ${users}\n`);
  await waitState([p], m.addr, ['up'], 5000);
  const c = await WireClient.connect(p.port);
  assert.is(await c.request('set btls:i 0 0 4\r\nidle\r\n'), 'STORED\r\n');
  // memcached's idle check runs about once a second (later on a loaded machine):
  // each round leaves the worker's connection idle well past idle_timeout, then
  // reads through it, until one read found it closed and reopened it.
  const reconnects = async (): Promise<number> => Number((await serverStats(p.port)).table.get(m.addr)?.get('reconnects'));
  for (let i = 0; i < 6 && await reconnects() < 1; i++) {
    await new Promise((r) => setTimeout(r, 2500));
    for (let j = 0; j < 3; j++) {
      assert.is(await c.request('get btls:i\r\n', 'END\r\n'), 'VALUE btls:i 0 4\r\nidle\r\nEND\r\n', `get ${j} after ${i + 1} idle rounds`);
    }
  }
  assert.is(await stateOf(p.port, m.addr), 'up', 'an idle close is not an outage');
  assert.ok(await reconnects() >= 1, 'memcached did close the idle connection, and it was reopened');
  c.close();
});

test('mcrelay plan --admin reads a TLS backup over TLS (the servers /config names take the new file\'s pool settings)', async () => {
  const m1 = await tlsMemcached();
  const m2 = await tlsMemcached();
  const b1 = await tlsMemcached();
  const tlsConf = `{ ca: ${certs.caCert} }`;
  const pools = `masters_tls: ${tlsConf}\nbackups_tls: ${tlsConf}\n`;
  const admin = `127.0.0.1:${await freePort()}`;
  const p = await proxyWith(`masters: [${m1.addr}]\nbackups: [${b1.addr}]\n${pools}`, ['--admin', admin]);
  await waitState([p], b1.addr, ['up'], 5000);
  const c = await WireClient.connect(p.port);
  for (let i = 0; i < 100; i++) assert.is(await c.request(`set btls:p${i} 0 0 1\r\np\r\n`), 'STORED\r\n');
  c.close();
  const next = path.join(certs.dir, 'plan-next.yml');
  writeFileSync(next, `masters: [${m1.addr}, ${m2.addr}]\nbackups: [${b1.addr}]\n${pools}`);
  const r = spawnSync(process.execPath, [CLI, 'plan', '--config', next, '--admin', admin, '--json'], { encoding: 'utf8', timeout: 30_000 });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stderr, '');
  const plan = JSON.parse(r.stdout) as Plan;
  assert.equal(plan.unreadable, []);
  assert.is(plan.masters.keys, 100, 'every key counted on the backup, read over TLS');
});

test('a bad file for a pool\'s TLS: one line naming it, exit status 2', async () => {
  const file = path.join(certs.dir, 'bad-backend-tls.yml');
  const missing = path.join(certs.dir, 'missing-ca.pem');
  writeFileSync(file, `masters: [127.0.0.1:1]\nbackups_tls: { ca: ${missing} }\n`);
  const p = startProxy(['--config', file]);
  const err = await p.then(() => null, (e: Error) => e.message);
  assert.ok(err !== null, 'started with a missing CA file');
  assert.match(err!, new RegExp(`exited with 2: mcrelay: backups_tls.ca ${missing}: cannot read it: no such file\\n$`));
});

test.run();
