// One request to a memcached server on a connection of its own, for the slow
// paths: the main thread's (probes, outage counters, the shared outage journal,
// drain, restore, coverage, peers) and a worker's `stats <server>`, forwarded
// (worker/local.ts). Nothing here is on the data path.

import { connectServer } from '../io/server-socket.js';
import type { ServerAddress } from '../config/config.js';
import { authAnswer, authRefusal, backendAuth } from './auth.js';

export interface Answer {
  /** what the server sent (latin1), or null if nothing came */
  text: string | null;
  /** the server closed or reset the connection after the request was sent, having said nothing */
  refused: boolean;
  /** nothing complete came within the timeout (as opposed to a refused or broken connection) */
  timedOut: boolean;
  /** the socket error's code (ECONNREFUSED, ENOTFOUND...), if one ended the exchange */
  error: string | null;
  /** the server refused our credentials (backend_auth_file): why, in words for a log line; text is then null */
  authRefused: string | null;
}

/**
 * Sends `request` and resolves with what was read once `complete(text)` holds,
 * or with what came before a close, an error or `timeoutMs` (`text` null if
 * nothing came). An error line ends the exchange too.
 */
export function exchange(address: ServerAddress, request: string | Buffer, timeoutMs: number, complete: (text: string) => boolean): Promise<Answer> {
  return new Promise((resolve) => {
    const { socket, ready } = connectServer(address);
    let got = '';
    let sent = false;
    let error: string | null = null;
    // With credentials for this server, they go first and its STORED is read before the answer.
    const auth = backendAuth(address);
    let authing = auth !== null;
    let authRefused: string | null = null;
    const done = (closed: boolean, timedOut = false): void => {
      clearTimeout(timer);
      socket.destroy();
      // Over TLS an error after the request went out is the handshake failing late
      // (TLS 1.3: a refused client certificate), not a server that closes on a command.
      const failed = error !== null && address.tls !== undefined;
      resolve({ text: got === '' || authing ? null : got, refused: closed && sent && got === '' && !failed, timedOut, error, authRefused });
    };
    const timer = setTimeout(() => done(false, true), timeoutMs);
    socket.on(ready, () => { sent = true; socket.write(auth === null ? request : Buffer.concat([auth, Buffer.from(request)])); });
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (authing) {
        const a = authAnswer(got);
        if (a === 0) return;
        if (a < 0) { authRefused = authRefusal(got); done(false); return; }
        authing = false;
        got = got.slice(a);
        if (got === '') return;
      }
      if (complete(got) || /^(ERROR|CLIENT_ERROR|SERVER_ERROR)[^\n]*\r\n/.test(got)) done(false);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => { error = err.code ?? err.message; done(true); });
    socket.on('close', () => done(true));
  });
}

/** complete() for requests answered by `n` lines. */
export function lines(n: number): (text: string) => boolean {
  return (text) => {
    let seen = 0;
    for (let i = text.indexOf('\r\n'); i >= 0; i = text.indexOf('\r\n', i + 2)) if (++seen >= n) return true;
    return false;
  };
}

/** complete() for a retrieval or stats: ends with END. */
export function endsWithEnd(text: string): boolean {
  return text.endsWith('END\r\n');
}

/** The values of a (multi-key) gets reply: key -> { value, cas }. */
export function parseValues(text: string): Map<string, { value: string; cas: string }> {
  const out = new Map<string, { value: string; cas: string }>();
  let at = 0;
  for (;;) {
    if (!text.startsWith('VALUE ', at)) break;
    const nl = text.indexOf('\r\n', at);
    if (nl < 0) break;
    const parts = text.slice(at + 6, nl).split(' ');
    const size = Number(parts[2]);
    const value = text.slice(nl + 2, nl + 2 + size);
    out.set(parts[0]!, { value, cas: parts[3] ?? '' });
    at = nl + 2 + size + 2;
  }
  return out;
}

/**
 * `gets` of `keys` on one server: for each key "value:cas", or "" when absent
 * (what identifies a counter's state: a value bumped again after a wipe has a
 * new cas); null if the server did not answer.
 */
export async function readStates(address: ServerAddress, keys: readonly string[], timeoutMs: number): Promise<Map<string, string> | null> {
  const { text } = await exchange(address, `gets ${keys.join(' ')}\r\n`, timeoutMs, endsWithEnd);
  if (text === null || !endsWithEnd(text)) return null;
  const values = parseValues(text);
  const out = new Map<string, string>();
  for (const k of keys) {
    const v = values.get(k);
    out.set(k, v === undefined ? '' : `${v.value}:${v.cas}`);
  }
  return out;
}
