// The admin listener secured (issue 18, item 5): a bearer token on every
// endpoint but /health, read again on SIGHUP; HTTPS with certificates made by
// the suite (test/helpers/certs.ts), client certificates, and a reload that
// swaps the certificate; and the refusals at start, each exit status 2 with one
// line: an admin address off loopback without a token, a token file or a
// certificate file that cannot be used.
//
//   this test --http(s) + Authorization--> mcrelay --admin 127.0.0.1:P (a real process) --> memcached
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { makeCerts, type Certs } from '../helpers/certs.js';
import { CLI, freePort, startMemcached, startProxy, type Proc } from '../helpers/procs.js';

const TOKEN = 'first-token-0123456789abcdef';
const NEXT_TOKEN = 'second-token-fedcba9876543210';

let dir = '';
let certs: Certs;
let memcached: Proc | undefined;
const proxies: Proc[] = [];

test.before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'mcrelay-admin-security-'));
  certs = await makeCerts(path.join(dir, 'certs'));
  memcached = await startMemcached();
});

test.after(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  await memcached?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function tokenFile(name: string, token: string, mode = 0o600): string {
  const file = path.join(dir, name);
  writeFileSync(file, `${token}\n`);
  chmodSync(file, mode);
  return file;
}

/** mcrelay over the suite's memcached with its admin listener on a free loopback port; flags after those. */
async function proxy(flags: string[]): Promise<{ p: Proc; port: number }> {
  const port = await freePort();
  const p = await startProxy(['-s', memcached!.addr, '--workers', '1', '--admin', `127.0.0.1:${port}`, ...flags]);
  proxies.push(p);
  return { p, port };
}

interface Answer { status: number; body: string; headers: http.IncomingHttpHeaders; fingerprint: string | null }

/** One request; TLS when `tls` is given (its fields go to https.request). Rejects on a connection or handshake error, or after 5 s. */
function request(port: number, urlPath: string, opts: { method?: string; token?: string; header?: string; tls?: https.RequestOptions } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
    if (opts.header !== undefined) headers.authorization = opts.header;
    const base = { host: '127.0.0.1', port, path: urlPath, method: opts.method ?? 'GET', headers, agent: false as const, timeout: 5000 };
    const onResponse = (res: http.IncomingMessage): void => {
      let body = '';
      const peer = (res.socket as import('node:tls').TLSSocket).getPeerCertificate?.();
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, fingerprint: peer?.fingerprint256 ?? null }));
    };
    const req = opts.tls === undefined ? http.request(base, onResponse) : https.request({ ...base, ...opts.tls }, onResponse);
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

/** mcrelay's command line, run to its end: exit status and output. */
function run(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
  });
}

const fingerprintOf = (file: string): string => new X509Certificate(readFileSync(file)).fingerprint256;

test('with a token: 401 and WWW-Authenticate: Bearer without it or with a wrong one, on every endpoint but /health', async () => {
  // Group-readable (root:mcrelay 0640) is taken; readable by others is not (below).
  const { p, port } = await proxy(['--admin-token-file', tokenFile('token', TOKEN, 0o640)]);
  const server = encodeURIComponent(memcached!.addr);
  for (const [method, url] of [['GET', '/metrics'], ['GET', '/ready'], ['GET', '/config'], ['GET', `/servers/${server}`],
    ['POST', `/servers/${server}/drain`], ['GET', '/nowhere'], ['GET', '/metrics?x=1']] as const) {
    for (const header of [undefined, `Bearer ${TOKEN.slice(0, -1)}x`, `Bearer ${TOKEN}x`, 'Bearer', `Basic ${TOKEN}`, TOKEN]) {
      const r = await request(port, url, { method, ...(header === undefined ? {} : { header }) });
      assert.is(r.status, 401, `${method} ${url} ${header}`);
      assert.is(r.headers['www-authenticate'], 'Bearer');
      assert.is(r.body, 'unauthorized\n', 'no details');
    }
  }
  assert.is((await request(port, '/health')).status, 200, '/health needs no token');
  assert.is((await request(port, '/health', { token: 'wrong' })).status, 200);
  const metrics = await request(port, '/metrics', { token: TOKEN });
  assert.is(metrics.status, 200);
  assert.match(metrics.body, /mcrelay_/);
  assert.is((await request(port, '/ready', { token: TOKEN })).status, 200);
  assert.is((await request(port, '/config', { token: TOKEN })).status, 200);
  assert.is((await request(port, '/metrics', { header: `bearer  ${TOKEN}` })).status, 200, 'the scheme is case-insensitive');
  const status = await request(port, `/servers/${server}`, { token: TOKEN });
  assert.is(status.status, 200, status.body);
  assert.match(p.output, /"refused":1,"lastFrom":"127\.0\.0\.1","msg":"admin listener: requests refused without the right token"/);
  assert.is(p.output.split('requests refused').length, 2, 'logged once a minute at most');
  assert.not.ok(p.output.includes(TOKEN), 'the token is never logged');
});

