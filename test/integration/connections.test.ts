// 10,000 client connections held at once, each served, over 2 workers.
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

test.run();
