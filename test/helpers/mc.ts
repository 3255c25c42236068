// Reading memcached replies in tests: a parser for whole text-protocol replies
// (so pipelined batches can be counted), a direct view of one server's copy of a
// key (meta get: value, flags and remaining TTL), and bounded pipelined bulk
// set/get helpers.
import { WireClient } from './wire.js';

export interface Value { key: string; flags: number; data: Buffer; cas: string | null }
/** One complete reply: the VALUE blocks of a retrieval and its final line (END, STORED, 15, ...). */
export interface Reply { line: string; values: Value[] }

/** Parses the complete replies at the start of buf; stops at the first incomplete one. */
export function parseReplies(buf: Buffer): { replies: Reply[]; consumed: number } {
  const replies: Reply[] = [];
  let pos = 0;
  let consumed = 0;
  let values: Value[] = [];
  for (;;) {
    const eol = buf.indexOf('\r\n', pos, 'latin1');
    if (eol < 0) break;
    const line = buf.toString('latin1', pos, eol);
    if (line.startsWith('VALUE ')) {
      const t = line.split(' ');
      const dataEnd = eol + 2 + Number(t[3]);
      if (buf.length < dataEnd + 2) break;
      values.push({ key: t[1]!, flags: Number(t[2]), data: buf.subarray(eol + 2, dataEnd), cas: t[4] ?? null });
      pos = dataEnd + 2;
      continue;
    }
    replies.push({ line, values });
    values = [];
    pos = eol + 2;
    consumed = pos;
  }
  return { replies, consumed };
}

/** Reads exactly n complete replies (fails if the connection closes or the time runs out first). */
export async function readReplies(c: WireClient, n: number, timeoutMs = 5000): Promise<Reply[]> {
  const b = await c.readUntil((x) => parseReplies(x).replies.length >= n, timeoutMs);
  const { replies, consumed } = parseReplies(b);
  if (replies.length !== n || consumed !== b.length) {
    throw new Error(`expected ${n} replies, got ${replies.length} (${b.length - consumed} bytes left over)` +
      `${c.closed ? ', connection closed' : ''}: ${JSON.stringify(b.toString('latin1', 0, 200))}`);
  }
  return replies;
}

/** Sends one request (a string is sent as latin1, one byte per char) and returns its one reply. */
export async function roundTrip(c: WireClient, request: string | Buffer, timeoutMs = 5000): Promise<Reply> {
  c.write(typeof request === 'string' ? Buffer.from(request, 'latin1') : request);
  return (await readReplies(c, 1, timeoutMs))[0]!;
}

/** A server's own copy of a key, as `mg <key> v f t` shows it; ttl -1 means no expiry. */
export interface Item { value: string; flags: number; ttl: number }

/** Reads one key directly from a memcached server (not through the proxy). */
export async function inspect(c: WireClient, key: string): Promise<Item | null> {
  c.write(`mg ${key} v f t\r\n`);
  const b = await c.readUntil((x) => {
    const eol = x.indexOf('\r\n');
    if (eol < 0) return false;
    const head = x.toString('latin1', 0, eol);
    if (!head.startsWith('VA ')) return true;
    return x.length >= eol + 2 + Number(head.split(' ')[1]) + 2;
  });
  const eol = b.indexOf('\r\n');
  const head = b.toString('latin1', 0, eol);
  if (head === 'EN') return null;
  if (!head.startsWith('VA ')) throw new Error(`mg ${key}: ${JSON.stringify(b.toString('latin1'))}`);
  const t = head.split(' ');
  const len = Number(t[1]);
  const item: Item = { value: b.toString('latin1', eol + 2, eol + 2 + len), flags: 0, ttl: -1 };
  for (const flag of t.slice(2)) {
    if (flag[0] === 'f') item.flags = Number(flag.slice(1));
    else if (flag[0] === 't') item.ttl = Number(flag.slice(1));
  }
  return item;
}

/** Stores a value directly on one server. */
export async function directSet(c: WireClient, key: string, value: string, flags = 0, exptime = 0): Promise<void> {
  const r = await roundTrip(c, `set ${key} ${flags} ${exptime} ${Buffer.byteLength(value, 'latin1')}\r\n${value}\r\n`);
  if (r.line !== 'STORED') throw new Error(`direct set ${key}: ${r.line}`);
}

/**
 * Pipelined sets: `window` requests written at once, then their replies read,
 * until every entry is stored. Returns the replies that were not STORED.
 */
export async function setMany(c: WireClient, entries: ReadonlyArray<readonly [string, string]>, window = 500): Promise<string[]> {
  const bad: string[] = [];
  for (let i = 0; i < entries.length; i += window) {
    const batch = entries.slice(i, i + window);
    c.write(Buffer.from(batch.map(([k, v]) => `set ${k} 0 0 ${Buffer.byteLength(v, 'latin1')}\r\n${v}\r\n`).join(''), 'latin1'));
    const replies = await readReplies(c, batch.length, 10_000);
    replies.forEach((r, j) => { if (r.line !== 'STORED') bad.push(`${batch[j]![0]}: ${r.line}`); });
  }
  return bad;
}

/**
 * Pipelined multi-key gets: `perGet` keys per get, `window` gets in flight.
 * Returns every value found, by key, and the final lines that were not END.
 */
export async function getMany(c: WireClient, keys: readonly string[], perGet = 100, window = 10): Promise<{ found: Map<string, string>; errors: string[] }> {
  const found = new Map<string, string>();
  const errors: string[] = [];
  const step = perGet * window;
  for (let i = 0; i < keys.length; i += step) {
    const lines: string[] = [];
    for (let j = i; j < Math.min(i + step, keys.length); j += perGet) {
      lines.push(`get ${keys.slice(j, Math.min(j + perGet, i + step, keys.length)).join(' ')}\r\n`);
    }
    c.write(lines.join(''));
    const replies = await readReplies(c, lines.length, 10_000);
    for (const r of replies) {
      if (r.line !== 'END') errors.push(r.line);
      for (const v of r.values) found.set(v.key, v.data.toString('latin1'));
    }
  }
  return { found, errors };
}

/** Polls `check` until it returns true or the time is up; returns the last result. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 1000, everyMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * curr_connections (which counts the asking connection) once it is `want`, or
 * what it was after `waitMs`: closes seen by the server a moment after the
 * client's. Asks over TLS when `tlsOptions` is given.
 */
export async function currConnections(port: number, want: number, tlsOptions?: Parameters<typeof WireClient.connectTls>[1], waitMs = 3000): Promise<number> {
  const c = tlsOptions === undefined ? await WireClient.connect(port) : await WireClient.connectTls(port, tlsOptions);
  const deadline = Date.now() + waitMs;
  let n: number;
  for (;;) {
    n = Number(/^STAT curr_connections (\d+)\r$/m.exec(await c.request('stats\r\n', 'END\r\n'))?.[1]);
    if (n === want || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  c.close();
  return n;
}