test('mcrelay ctl and mcrelay plan send the token from --admin-token-file', async () => {
  const file = tokenFile('token-tools', TOKEN);
  const { port } = await proxy(['--admin-token-file', file]);
  const admin = `127.0.0.1:${port}`;
  const without = await run(['ctl', 'status', memcached!.addr, '--admin', admin]);
  assert.is(without.code, 1);
  assert.match(without.err, /wants its token: --admin-token-file FILE/);
  const withToken = await run(['ctl', 'status', memcached!.addr, '--admin', admin, '--admin-token-file', file]);
  assert.is(withToken.code, 0, withToken.err);
  assert.match(withToken.out, /"state"/);
  const config = path.join(dir, 'plan.yml');
  writeFileSync(config, `masters: [${memcached!.addr}]\n`);
  const planWithout = await run(['plan', '--config', config, '--admin', admin, '--json']);
  assert.is(planWithout.code, 1);
  assert.match(planWithout.err, /wants its token: --admin-token-file FILE/);
  const plan = await run(['plan', '--config', config, '--admin', admin, '--json', `--admin-token-file=${file}`]);
  assert.is(plan.code, 0, plan.err);
  assert.match(plan.out, /"masters"/);
});

test('SIGHUP reads the token file again: the old token is refused, the new one taken; a bad file keeps the token in use', async () => {
  const file = tokenFile('token-reload', TOKEN);
  const { p, port } = await proxy(['--admin-token-file', file]);
  assert.is((await request(port, '/metrics', { token: TOKEN })).status, 200);
  writeFileSync(file, `${NEXT_TOKEN}\n`);
  p.signal('SIGHUP');
  assert.ok(await p.waitForOutput('configuration reloaded'), p.output);
  assert.is((await request(port, '/metrics', { token: TOKEN })).status, 401, 'the old token is refused');
  assert.is((await request(port, '/metrics', { token: NEXT_TOKEN })).status, 200, 'the new token is taken');
  writeFileSync(file, '');
  p.signal('SIGHUP');
  assert.ok(await p.waitForOutput('keeps its token'), p.output);
  assert.match(p.output, /admin_token_file [^"]*token-reload: empty/);
  assert.is((await request(port, '/metrics', { token: NEXT_TOKEN })).status, 200, 'an empty file keeps the token in use');
  assert.not.ok(p.output.includes(TOKEN) || p.output.includes(NEXT_TOKEN), 'the tokens are never logged');
});

test('an admin address off loopback without a token: exit 2, one line; admin_insecure: true written out starts it', async () => {
  const port = await freePort();
  for (const admin of [`0.0.0.0:${port}`, `[::]:${port}`]) {
    const r = await run(['-l', '127.0.0.1', '-p', String(await freePort()), '-s', memcached!.addr, '--admin', admin]);
    assert.is(r.code, 2, r.err);
    assert.is(r.err, `mcrelay: the admin listener ${admin} is not on a loopback address and has no token: set admin_token_file (--admin-token-file), or write admin_insecure: true (--admin-insecure) to serve it to anyone who can reach it\n`);
  }
  const config = path.join(dir, 'insecure.yml');
  writeFileSync(config, `masters: [${memcached!.addr}]\nadmin: 0.0.0.0:${port}\nadmin_insecure: true\nworkers: 1\n`);
  // --admin given too, so that startProxy adds no --admin off: the file's admin_insecure stands.
  const p = await startProxy(['--config', config, '--admin', `0.0.0.0:${port}`]);
  proxies.push(p);
  assert.is((await request(port, '/metrics')).status, 200, 'served on 127.0.0.1 without a token');
  await p.stop();
});

test('a token file that cannot be used stops the start: exit 2, one line naming the file', async () => {
  const cases: Array<[string, RegExp]> = [
    [tokenFile('token-empty', ''), /: empty; put a token in it/],
    [tokenFile('token-open', TOKEN, 0o644), /: readable or writable by others \(mode 0644\); chmod 600 or 640 it/],
    [tokenFile('token-short', 'short'), /: the token is shorter than 16 characters/],
    [tokenFile('token-two-words', `${TOKEN} ${TOKEN}`), /: the token holds a space/],
    [path.join(dir, 'no-such-token'), /: cannot read it: no such file/],
  ];
  for (const [file, problem] of cases) {
    const r = await run(['-l', '127.0.0.1', '-p', String(await freePort()), '-s', memcached!.addr, '--admin', `127.0.0.1:${await freePort()}`, '--admin-token-file', file]);
    assert.is(r.code, 2, `${file}: ${r.err}`);
    assert.ok(r.err.startsWith(`mcrelay: admin_token_file ${file}: `), r.err);
    assert.match(r.err, problem);
    assert.is(r.err.split('\n').length, 2, 'one line');
    assert.not.ok(r.err.includes(TOKEN), 'the token is never printed');
  }
});

test('admin_tls: HTTPS with the CA; plain HTTP to it is refused at once; mcrelay ctl over HTTPS', async () => {
  const { port } = await proxy(['--admin-tls-cert', certs.serverCert, '--admin-tls-key', certs.serverKey, '--admin-token-file', tokenFile('token-tls', TOKEN)]);
  const health = await request(port, '/health', { tls: { ca: readFileSync(certs.caCert) } });
  assert.is(health.status, 200);
  assert.is(health.fingerprint, fingerprintOf(certs.serverCert));
  assert.is((await request(port, '/metrics', { token: TOKEN, tls: { ca: readFileSync(certs.caCert) } })).status, 200);
  await assert_rejects(request(port, '/health', { tls: { ca: readFileSync(certs.otherCaCert) } }), /unable to verify the first certificate/);
  const started = Date.now();
  await assert_rejects(request(port, '/health'), /socket hang up|ECONNRESET/);
  assert.ok(Date.now() - started < 2000, 'refused promptly');
  const ctl = await run(['ctl', 'status', memcached!.addr, '--admin', `127.0.0.1:${port}`, '--admin-ca', certs.caCert, '--admin-token-file', path.join(dir, 'token-tls')]);
  assert.is(ctl.code, 0, ctl.err);
});

test('admin_tls client_auth: require refuses a handshake without a client certificate from the CA', async () => {
  const config = path.join(dir, 'mtls.yml');
  writeFileSync(config, `masters: [${memcached!.addr}]
workers: 1
admin_token_file: ${tokenFile('token-mtls', TOKEN)}
admin_tls: { cert: ${certs.serverCert}, key: ${certs.serverKey}, ca: ${certs.caCert}, client_auth: require, min_version: TLSv1.3 }
`);
  const { port } = await proxy(['--config', config]);
  const ca = readFileSync(certs.caCert);
  await assert_rejects(request(port, '/health', { tls: { ca } }), /alert certificate required/);
  const ok = await request(port, '/metrics', { token: TOKEN, tls: { ca, cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) } });
  assert.is(ok.status, 200);
  // A certificate of another CA is refused too: the server's own, signed by the same CA, is no client certificate.
  const other = await makeCerts(path.join(dir, 'other-certs'));
  await assert_rejects(request(port, '/health', { tls: { ca, cert: readFileSync(other.clientCert), key: readFileSync(other.clientKey) } }), /unknown ca|ECONNRESET|socket hang up/);
  await assert_rejects(request(port, '/health', { tls: { ca, maxVersion: 'TLSv1.2', cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) } }), /alert protocol version/);
  const ctl = await run(['ctl', 'status', memcached!.addr, '--admin', `127.0.0.1:${port}`, '--admin-ca', certs.caCert,
    '--admin-cert', certs.clientCert, '--admin-key', certs.clientKey, '--admin-token-file', path.join(dir, 'token-mtls')]);
  assert.is(ctl.code, 0, ctl.err);
});

