// Every key a memcached server holds, read as a stream of `lru_crawler metadump
// all` on a connection of its own: for eager restore (main/restore.ts), the
// placement sweep (main/placement.ts), which deletes by key and cas, and
// `mcrelay plan` (plan.ts), which routes each key without copying anything.
//
//   lru_crawler metadump all --> "key=<url-encoded> exp=... la=... cas=... ..." lines, END
//     --> onKey(decoded key bytes, cas), awaited: the socket is paused while the
//         keys read ahead wait for it

import { connectServer } from '../io/server-socket.js';
import type { ServerAddress } from '../config/config.js';
import { authAnswer, authRefusal, backendAuth } from './auth.js';

/** Keys read from the dump ahead of onKey, at most. */
const READ_AHEAD = 1000;
/** A crawl already running answers BUSY: asked again every second, this many times. */
const BUSY_TRIES = 30;

/**
 * How a dump ended: read to its END; stopped because onKey returned false;
 * refused by the server (no lru_crawler, an error line, BUSY for 30 s); or
 * cut short (connection refused, reset, closed before END, or idle too long).
 */
export type DumpEnd = 'done' | 'stopped' | 'unavailable' | 'failed';

export interface DumpResult {
  readonly end: DumpEnd;
  /** for unavailable and failed: the server's error line or the socket error's code; else '' */
  readonly detail: string;
}

export interface DumpOptions {
  /**
   * Fail when the socket sees nothing for this long (connect included). Off
   * by default: a restore keeps the socket paused for as long as its copies take.
   */
  readonly idleMs?: number;
}

/**
 * The last dump asked of each server by this process. While a dump's reader
 * pauses (a restore pacing its copies), memcached's crawler waits on that
 * client holding its lock, and a second `lru_crawler metadump` blocks the
 * worker thread that reads it (with -t 1, the whole server) for up to a
 * second, again at each retry: requests to it time out, it is marked down,
 * and the restores reading it fail (the bench's placement line: four
 * restores from one backup). So dumps of one server run one after another.
 */
const lastDump = new Map<string, Promise<unknown>>();

/**
 * Streams `lru_crawler metadump all` from a server, calling onKey for each key
 * (decoded bytes) and its cas id, and waiting for it: the socket is paused while it works.
 * onKey returning false stops the dump. A dump of the same server by this
 * process still running is waited for first.
 */
export async function metadump(address: ServerAddress, onKey: (key: Buffer, cas: bigint) => boolean | Promise<boolean>, opts: DumpOptions = {}): Promise<DumpResult> {
  const id = address.path ?? `${address.host}:${address.port}`;
  const before = lastDump.get(id);
  const mine = (async () => {
    await before?.then(() => undefined, () => undefined);
    return dumpNow(address, onKey, opts);
  })();
  lastDump.set(id, mine);
  try {
    return await mine;
  } finally {
    if (lastDump.get(id) === mine) lastDump.delete(id);
  }
}

function dumpNow(address: ServerAddress, onKey: (key: Buffer, cas: bigint) => boolean | Promise<boolean>, opts: DumpOptions): Promise<DumpResult> {
  return new Promise((resolve) => {
    const { socket, ready } = connectServer(address);
    let buf = '';
    let settled = false;
    let busyTries = 0;
    const queue: Array<{ key: Buffer; cas: bigint }> = [];
    let working = false;
    let ended = false;
    const finish = (end: DumpEnd, detail = ''): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve({ end, detail });
    };
    if (opts.idleMs !== undefined) socket.setTimeout(opts.idleMs, () => finish('failed', `nothing for ${opts.idleMs} ms`));
    const drain = async (): Promise<void> => {
      if (working) return;
      working = true;
      while (queue.length > 0) {
        if (queue.length < READ_AHEAD / 2) socket.resume();
        const item = queue.shift()!;
        if (!(await onKey(item.key, item.cas))) { finish('stopped'); return; }
      }
      working = false;
      if (ended) finish('done');
      else socket.resume();
    };
    const auth = backendAuth(address);
    let authing = auth !== null;
    // memcached refuses a metadump pipelined behind another request ("ERROR cannot
    // pipeline other commands before metadump"): it goes once the auth set is answered.
    socket.on(ready, () => socket.write(auth ?? 'lru_crawler metadump all\r\n'));
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (authing) {
        const a = authAnswer(buf);
        if (a === 0) return;
        if (a < 0) { finish('failed', authRefusal(buf)); return; }
        authing = false;
        buf = buf.slice(a);
        socket.write('lru_crawler metadump all\r\n');
      }
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl < 0) break;
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (line === 'END') { ended = true; continue; }
        if (line.startsWith('BUSY') && busyTries++ < BUSY_TRIES) {
          // Another crawl is running: ask again in a moment.
          setTimeout(() => { if (!settled) socket.write('lru_crawler metadump all\r\n'); }, 1000);
          continue;
        }
        if (/^(ERROR|CLIENT_ERROR|SERVER_ERROR|BUSY)/.test(line)) { finish('unavailable', line); return; }
        const m = /^key=(\S+)(?:.* cas=(\d+))?/.exec(line);
        if (m === null) continue;
        queue.push({ key: percentDecode(m[1]!), cas: m[2] === undefined ? 0n : BigInt(m[2]) });
      }
      if (queue.length >= READ_AHEAD) socket.pause();
      void drain();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish('failed', err.code ?? err.message));
    socket.on('close', () => { if (!ended) finish('failed', 'closed before the end of the dump'); else void drain(); });
  });
}

/** A key of the proxies' own (locks, drains, journals: "mcrelay:..."), not a client's. */
export function isProxyKey(key: Buffer): boolean {
  return key.toString('latin1').startsWith('mcrelay:');
}

/** memcached's metadump key: bytes, with %XX for those it escapes (not UTF-8: a key is any bytes). */
function percentDecode(s: string): Buffer {
  const out = Buffer.alloc(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25 && i + 2 < s.length && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      out[n++] = parseInt(s.slice(i + 1, i + 3), 16);
      i += 2;
    } else {
      out[n++] = c;
    }
  }
  return out.subarray(0, n);
}
