// TLS toward clients (issue 18 item 1): what a client sees of a TLS listener,
// with real memcached behind it and certificates made by openssl for the run.
//
//   Node tls / Python ssl client --TLS--> mcrelay (handshake in the worker) --> memcached
//   plain client -------------------------^ (a port of its own with --tls-listen)
//
// Each refusal (wrong CA, expired certificate, no client certificate under
// require, plaintext to the TLS port, TLS to the plain port) must come promptly,
// and the worker must go on serving its other clients.
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { connect } from 'node:tls';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeCerts, type Certs } from '../helpers/certs.js';
import { CLI, freePort, startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { currConnections } from '../helpers/mc.js';
import { WireClient } from '../helpers/wire.js';

let certs: Certs;
let mc: Proc;
const procs: Proc[] = [];

test.before(async () => {
  certs = await makeCerts();
  mc = await startMemcached();
});

test.after(async () => {
  await Promise.all([...procs, mc].map((p) => p.stop()));
  rmSync(certs.dir, { recursive: true, force: true });
});

const ca = (): Buffer => readFileSync(certs.caCert);
const clientCert = (): { cert: Buffer; key: Buffer } => ({ cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) });

async function proxy(flags: string[]): Promise<Proc> {
  const p = await startProxy(['-s', mc.addr, '--workers', '1', ...flags]);
  procs.push(p);
  return p;
}

/** The error a TLS connect ends with, or 'connected'; a refusal must come within 3 s. */
async function tlsOutcome(port: number, options: Parameters<typeof WireClient.connectTls>[1]): Promise<string> {
  const started = Date.now();
  const outcome = await Promise.race([
    WireClient.connectTls(port, options).then(async (c) => {
      // Under TLS 1.3 the server checks the client's certificate after the
      // client's side of the handshake is done: a refusal arrives as the first read.
      const reply = await c.request('version\r\n').catch((err: Error) => `error ${err.message}`);
      c.close();
      return reply.startsWith('VERSION') ? 'connected' : `refused after the handshake (${c.closed ? 'closed' : reply})`;
    }, (err: NodeJS.ErrnoException) => `refused: ${err.code ?? err.message}`),
    new Promise<string>((r) => setTimeout(() => r('no answer in 3 s'), 3000)),
  ]);
  assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
  return outcome;
}

