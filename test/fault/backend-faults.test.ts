// Faults only a scripted backend can show: garbage, a torn reply, silence.
// The master is the fake; the backup is a real memcached holding the value.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeBackend } from '../helpers/fake-backend.js';
import { startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';

const procs: Proc[] = [];
const fakes: FakeBackend[] = [];
test.after.each(async () => {
  for (const p of procs.splice(0)) await p.stop();
  for (const f of fakes.splice(0)) await f.close();
});

async function setup(behaviour: (line: string, socket: import('node:net').Socket) => void, flags: string[] = []) {
  const fake = await new FakeBackend(behaviour).listen();
  fakes.push(fake);
  const backup = await startMemcached();
  procs.push(backup);
  // Seed the backup directly: it holds what a replicated write would have put there.
  const direct = await WireClient.connect(backup.port);
  assert.is(await direct.request('set k 0 0 5\r\nvalue\r\n'), 'STORED\r\n');
  direct.close();
  const proxy = await startProxy(['-s', fake.addr, '-b', backup.addr, '--workers', '1', ...flags]);
  procs.push(proxy);
  const client = await WireClient.connect(proxy.port);
  return { fake, backup, proxy, client };
}

const HIT = 'VALUE k 0 5\r\nvalue\r\nEND\r\n';

test('garbage from the master closes its connection and the read is answered by the backup', async () => {
  const { fake, client } = await setup((_line, s) => s.write('HELLO WORLD\r\n'));
  assert.is(await client.request('get k\r\n', 'END\r\n'), HIT);
  // The fake saw the request; the proxy dropped that connection after the garbage.
  assert.ok(fake.lines.includes('get k'));
  client.close();
});

test('garbage from the master is logged (-v) with its code, MCRELAY_BACKEND_UNPARSEABLE', async () => {
  const { fake, proxy, client } = await setup((_line, s) => s.write('HELLO WORLD\r\n'), ['-v']);
  assert.is(await client.request('get k\r\n', 'END\r\n'), HIT);
  client.close();
  assert.ok(await proxy.waitForOutput('"code":"MCRELAY_BACKEND_UNPARSEABLE"', 3000), proxy.output);
  const first = proxy.output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((l) => l['msg'] === 'backend connection failed');
  assert.equal([first?.['server'], first?.['code'], first?.['reason']], [fake.addr, 'MCRELAY_BACKEND_UNPARSEABLE', 'unparseable reply']);
});

test('a reply torn in half and then cut off: the read is answered by the backup', async () => {
  const { client } = await setup((_line, s) => { s.write('VALUE k 0 5\r\nva'); setTimeout(() => s.destroy(), 20); });
  assert.is(await client.request('get k\r\n', 'END\r\n'), HIT);
  client.close();
});

test('a value for a key that was not asked for is a protocol error, not a wrong answer', async () => {
  const { client } = await setup((_line, s) => s.write('VALUE other 0 5\r\nwrong\r\nEND\r\n'));
  assert.is(await client.request('get k\r\n', 'END\r\n'), HIT);
  client.close();
});

test('a silent master: the read fails over after the timeout, and repeated timeouts mark it down', async () => {
  const { client } = await setup(() => { /* never answers */ }, ['--timeout', '300', '--failure-limit', '2', '--retry-interval', '60000']);
  for (let i = 0; i < 2; i++) {
    const t0 = Date.now();
    assert.is(await client.request('get k\r\n', 'END\r\n', 3000), HIT);
    const took = Date.now() - t0;
    assert.ok(took >= 250 && took < 300 + 250, `answered after ${took} ms`);
  }
  // Two timeouts in a row: the master is down, reads go straight to the backup.
  const t0 = Date.now();
  assert.is(await client.request('get k\r\n', 'END\r\n'), HIT);
  assert.ok(Date.now() - t0 < 200, `down master still waited ${Date.now() - t0} ms`);
  client.close();
});

test('a write whose master fails in flight gets the backup\'s reply', async () => {
  const { client, backup } = await setup((_line, s) => s.destroy());
  assert.is(await client.request('set k 0 0 3\r\nnew\r\n'), 'STORED\r\n');
  const direct = await WireClient.connect(backup.port);
  assert.is(await direct.request('get k\r\n', 'END\r\n'), 'VALUE k 0 3\r\nnew\r\nEND\r\n');
  direct.close();
  client.close();
});

/** A master that closes the connection under the first `closes` gets, then answers them; `stats`/`mn` as a text-only server. */
function closesUnderGets(closes: number): (line: string, s: import('node:net').Socket) => void {
  let left = closes;
  return (line, s) => {
    if (line === 'stats') s.write('END\r\n');
    else if (line === 'mn') s.write('ERROR\r\n');
    else if (line !== 'get k') s.write('ERROR\r\n');
    else if (left-- > 0) s.destroy();
    else s.write('VALUE k 0 6\r\nmaster\r\nEND\r\n');
  };
}

test('a read on a connection the master closes under it (an idle close racing it) is sent again; the master stays up', async () => {
  const { client, proxy } = await setup(closesUnderGets(1));
  assert.is(await client.request('get k\r\n', 'END\r\n'), 'VALUE k 0 6\r\nmaster\r\nEND\r\n', 'answered by the master on a new connection');
  assert.is(await client.request('get k\r\n', 'END\r\n'), 'VALUE k 0 6\r\nmaster\r\nEND\r\n', 'and the next read too');
  assert.not.match(proxy.output, /server marked down/);
  client.close();
});

test('a read the master closes the connection under twice fails over to the backup, and the master is marked down', async () => {
  const { client, proxy } = await setup(closesUnderGets(2), ['--retry-interval', '60000']);
  assert.is(await client.request('get k\r\n', 'END\r\n'), HIT);
  assert.match(proxy.output, /server marked down/);
  client.close();
});

test.run();
