// A server's keys as `lru_crawler metadump all` lists them, one line an item:
//
//   key=<url-encoded key> exp=<unix time or -1> la=<last access> cas=<cas id> fetch=<yes|no> cls=<class> size=<bytes>
//
// streamed: the socket is paused while the caller works on the keys read, so
// that a dump of millions of keys holds at most READ_AHEAD of them. Used by the
// restore (main/restore.ts) and the placement sweep (main/placement.ts).

import net from 'node:net';
import type { ServerAddress } from '../config/config.js';

/** Keys read from the dump ahead of the caller, at most. */
const READ_AHEAD = 1000;
/** memcached answers BUSY while another crawl runs: asked again once a second, this many times. */
const BUSY_TRIES = 30;

export type DumpResult = 'done' | 'unavailable' | 'failed';

interface Item { key: Buffer; cas: bigint }

/**
 * Streams the dump of `address`, calling onKey for each item (its decoded key
 * bytes and cas id) and waiting for it. onKey returning false, or stop()
 * turning true, ends the dump as 'failed'. 'unavailable': the server lists no
 * keys (lru_crawler off, or not a memcached).
 */
export function metadump(address: ServerAddress, stop: () => boolean, onKey: (key: Buffer, cas: bigint) => Promise<boolean>): Promise<DumpResult> {
  return new Promise((resolve) => {
    const socket = address.path !== null ? net.connect(address.path) : net.connect(address.port, address.host);
    let buf = '';
    let settled = false;
    let busyTries = 0;
    const queue: Item[] = [];
    let working = false;
    let ended = false;
    const finish = (r: DumpResult): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(r);
    };
    const drain = async (): Promise<void> => {
      if (working) return;
      working = true;
      while (queue.length > 0) {
        if (queue.length < READ_AHEAD / 2) socket.resume();
        const item = queue.shift()!;
        if (!(await onKey(item.key, item.cas)) || stop()) { finish('failed'); return; }
      }
      working = false;
      if (ended) finish('done');
      else socket.resume();
    };
    socket.on('connect', () => socket.write('lru_crawler metadump all\r\n'));
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl < 0) break;
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (line === 'END') { ended = true; continue; }
        if (line.startsWith('BUSY') && busyTries++ < BUSY_TRIES) {
          // Another crawl is running: ask again in a moment.
          setTimeout(() => socket.write('lru_crawler metadump all\r\n'), 1000);
          continue;
        }
        if (/^(ERROR|CLIENT_ERROR|SERVER_ERROR|BUSY)/.test(line)) { finish('unavailable'); return; }
        const m = /^key=(\S+)(?:.* cas=(\d+))?/.exec(line);
        if (m === null) continue;
        queue.push({ key: percentDecode(m[1]!), cas: m[2] === undefined ? 0n : BigInt(m[2]) });
      }
      if (queue.length >= READ_AHEAD) socket.pause();
      void drain();
    });
    socket.on('error', () => finish('failed'));
    socket.on('close', () => { if (!ended) finish('failed'); else void drain(); });
  });
}

/** memcached's metadump key: bytes, with %XX for those it escapes (not UTF-8: a key is any bytes). */
export function percentDecode(s: string): Buffer {
  const out = Buffer.alloc(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25 && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      out[n++] = parseInt(s.slice(i + 1, i + 3), 16);
      i += 2;
    } else {
      out[n++] = c;
    }
  }
  return out.subarray(0, n);
}
