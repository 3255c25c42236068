// 10,000 client connections held at once, each served, over 2 workers; a client
// that shuts its side is still answered; a new client counts itself in stats.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { startMemcached, startProxy, type Proc } from '../helpers/procs.js';

const procs: Proc[] = [];
test.after(async () => { for (const p of procs.splice(0)) await p.stop(); });

const N = 10_000;

test(`${N} concurrent client connections are held and each one served`, async () => {
  const mc = await startMemcached();
  procs.push(mc);
  const proxy = await startProxy(['-s', mc.addr, '--workers', '2', '-n', String(N + 100)]);
  procs.push(proxy);
  const sockets: net.Socket[] = [];
  try {
    // Connect in batches (bounded concurrency), then ask every one of them once.
    for (let i = 0; i < N; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, N - i) }, () => new Promise<void>((resolve, reject) => {
        const s = net.connect(proxy.port, '127.0.0.1', () => resolve());
        s.once('error', reject);
        sockets.push(s);
      })));
    }
    let answered = 0;
    await Promise.all(sockets.map((s, i) => new Promise<void>((resolve, reject) => {
      const key = `c${i}`;
      let got = '';
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        if (got.endsWith('END\r\n')) {
          if (got === `STORED\r\nVALUE ${key} 0 1\r\nx\r\nEND\r\n`) answered++;
          resolve();
        }
      });
      s.once('close', () => reject(new Error(`connection ${i} closed after ${JSON.stringify(got)}`)));
      s.write(`set ${key} 0 0 1\r\nx\r\nget ${key}\r\n`);
    })));
    assert.is(answered, N);
    // All of them are still open, and the proxy counts them.
    const c = sockets[0]!;
    const stats = await new Promise<string>((resolve) => {
      let got = '';
      c.removeAllListeners('data');
      c.on('data', (d: Buffer) => { got += d.toString('latin1'); if (got.endsWith('END\r\n')) resolve(got); });
      c.write('stats\r\n');
    });
    assert.is(Number(/STAT curr_connections (\d+)/.exec(stats)?.[1]), N);
  } finally {
    for (const s of sockets) { s.removeAllListeners('close'); s.destroy(); }
  }
});

/** Sends `text`, shuts the write side at once, and returns all that arrives before the close. */
function sendAndShut(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const s = net.connect(port, '127.0.0.1', () => s.end(text));
    s.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    s.once('close', () => resolve(got));
    s.once('error', (err) => reject(new Error(`${err.message} after ${JSON.stringify(got)}`)));
  });
}

test('a client that shuts its side right after sending gets every reply, then the close, as from memcached', async () => {
  const mc = await startMemcached();
  procs.push(mc);
  const proxy = await startProxy(['-s', mc.addr, '--workers', '1']);
  procs.push(proxy);
  // what `printf '...' | nc -N host port` does: the reply comes after the client's EOF
  const keys = Array.from({ length: 40 }, (_, i) => `hc${i}`);
  const text = `set hc0 0 0 2\r\nab\r\nget hc0\r\nget ${keys.join(' ')}\r\nversion\r\n`;
  const direct = await sendAndShut(mc.port, text);
  assert.ok(direct.startsWith('STORED\r\nVALUE hc0 0 2\r\nab\r\nEND\r\n'), direct);
  const viaProxy = await sendAndShut(proxy.port, text);
  const version = /VERSION .*\r\n$/;
  assert.is(viaProxy.replace(version, 'VERSION\r\n'), direct.replace(version, 'VERSION\r\n'));
});

test('a client whose first command is stats counts itself in curr_connections, every time', async () => {
  const mc = await startMemcached();
  procs.push(mc);
  const proxy = await startProxy(['-s', mc.addr, '--workers', '2']);
  procs.push(proxy);
  // The worker answers as soon as the connection reaches it; the main thread's
  // count of handed connections must already include it (it missed 66 of 3,000).
  const low: string[] = [];
  for (let i = 0; i < 1000; i++) {
    const reply = await new Promise<string>((resolve, reject) => {
      let got = '';
      const s = net.connect(proxy.port, '127.0.0.1');
      s.write('stats\r\n');
      s.on('data', (d: Buffer) => { got += d.toString('latin1'); if (got.endsWith('END\r\n')) { s.destroy(); resolve(got); } });
      s.once('error', reject);
    });
    const n = Number(/STAT curr_connections (-?\d+)/.exec(reply)?.[1]);
    if (!(n >= 1)) low.push(`connection ${i}: ${n}`);
  }
  assert.equal(low, []);
});

test.run();
