// A TLS client's session after its handshake (issue 18): on the fast path the
// worker drives Node's TLS handle itself (io/tls-stream.ts), which takes one
// write at a time; with --io portable the TLS socket carries it. What a client
// sees must not differ: replies that outgrow the socket buffers while the
// client reads late, a quit behind them, a record that does not decrypt,
// clients that reset or leave mid-reply (each closed, none left open), and a
// session idle for longer than the handshake timeout.
//
//   Node tls client --TLS--> mcrelay --workers 1 --tls-cert --> memcached
import { once } from 'node:events';
import net from 'node:net';
import { readFileSync, rmSync } from 'node:fs';
import tls from 'node:tls';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeCerts, type Certs } from '../helpers/certs.js';
import { startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { currConnections } from '../helpers/mc.js';
import { WireClient } from '../helpers/wire.js';

let certs: Certs;
let mc: Proc;
let relay: Proc;

test.before(async () => {
  certs = await makeCerts();
  mc = await startMemcached();
  relay = await startProxy(['-s', mc.addr, '--workers', '1', '--tls-cert', certs.serverCert, '--tls-key', certs.serverKey]);
});

test.after(async () => {
  await Promise.all([relay, mc].map((p) => p?.stop()));
  rmSync(certs.dir, { recursive: true, force: true });
});

const BIG = 512 * 1024;
const big = Buffer.alloc(BIG, 'b');
for (let i = 0; i < BIG; i += 4096) big.write(`@${i}:`, i);

async function client(): Promise<WireClient> {
  return WireClient.connectTls(relay.port, { ca: readFileSync(certs.caCert) });
}

/** Everything a TLS client reads until the server closes, or 10 s pass; `late`: it starts reading only after that many ms. */
async function readAll(socket: tls.TLSSocket, late: number): Promise<{ data: Buffer; closed: boolean }> {
  socket.pause();
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  await new Promise((r) => setTimeout(r, late));
  socket.resume();
  let timer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    new Promise<boolean>((r) => socket.once('close', () => r(true))),
    new Promise<boolean>((r) => { timer = setTimeout(() => r(false), 10_000); }),
  ]);
  clearTimeout(timer);
  return { data: Buffer.concat(chunks), closed };
}

function openTls(): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: relay.port, servername: 'localhost', ca: readFileSync(certs.caCert) }, () => resolve(s));
    s.once('error', reject);
  });
}

test('replies that outgrow the socket buffers, to a client reading late, arrive whole and in order', async () => {
  const c = await client();
  assert.is(await c.request(Buffer.concat([Buffer.from(`set session:big 0 0 ${BIG}\r\n`), big, Buffer.from('\r\nset session:small 0 0 2\r\nok\r\n')]), 'STORED\r\nSTORED\r\n'), 'STORED\r\nSTORED\r\n');
  c.close();
  // 24 MB of replies, each flushed while the ones before are still unsent: the
  // writes made meanwhile must wait their turn, and the client's reads stop
  // (back-pressure) until it catches up.
  const s = await openTls();
  let ask = '';
  let want = '';
  for (let i = 0; i < 48; i++) {
    ask += i % 8 === 7 ? 'get session:small\r\n' : 'get session:big\r\n';
  }
  s.write(ask + 'quit\r\n');
  for (let i = 0; i < 48; i++) want += i % 8 === 7 ? 'VALUE session:small 0 2\r\nok\r\nEND\r\n' : `VALUE session:big 0 ${BIG}\r\n<big>\r\nEND\r\n`;
  const { data, closed } = await readAll(s, 800);
  const expected = Buffer.concat(want.split('<big>').flatMap((part, i) => (i === 0 ? [Buffer.from(part)] : [big, Buffer.from(part)])));
  assert.is(data.length, expected.length, 'every byte of every reply');
  assert.ok(data.equals(expected), 'the replies in the order asked');
  // quit came behind them: the close follows the last reply.
  assert.ok(closed, 'closed after quit');
});

test('a record that does not decrypt closes that client at once; the worker serves the next', async () => {
  const tcp = net.connect(relay.port, '127.0.0.1');
  await once(tcp, 'connect');
  const s = tls.connect({ socket: tcp, servername: 'localhost', ca: readFileSync(certs.caCert) });
  await once(s, 'secureConnect');
  s.write('set session:x 0 0 1\r\nx\r\n');
  await once(s, 'data');
  s.on('error', () => { /* the server's alert */ });
  const closed = new Promise((r) => s.once('close', r));
  const started = Date.now();
  // An application-data record of the right form whose contents are junk, sent past the client's TLS.
  tcp.write(Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x20]), Buffer.alloc(32, 0x5a)]));
  await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('not closed in 3 s')), 3000))]);
  assert.ok(Date.now() - started < 3000);
  const c = await client();
  assert.is(await c.request('get session:x\r\n', 'END\r\n'), 'VALUE session:x 0 1\r\nx\r\nEND\r\n');
  c.close();
});

test('clients that leave mid-reply (reset, close, shut side, quit) are all closed; none is left open', async () => {
  const c = await client();
  assert.is(await c.request(Buffer.concat([Buffer.from(`set session:big 0 0 ${BIG}\r\n`), big, Buffer.from('\r\n')])), 'STORED\r\n');
  c.close();
  // Each asks for 4 MB and leaves with most of it unread, while the worker
  // writes: 40 reset their TCP connection (0 to 28 ms after asking: some before
  // the server's first write, even its session tickets), 10 close, 10 shut
  // their side and read on, 10 send quit and read on. The worker must hear
  // every close; one it misses stays open with its replies for ever.
  const ways = ['reset', 'reset', 'reset', 'reset', 'destroy', 'end', 'quit'] as const;
  await Promise.all(Array.from({ length: 70 }, async (_, i) => {
    const tcp = net.connect(relay.port, '127.0.0.1');
    tcp.on('error', () => { /* the reset */ });
    await once(tcp, 'connect');
    const s = tls.connect({ socket: tcp, servername: 'localhost', ca: readFileSync(certs.caCert) });
    s.on('error', () => { /* a reset or the server's close */ });
    await once(s, 'secureConnect');
    const way = ways[i % ways.length]!;
    s.pause();
    s.write('get session:big\r\n'.repeat(8) + (way === 'quit' ? 'quit\r\n' : ''));
    await new Promise((r) => setTimeout(r, (i % 5) * 7));
    if (way === 'reset') tcp.resetAndDestroy();
    else if (way === 'destroy') s.destroy();
    else {
      if (way === 'end') s.end();
      // These read on: every reply comes, then the server closes.
      s.resume();
      await new Promise((r) => s.once('close', r));
    }
  }));
  assert.is(await currConnections(relay.port, 1, { ca: readFileSync(certs.caCert) }, 5000), 1, 'only the asking client is open');
});

test('a session idle for longer than the handshake timeout (10 s) is served', async () => {
  const c = await client();
  assert.is(await c.request('set session:idle 0 0 4\r\nidle\r\n'), 'STORED\r\n');
  await new Promise((r) => setTimeout(r, 10_500));
  assert.not.ok(c.closed, 'still open');
  assert.is(await c.request('get session:idle\r\n', 'END\r\n'), 'VALUE session:idle 0 4\r\nidle\r\nEND\r\n');
  c.close();
});

test.run();
