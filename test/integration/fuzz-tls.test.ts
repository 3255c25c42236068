// The CI slice of the TLS handshake fuzzer (test/fuzz/tls-handshake.ts; the
// full run is `npm run fuzz -- --only tls`): recorded ClientHellos cut, flipped,
// lied about and spliced with junk, each on a fresh connection to mcrelay's TLS
// listener, then the fuzzer's side shut.
//
//   fuzzer --mutated hello--> mcrelay (TLS only, 1 worker) --> memcached
//   a TLS client of the same worker, asked between inputs
//
// Every connection must be closed within 3 s with nothing but TLS records sent
// back; the other client must be served throughout; and no connection may stay
// counted at the end. Replay one input with
// npm run fuzz -- --only tls --seed 20261206 --replay tls:<index>.
import { readFileSync, rmSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatHandshakeReport, runHandshakeFuzz } from '../fuzz/tls-handshake.js';
import { makeCerts, type Certs } from '../helpers/certs.js';
import { startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';

const SEED = 20261206;
const INPUTS = 240;

let certs: Certs;
let mc: Proc | undefined;
let proxy: Proc | undefined;

test.before(async () => {
  certs = await makeCerts();
  mc = await startMemcached();
  proxy = await startProxy(['-s', mc.addr, '--workers', '1', '--tls-cert', certs.serverCert, '--tls-key', certs.serverKey]);
});

test.after(async () => {
  await Promise.all([proxy?.stop(), mc?.stop()]);
  rmSync(certs.dir, { recursive: true, force: true });
});

test('TLS handshake fuzz: every mangled hello is closed promptly, with TLS records only; the worker\'s other client is served', async () => {
  const client = await WireClient.connectTls(proxy!.port, { ca: readFileSync(certs.caCert) });
  const report = await runHandshakeFuzz(proxy!.port, SEED, INPUTS, Date.now() + 30_000, {
    between: async (at) => {
      const v = String(at);
      const reply = await client.request(`set fuzz:tls 0 0 ${v.length}\r\n${v}\r\nget fuzz:tls\r\n`, 'END\r\n');
      return reply === `STORED\r\nVALUE fuzz:tls 0 ${v.length}\r\n${v}\r\nEND\r\n` ? null : `the TLS client after input ${at}: ${JSON.stringify(reply)}`;
    },
  });
  console.log(`\n  ${formatHandshakeReport(report, SEED).split('\n')[0]}`);
  assert.ok(report.inputs >= INPUTS / 2, `only ${report.inputs} inputs ran before the deadline`);
  if (report.problems.length > 0) assert.unreachable(`\n${formatHandshakeReport(report, SEED)}`);
  let curr = '';
  for (let t = 0; t < 60 && curr !== '1'; t++) {
    if (t > 0) await new Promise((r) => setTimeout(r, 50));
    curr = /^STAT curr_connections (\d+)\r$/m.exec(await client.request('stats\r\n', 'END\r\n'))?.[1] ?? '';
  }
  assert.is(curr, '1', 'every fuzzed connection closed and uncounted: only the TLS client is left');
  client.close();
});

test.run();
