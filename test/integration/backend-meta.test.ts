// How mcrelay asks its servers for one key: memcached 1.6 answers a batch of
// pipelined `get`s with one write per get, and a batch of `mg`s with one write
// for all, so a one-key get or gets goes to a server as mg once the server has
// answered MN to the `mn` the main thread asks it on a connection of its own;
// the client still reads the text protocol's reply, byte for byte what
// memcached itself would have sent. A server that answers `mn` with ERROR
// (memcached before 1.6), or closes the connection on it (twemproxy does), gets
// text only, and stays up.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { parseServerAddress, type ServerAddress } from '../../src/config/config.js';
import { askMeta } from '../../src/main/prober.js';
import { FakeBackend } from '../helpers/fake-backend.js';
import { FaultRelay } from '../helpers/fault-relay.js';
import { eventually } from '../helpers/mc.js';
import { freePort, startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';

const procs: Proc[] = [];
const closers: Array<{ close(): unknown }> = [];
test.after.each(async () => {
  for (const c of closers.splice(0)) await c.close();
  for (const p of procs.splice(0)) await p.stop();
});

async function connect(port: number): Promise<WireClient> {
  const c = await WireClient.connect(port);
  closers.push(c);
  return c;
}

test('memcached 1.6: one-key get and gets go as mg, and the client reads what memcached would have sent', async () => {
  const mc = await startMemcached();
  procs.push(mc);
  const relay = await new FaultRelay(mc.port).listen();
  closers.push(relay);
  const proxy = await startProxy(['-s', relay.addr, '--workers', '1']);
  procs.push(proxy);
  const client = await connect(proxy.port);
  const direct = await connect(mc.port);
  const big = 'v'.repeat(300_000);
  assert.is(await client.request('set k 5 0 5\r\nvalue\r\n'), 'STORED\r\n');
  assert.is(await client.request(`set big 4294967295 0 ${big.length}\r\n${big}\r\n`), 'STORED\r\n');
  assert.is(await client.request('set empty 7 0 0\r\n\r\n'), 'STORED\r\n');
  // Gets are text until the server's answer to mn is in.
  assert.ok(await eventually(async () => {
    await client.request('get k\r\n', 'END\r\n');
    return relay.requests.includes('mg k v f\r\n');
  }), `no mg reached the server: ${JSON.stringify(relay.requests.slice(0, 200))}`);
  assert.ok(relay.requests.startsWith('mn\r\n') || relay.requests.includes('\nmn\r\n'), 'asked mn');
  const rows: Array<[string, string]> = [
    ['get k\r\n', 'mg k v f\r\n'],
    ['gets k\r\n', 'mg k v f c\r\n'],
    ['get nokey\r\n', 'mg nokey v f\r\n'],
    ['gets nokey\r\n', 'mg nokey v f c\r\n'],
    ['get big\r\n', 'mg big v f\r\n'],
    ['gets big\r\n', 'mg big v f c\r\n'],
    ['get empty\r\n', 'mg empty v f\r\n'],
    // more than one key: one text get (memcached answers it in one write)
    ['get k nokey big\r\n', 'get k nokey big\r\n'],
    ['gets k k\r\n', 'gets k k\r\n'],
    // gat stays text
    ['gat 0 k\r\n', 'gat 0 k\r\n'],
  ];
  for (const [req, sent] of rows) {
    const want = await direct.request(req, 'END\r\n');
    const from = relay.requests.length;
    assert.is(await client.request(req, 'END\r\n'), want, req);
    assert.is(relay.requests.slice(from), sent, `${req.trim()} reached the server as`);
  }
  // Pipelined: each reply in its place.
  const batch = 'get k\r\nget nokey\r\ngets k\r\nget empty\r\nget big\r\nget k\r\n';
  const all = (b: Buffer): boolean => b.toString('latin1').split('END\r\n').length === 7;
  direct.write(batch);
  const want = (await direct.readUntil(all)).toString('latin1');
  client.write(batch);
  assert.is((await client.readUntil(all)).toString('latin1'), want);
});

/** A server of the text protocol only, answering mn as `onMn` does. */
async function textOnlyServer(onMn: (s: net.Socket) => void): Promise<FakeBackend> {
  const fake = await new FakeBackend((line, s) => {
    if (line === 'mn') onMn(s);
    else if (line === 'get k') s.write('VALUE k 3 5\r\nvalue\r\nEND\r\n');
    else if (line === 'gets k') s.write('VALUE k 3 5 77\r\nvalue\r\nEND\r\n');
    else s.write('ERROR\r\n');
  }).listen();
  closers.push(fake);
  return fake;
}

for (const [what, onMn] of [
  ['answers mn with ERROR (memcached before 1.6)', (s: net.Socket) => s.write('ERROR\r\n')],
  ['closes the connection on mn (as twemproxy does)', (s: net.Socket) => s.destroy()],
] as const) {
  test(`a server that ${what} gets text gets and stays up`, async () => {
    const fake = await textOnlyServer(onMn);
    const proxy = await startProxy(['-s', fake.addr, '--workers', '1']);
    procs.push(proxy);
    assert.ok(await eventually(async () => fake.lines.includes('mn')), 'the server was asked');
    const client = await connect(proxy.port);
    // No backup: a server marked down would make these misses.
    for (let i = 0; i < 5; i++) {
      assert.is(await client.request('get k\r\n', 'END\r\n'), 'VALUE k 3 5\r\nvalue\r\nEND\r\n');
      assert.is(await client.request('gets k\r\n', 'END\r\n'), 'VALUE k 3 5 77\r\nvalue\r\nEND\r\n');
    }
    // mn and stats are the prober's, on connections of its own.
    assert.equal(fake.lines.filter((l) => l !== 'mn' && l !== 'stats'), Array(5).fill(['get k', 'gets k']).flat());
    assert.match(proxy.output, 'does not answer meta commands');
  });
}

test('an mcrelay in front of a server without meta commands: it answers mn, its server refuses mg; the client still gets its values', async () => {
  // client -> mcrelay A -> mcrelay B -> a server of the text protocol only
  const fake = await textOnlyServer((s) => s.write('ERROR\r\n')); // mn, and mg below: unknown commands
  const b = await startProxy(['-s', fake.addr, '--workers', '1']);
  procs.push(b);
  const a = await startProxy(['-s', b.addr, '--workers', '1']);
  procs.push(a);
  const client = await connect(a.port);
  // A asks B mn at start and B answers MN itself: A's one-key gets go as mg.
  assert.ok(await eventually(async () => {
    assert.is(await client.request('get k\r\n', 'END\r\n'), 'VALUE k 3 5\r\nvalue\r\nEND\r\n');
    return fake.lines.includes('mg k v f');
  }), 'A never sent mg through B');
  assert.match(a.output, 'answered mg with ERROR');
  for (let i = 0; i < 3; i++) {
    assert.is(await client.request('get k\r\n', 'END\r\n'), 'VALUE k 3 5\r\nvalue\r\nEND\r\n');
    assert.is(await client.request('gets k\r\n', 'END\r\n'), 'VALUE k 3 5 77\r\nvalue\r\nEND\r\n');
  }
  // The first get went as mg, was refused, and went again as text; after that, text only.
  const gets = fake.lines.filter((l) => l.startsWith('mg') || l.startsWith('get'));
  assert.equal(gets.slice(gets.indexOf('mg k v f')), ['mg k v f', 'get k', ...Array(3).fill(['get k', 'gets k']).flat()]);
});

test('askMeta: MN yes; ERROR or a close without a word no; anything else not known yet', async () => {
  const addr = (port: number): ServerAddress => parseServerAddress(`127.0.0.1:${port}`) as ServerAddress;
  const mc = await startMemcached();
  procs.push(mc);
  assert.is(await askMeta(addr(mc.port), 1000), true);
  const answering = async (answer: (s: net.Socket) => void): Promise<boolean | null> => {
    const server = net.createServer((s) => { s.on('error', () => {}); s.once('data', () => answer(s)); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      return await askMeta(addr((server.address() as net.AddressInfo).port), 500);
    } finally {
      server.close();
    }
  };
  assert.is(await answering((s) => s.write('ERROR\r\n')), false, 'memcached before 1.6');
  assert.is(await answering((s) => s.destroy()), false, 'twemproxy');
  // memcached at its connection limit says so, then closes: not an answer about mn
  assert.is(await answering((s) => s.end('ERROR Too many open connections\r\n')), null);
  assert.is(await answering(() => { /* silent */ }), null);
  assert.is(await askMeta(addr(await freePort()), 500), null, 'nothing listening');
});

test.run();