test('TLS only: Node\'s tls client sets and gets; a plain client is closed at once', async () => {
  const p = await proxy(['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey]);
  const c = await WireClient.connectTls(p.port, { ca: ca() });
  assert.is(await c.request('set tls:a 5 0 5\r\nhello\r\n'), 'STORED\r\n');
  assert.is(await c.request('get tls:a\r\n', 'END\r\n'), 'VALUE tls:a 5 5\r\nhello\r\nEND\r\n');
  assert.is((c.socket as import('node:tls').TLSSocket).getProtocol(), 'TLSv1.3');

  // Plaintext to the TLS port: the handshake fails and the connection closes, without an answer.
  const plain = await WireClient.connect(p.port);
  plain.write('get tls:a\r\n');
  const started = Date.now();
  while (!plain.closed && Date.now() - started < 3000) await new Promise((r) => setTimeout(r, 10));
  assert.ok(plain.closed, 'plaintext on the TLS port not closed within 3 s');
  // The worker goes on serving its TLS client.
  assert.is(await c.request('get tls:a\r\n', 'END\r\n'), 'VALUE tls:a 5 5\r\nhello\r\nEND\r\n');
  c.close();

  // A client that shuts its side (close_notify, FIN) after its requests still reads every reply.
  const halfClosed = await new Promise<string>((resolve) => {
    let got = '';
    const s = connect({ host: '127.0.0.1', port: p.port, servername: 'localhost', ca: ca() }, () => s.end('set tls:h 0 0 1\r\nx\r\nget tls:h\r\n'));
    s.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    s.on('close', () => resolve(got));
    s.on('error', (err) => resolve(`error ${err.message}`));
  });
  assert.is(halfClosed, 'STORED\r\nVALUE tls:h 0 1\r\nx\r\nEND\r\n');
  // A connection closed before its handshake (startProxy's readiness check made one) is not left counted.
  assert.is(await currConnections(p.port, 1, { ca: ca() }), 1, 'the one asking only');
});

test('plain and TLS on two ports: both serve the same cache; a TLS client on the plain port is refused at once', async () => {
  const tlsPort = await freePort();
  const p = await proxy(['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-listen', `127.0.0.1:${tlsPort}`]);
  const plain = await WireClient.connect(p.port);
  assert.is(await plain.request('set tls:b 0 0 3\r\nabc\r\n'), 'STORED\r\n');
  const secure = await WireClient.connectTls(tlsPort, { ca: ca() });
  assert.is(await secure.request('get tls:b\r\n', 'END\r\n'), 'VALUE tls:b 0 3\r\nabc\r\nEND\r\n');
  // TLS to the plain port: closed at its hello, so the handshake fails now, not on a timeout.
  assert.match(await tlsOutcome(p.port, { ca: ca() }), /^refused/);
  assert.is(await plain.request('get tls:b\r\n', 'END\r\n'), 'VALUE tls:b 0 3\r\nabc\r\nEND\r\n');
  // Python's ssl module as the client, verifying the server against the CA.
  const py = spawnSync('python3', ['-c', `
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"get tls:b\\r\\n")
        got = b""
        while not got.endswith(b"END\\r\\n"):
            chunk = s.recv(4096)
            if not chunk: break
            got += chunk
        print(s.version(), got.decode().replace("\\r\\n", "|"))
`, certs.caCert, String(tlsPort)], { encoding: 'utf8', timeout: 10_000 });
  assert.is(py.stdout.trim(), 'TLSv1.3 VALUE tls:b 0 3|abc|END|', py.stderr);
  // Refused handshakes leave no connection counted.
  assert.is(await currConnections(p.port, 3), 3, 'the plain and the TLS client, and the one asking');
  plain.close();
  secure.close();
});

test('with auth_file on, a TLS hello on the plain port is still refused at once (not read as an auth set)', async () => {
  const users = path.join(certs.dir, 'tls-users');
  writeFileSync(users, 'app:s3cret-app\n', { mode: 0o600 });
  const tlsPort = await freePort();
  const p = await proxy(['--auth-file', users, '--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-listen', `127.0.0.1:${tlsPort}`]);
  assert.match(await tlsOutcome(p.port, { ca: ca() }), /^refused/);
  const c = await WireClient.connect(p.port);
  assert.is(await c.request('stats\r\n'), 'CLIENT_ERROR unauthenticated\r\n', 'a plain client is asked to authenticate');
  c.close();
  const d = await WireClient.connect(p.port);
  assert.is(await d.request('set a 0 0 14\r\napp s3cret-app\r\n'), 'STORED\r\n');
  assert.match(await d.request('stats\r\n', 'END\r\n'), /^STAT auth_failures 1\r$/m, 'the refused TLS hello is not an auth failure; the plain client\'s stats is');
  d.close();
});

test('refusals: a client trusting another CA, an expired server certificate', async () => {
  const p = await proxy(['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey]);
  assert.is(await tlsOutcome(p.port, { ca: readFileSync(certs.otherCaCert) }), 'refused: UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  assert.is(await tlsOutcome(p.port, { ca: ca() }), 'connected');
  const old = await proxy(['--tls-cert', certs.expiredCert, '--tls-key', certs.expiredKey]);
  assert.is(await tlsOutcome(old.port, { ca: ca() }), 'refused: CERT_HAS_EXPIRED');
});

test('client_auth require: no certificate or one of another CA is refused in the handshake; the CA\'s is served', async () => {
  const p = await proxy(['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', certs.caCert, '--tls-client-auth', 'require']);
  assert.match(await tlsOutcome(p.port, { ca: ca() }), /^refused/);
  // A certificate the other CA signed (self-signed by it): present, but not the CA's.
  assert.match(await tlsOutcome(p.port, { ca: ca(), cert: readFileSync(certs.otherCaCert), key: readFileSync(certs.otherCaKey) }), /^refused/);
  assert.is(await tlsOutcome(p.port, { ca: ca(), ...clientCert() }), 'connected');
  assert.is(await currConnections(p.port, 1, { ca: ca(), ...clientCert() }), 1, 'the one asking only');
});

test('client_auth optional: no certificate is served, a bad one is refused', async () => {
  const p = await proxy(['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', certs.caCert, '--tls-client-auth', 'optional']);
  assert.is(await tlsOutcome(p.port, { ca: ca() }), 'connected');
  assert.is(await tlsOutcome(p.port, { ca: ca(), ...clientCert() }), 'connected');
  assert.match(await tlsOutcome(p.port, { ca: ca(), cert: readFileSync(certs.otherCaCert), key: readFileSync(certs.otherCaKey) }), /^refused/);
});

test('TLS 1.3 minimum: a TLS 1.2 client is refused', async () => {
  const p = await proxy(['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-min-version', 'TLSv1.3']);
  assert.match(await tlsOutcome(p.port, { ca: ca(), maxVersion: 'TLSv1.2' }), /^refused/);
  assert.is(await tlsOutcome(p.port, { ca: ca() }), 'connected');
});

test('SIGHUP reads the certificate again: new connections get the new one, open ones carry on', async () => {
  const cert = path.join(certs.dir, 'live.pem');
  const key = path.join(certs.dir, 'live.key');
  copyFileSync(certs.serverCert, cert);
  copyFileSync(certs.serverKey, key);
  const file = path.join(certs.dir, 'tls-reload.yml');
  writeFileSync(file, `masters: [${mc.addr}]\ntls:\n  cert: ${cert}\n  key: ${key}\n`);
  const p = await proxy(['--config', file]);
  const fingerprint = async (): Promise<string> => {
    const c = await WireClient.connectTls(p.port, { rejectUnauthorized: false });
    const f = (c.socket as import('node:tls').TLSSocket).getPeerX509Certificate()!.fingerprint256;
    c.close();
    return f;
  };
  const first = new X509Certificate(readFileSync(certs.serverCert)).fingerprint256;
  const second = new X509Certificate(readFileSync(certs.expiredCert)).fingerprint256;
  assert.is(await fingerprint(), first);
  const open = await WireClient.connectTls(p.port, { ca: ca() });
  assert.is(await open.request('set tls:r 0 0 1\r\nr\r\n'), 'STORED\r\n');

  copyFileSync(certs.expiredCert, cert);
  copyFileSync(certs.expiredKey, key);
  p.signal('SIGHUP');
  assert.ok(await p.waitForOutput('configuration reloaded', 5000), p.output);
  let now = '';
  for (let i = 0; i < 100 && now !== second; i++) {
    now = await fingerprint();
    if (now !== second) await new Promise((r) => setTimeout(r, 50));
  }
  assert.is(now, second, 'a new connection sees the new certificate');
  assert.is(await open.request('get tls:r\r\n', 'END\r\n'), 'VALUE tls:r 0 1\r\nr\r\nEND\r\n', 'the open connection carries on');

  // A reload with a broken file is refused; the running certificate stays.
  writeFileSync(key, 'not a key\n');
  p.signal('SIGHUP');
  assert.ok(await p.waitForOutput('reload refused', 5000), p.output);
  assert.ok(p.output.includes(`tls.key ${key}: not a PEM private key without a passphrase`), p.output);
  assert.is(await fingerprint(), second);
  open.close();
});

test('a bad certificate file at start: one line naming the file, exit status 2', async () => {
  const missing = path.join(certs.dir, 'nope.pem');
  const cases: Array<[string[], RegExp]> = [
    [['--tls-cert', missing, '--tls-key', certs.serverKey], new RegExp(`^mcrelay: tls.cert ${missing}: cannot read it: no such file\\n$`)],
    [['--tls-cert', certs.serverKey, '--tls-key', certs.serverKey], new RegExp(`^mcrelay: tls.cert ${certs.serverKey}: not a PEM certificate\\n$`)],
    [['--tls-cert', certs.serverCert, '--tls-key', certs.clientKey], new RegExp(`^mcrelay: tls.key ${certs.clientKey}: not the key of tls.cert ${certs.serverCert}\\n$`)],
    [['--tls-cert', certs.serverCert], /^mcrelay: TLS needs both a certificate and its key/],
    [['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-client-auth', 'require'], /needs the CA that signs client certificates/],
  ];
  for (const [flags, want] of cases) {
    const r = spawnSync(process.execPath, [CLI, '-s', mc.addr, '--admin', 'off', '-p', '0', '-f', path.join(certs.dir, 'x.sock'), ...flags], { encoding: 'utf8', timeout: 10_000 });
    assert.is(r.status, 2, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test.run();
