// test/helpers/certs.ts makes what it says: a TLS client trusting the CA
// accepts the server certificate for 127.0.0.1 and localhost, and refuses the
// expired one and one checked against the other CA; a server requiring client
// certificates takes the client certificate.
import { rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { makeCerts, type Certs } from '../helpers/certs.js';
import '../helpers/hooks.js';

let certs: Certs;

test.before(async () => { certs = await makeCerts(); });
test.after(async () => { if (certs !== undefined) await rm(certs.dir, { recursive: true, force: true }); });

/** A TLS server with cert/key (asking for a client certificate from the CA), and a client's handshake result. */
async function handshake(server: { cert: string; key: string }, client: { ca: string; servername?: string; cert?: string; key?: string }): Promise<string> {
  const s = tls.createServer({
    cert: readFileSync(server.cert), key: readFileSync(server.key),
    ca: readFileSync(certs.caCert), requestCert: client.cert !== undefined, rejectUnauthorized: true,
  }, (sock) => sock.end('hi'));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  try {
    return await new Promise<string>((resolve) => {
      const c = tls.connect({
        host: '127.0.0.1', port: (s.address() as AddressInfo).port, ca: readFileSync(client.ca),
        ...(client.servername !== undefined ? { servername: client.servername } : {}),
        ...(client.cert !== undefined ? { cert: readFileSync(client.cert), key: readFileSync(client.key!) } : {}),
      }, () => { c.end(); resolve('ok'); });
      c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
  } finally {
    s.close();
  }
}

test('the server certificate is valid for 127.0.0.1 and localhost under the CA', async () => {
  assert.is(await handshake({ cert: certs.serverCert, key: certs.serverKey }, { ca: certs.caCert }), 'ok');
  assert.is(await handshake({ cert: certs.serverCert, key: certs.serverKey }, { ca: certs.caCert, servername: 'localhost' }), 'ok');
});

test('the client certificate is taken by a server that requires one from the CA', async () => {
  assert.is(await handshake({ cert: certs.serverCert, key: certs.serverKey }, { ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey }), 'ok');
});

test('the expired certificate and the other CA are refused', async () => {
  assert.is(await handshake({ cert: certs.expiredCert, key: certs.expiredKey }, { ca: certs.caCert }), 'CERT_HAS_EXPIRED');
  assert.is(await handshake({ cert: certs.serverCert, key: certs.serverKey }, { ca: certs.otherCaCert }), 'SELF_SIGNED_CERT_IN_CHAIN');
});

test.run();
