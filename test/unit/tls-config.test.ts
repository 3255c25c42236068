// The client listeners' TLS settings (config/tls.ts): flags and the file's
// `tls:` section, the files read and checked, and each refusal's one line.
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseArgv } from '../../src/config/argv.js';
import type { Config } from '../../src/config/config.js';
import { makeCerts, type Certs } from '../helpers/certs.js';

const ENV = { cpus: 2 };
let certs: Certs;

test.before(async () => { certs = await makeCerts(); });
test.after(() => rmSync(certs.dir, { recursive: true, force: true }));

function run(argv: string[]): Config {
  const r = parseArgv(['-s', '127.0.0.1:11211', ...argv], ENV);
  if (r.kind !== 'run') throw new Error(JSON.stringify(r));
  return r.config;
}

function refusal(argv: string[]): string {
  const r = parseArgv(['-s', '127.0.0.1:11211', ...argv], ENV);
  return r.kind === 'error' ? r.message : `not refused: ${r.kind}`;
}

test('no TLS setting: tls is null', () => {
  assert.is(run([]).tls, null);
});

test('flags: the files read, defaults for the rest, --tls-listen repeatable', () => {
  const c = run(['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey]).tls!;
  assert.is(c.certFile, certs.serverCert);
  assert.match(c.cert, /^-----BEGIN CERTIFICATE-----/);
  assert.match(c.key, /PRIVATE KEY-----/);
  assert.is(c.ca, null);
  assert.is(c.clientAuth, 'none');
  assert.is(c.minVersion, 'TLSv1.2');
  assert.equal([...c.listen], []);
  const d = run(['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', certs.caCert, '--tls-client-auth', 'require',
    '--tls-min-version', 'TLSv1.3', '--tls-listen', '127.0.0.1:11300', '--tls-listen', '[::1]:11301']).tls!;
  assert.is(d.clientAuth, 'require');
  assert.is(d.minVersion, 'TLSv1.3');
  assert.match(d.ca!, /^-----BEGIN CERTIFICATE-----/);
  assert.equal(d.listen.map((a) => `${a.host}:${a.port}`), ['127.0.0.1:11300', '::1:11301']);
});

test('the file\'s tls section; a flag overrides a key, --tls-listen replaces the file\'s list', () => {
  const file = path.join(certs.dir, 'tls.yml');
  writeFileSync(file, `masters: [127.0.0.1:11211]\ntls:\n  cert: ${certs.serverCert}\n  key: ${certs.serverKey}\n  ca: ${certs.caCert}\n  client_auth: optional\n  listen: [127.0.0.1:11400, 127.0.0.1:11401]\n`);
  const c = parseArgv(['--config', file], ENV);
  assert.is(c.kind, 'run');
  const t = (c as { config: Config }).config.tls!;
  assert.is(t.clientAuth, 'optional');
  assert.equal(t.listen.map((a) => a.port), [11400, 11401]);
  const o = parseArgv(['--config', file, '--tls-client-auth', 'none', '--tls-listen', '127.0.0.1:11500'], ENV);
  const u = (o as { config: Config }).config.tls!;
  assert.is(u.clientAuth, 'none');
  assert.equal(u.listen.map((a) => a.port), [11500]);
});

test('refusals: one line, naming the flag or the file', () => {
  assert.is(refusal(['--tls-client-auth', 'maybe']), "mcrelay: invalid value 'maybe' for --tls-client-auth: expected none, optional or require");
  assert.is(refusal(['--tls-min-version', 'TLSv1.1']), "mcrelay: invalid value 'TLSv1.1' for --tls-min-version: expected TLSv1.2 or TLSv1.3");
  assert.is(refusal(['--tls-listen', '11212']), "mcrelay: invalid value '11212' for --tls-listen: expected host:port (the port is required)");
  assert.match(refusal(['--tls-key', certs.serverKey]), /^mcrelay: TLS needs both a certificate and its key/);
  assert.match(refusal(['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-client-auth', 'optional']), /needs the CA that signs client certificates/);
  const missing = path.join(certs.dir, 'missing.key');
  assert.is(refusal(['--tls-cert', certs.serverCert, '--tls-key', missing]), `mcrelay: tls.key ${missing}: cannot read it: no such file`);
  assert.is(refusal(['--tls-cert', certs.serverCert, '--tls-key', certs.serverCert]), `mcrelay: tls.key ${certs.serverCert}: not a PEM private key without a passphrase`);
  assert.is(refusal(['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', certs.serverKey]), `mcrelay: tls.ca ${certs.serverKey}: not a PEM certificate`);
  assert.is(refusal(['--tls-cert', certs.serverCert, '--tls-key', certs.clientKey]), `mcrelay: tls.key ${certs.clientKey}: not the key of tls.cert ${certs.serverCert}`);
  // A TLS address on a plain listener's port.
  assert.match(refusal(['-p', '11600', '--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-listen', '127.0.0.1:11600']), /is also a plain listener's port/);
  for (const r of [refusal(['--tls-cert', certs.serverCert, '--tls-key', certs.clientKey])]) assert.not.match(r, /\n/);
});

test('masters_tls and backups_tls ride on their pool\'s TCP servers; a unix socket server stays plain', () => {
  const file = path.join(certs.dir, 'servers.yml');
  writeFileSync(file, `masters: [127.0.0.1:11211, /tmp/mc.sock]\nbackups: [127.0.0.1:11212]\nmasters_tls: { ca: ${certs.caCert}, cert: ${certs.clientCert}, key: ${certs.clientKey}, servername: cache.internal }\n`);
  const r = parseArgv(['--config', file], ENV);
  assert.is(r.kind, 'run');
  const c = (r as { config: Config }).config;
  const t = c.masters[0]!.tls!;
  assert.is(t.servername, 'cache.internal');
  assert.match(t.ca!, /BEGIN CERTIFICATE/);
  assert.match(t.key!, /PRIVATE KEY/);
  assert.is(c.masters[1]!.tls, undefined, 'the unix socket server');
  assert.is(c.backups[0]!.tls, undefined, 'the backups have no backups_tls');
  writeFileSync(file, `masters: [127.0.0.1:11211]\nbackups_tls: { cert: ${certs.clientCert} }\n`);
  assert.is(parseArgv(['--config', file], ENV).kind, 'error');
  assert.equal(parseArgv(['--config', file], ENV), { kind: 'error', message: 'mcrelay: backups_tls: a client certificate needs both cert and key' });
});

test.run();