test('admin_tls client_auth: optional takes a handshake without a client certificate, not one from another CA', async () => {
  const { port } = await proxy(['--admin-tls-cert', certs.serverCert, '--admin-tls-key', certs.serverKey,
    '--admin-tls-ca', certs.caCert, '--admin-tls-client-auth', 'optional']);
  const ca = readFileSync(certs.caCert);
  assert.is((await request(port, '/health', { tls: { ca } })).status, 200);
  assert.is((await request(port, '/health', { tls: { ca, cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) } })).status, 200);
  const other = await makeCerts(path.join(dir, 'optional-other-certs'));
  await assert_rejects(request(port, '/health', { tls: { ca, cert: readFileSync(other.clientCert), key: readFileSync(other.clientKey) } }), /ECONNRESET|socket hang up/);
});

test('SIGHUP swaps the certificate: a new connection gets the new one', async () => {
  const cert = path.join(dir, 'swap.pem');
  const key = path.join(dir, 'swap.key');
  copyFileSync(certs.serverCert, cert);
  copyFileSync(certs.serverKey, key);
  const { p, port } = await proxy(['--admin-tls-cert', cert, '--admin-tls-key', key]);
  const ca = readFileSync(certs.caCert);
  assert.is((await request(port, '/health', { tls: { ca } })).fingerprint, fingerprintOf(certs.serverCert));
  // A keep-alive connection made before the swap carries on after it.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
  const before = await onAgent(agent, port);
  assert.is(before.status, 200);
  const next = await makeCerts(path.join(dir, 'next-certs'));
  copyFileSync(next.serverCert, cert);
  copyFileSync(next.serverKey, key);
  p.signal('SIGHUP');
  assert.ok(await p.waitForOutput('configuration reloaded'), p.output);
  const after = await request(port, '/health', { tls: { ca: readFileSync(next.caCert) } });
  assert.is(after.status, 200);
  assert.is(after.fingerprint, fingerprintOf(next.serverCert));
  const kept = await onAgent(agent, port);
  assert.equal(kept, { status: 200, reused: true, fingerprint: fingerprintOf(certs.serverCert) }, 'the old connection, with the old certificate');
  agent.destroy();
  // A key that is not the certificate's: the certificate in use stays.
  copyFileSync(certs.serverKey, key);
  p.signal('SIGHUP');
  assert.ok(await p.waitForOutput('keeps its token and certificate'), p.output);
  assert.match(p.output, /admin_tls\.key [^"]*swap\.key: not the key of admin_tls\.cert/);
  assert.is((await request(port, '/health', { tls: { ca: readFileSync(next.caCert) } })).fingerprint, fingerprintOf(next.serverCert));
});

test('a certificate or key file that cannot be used stops the start: exit 2, one line naming the file', async () => {
  const garbage = path.join(dir, 'garbage.pem');
  writeFileSync(garbage, 'not a certificate\n');
  const cases: Array<[string[], string]> = [
    [['--admin-tls-cert', garbage, '--admin-tls-key', certs.serverKey], `admin_tls.cert ${garbage}: not a PEM certificate`],
    [['--admin-tls-cert', path.join(dir, 'missing.pem'), '--admin-tls-key', certs.serverKey], `admin_tls.cert ${path.join(dir, 'missing.pem')}: cannot read it: no such file`],
    [['--admin-tls-cert', certs.serverCert, '--admin-tls-key', garbage], `admin_tls.key ${garbage}: not a PEM private key without a passphrase`],
    [['--admin-tls-cert', certs.serverCert, '--admin-tls-key', certs.clientKey], `admin_tls.key ${certs.clientKey}: not the key of admin_tls.cert ${certs.serverCert}`],
    [['--admin-tls-cert', certs.serverCert, '--admin-tls-key', certs.serverKey, '--admin-tls-ca', garbage, '--admin-tls-client-auth', 'require'], `admin_tls.ca ${garbage}: not a PEM certificate`],
  ];
  for (const [flags, message] of cases) {
    const r = await run(['-l', '127.0.0.1', '-p', String(await freePort()), '-s', memcached!.addr, '--admin', `127.0.0.1:${await freePort()}`, ...flags]);
    assert.is(r.code, 2, `${flags.join(' ')}: ${r.err}`);
    assert.is(r.err, `mcrelay: ${message}\n`);
  }
});

/** GET /health through a keep-alive agent: whether the connection was an old one, and its certificate. */
function onAgent(agent: https.Agent, port: number): Promise<{ status: number; reused: boolean; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/health', agent }, (res) => {
      // Read now: a keep-alive socket leaves the response once it ends.
      const fingerprint = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, fingerprint }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function assert_rejects(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable('expected a refusal');
}

test.run();
