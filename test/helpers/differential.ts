// Differential conformance: the same literal bytes sent to a reference memcached
// and to mcrelay (in front of a second memcached), the replies compared byte for
// byte (conformance.test.ts, meta-conformance.test.ts):
//
//   client --row--> memcached A                      (the reference)
//   client --row--> mcrelay --> memcached B          (one master, no backup)
//
// Before every single send both servers are flushed, their cas counters brought
// level and the row's setup written to both directly, so a row always starts
// from the same state on A and B. A row is sent whole, byte by byte (short rows)
// and split in two writes at every offset (a sample of offsets for long rows).
// The end of a reply is found with a sentinel request sent after the row; rows
// that close the connection are read until it closes.
import * as assert from 'uvu/assert';
import { WireClient } from './wire.js';

/** How the end of a reply is known. */
export type Frame = 'sentinel' | 'close';

/** A send: whole (no cuts), byte by byte (every offset), or two writes cut at k. */
export type Mode = { kind: 'whole' } | { kind: 'bytes' } | { kind: 'cut'; at: number };

export interface Row {
  name: string;
  /** the request bytes (latin1); a function when they depend on the cas base */
  send: string | ((base: bigint) => string);
  /** written directly to A and B before the row (not split, not compared) */
  setup?: string;
  /** absent: compare with memcached A; a string or check: mcrelay alone, literally */
  expect?: string | ((reply: string) => void);
  frame?: Frame;
  /** which sends: default whole, byte by byte (short rows) and every/sampled cut */
  modes?: 'all' | 'whole' | ((data: Buffer) => Mode[]);
  /**
   * Applied to both replies before they are compared: for figures that depend on
   * each server's own clock tick (remaining TTL, seconds since last access).
   */
  normalize?: (reply: string) => string;
}

export const modeName = (m: Mode): string => (m.kind === 'cut' ? `split at ${m.at}` : m.kind === 'bytes' ? 'byte by byte' : 'whole');

export const show = (s: string): string => JSON.stringify(s.length > 300 ? `${s.slice(0, 200)}...(${s.length} bytes)...${s.slice(-60)}` : s);

const SENTINEL = Buffer.from('set __end 0 0 10\r\n<sentinel>\r\nget __end\r\n');
const SENTINEL_REPLY = Buffer.from('STORED\r\nVALUE __end 0 10\r\n<sentinel>\r\nEND\r\n');
const CAS_PROBE = 'set __cas 0 0 1 noreply\r\nx\r\ngets __cas\r\n';
const casOf = (r: string): bigint => BigInt(/^VALUE __cas 0 1 (\d+)\r\n/m.exec(r)![1]!);

/** Sends to a server directly and reads up to the meta no-op's "MN" (memcached's own end marker). */
export async function admin(c: WireClient, data: string): Promise<string> {
  const r = await c.request(`${data}mn\r\n`, 'MN\r\n', 5000);
  if (!r.endsWith('MN\r\n')) throw new Error(`admin request got no MN: ${JSON.stringify(r.slice(-200))}`);
  return r.slice(0, -4);
}

/** Sends data to a port the way `mode` says and returns the reply (see Frame). */
export async function exchange(port: number, data: Buffer, mode: Mode, frame: Frame): Promise<string> {
  const c = await WireClient.connect(port);
  try {
    if (mode.kind === 'whole') c.write(data);
    else if (mode.kind === 'cut') await c.writeSplit(data, [mode.at]);
    else await c.writeSplit(data, Array.from({ length: data.length - 1 }, (_, i) => i + 1));
    let out: Buffer;
    if (frame === 'sentinel') {
      c.write(SENTINEL);
      out = await c.readUntil((b) => b.length >= SENTINEL_REPLY.length &&
        b.subarray(b.length - SENTINEL_REPLY.length).equals(SENTINEL_REPLY), 3000);
      if (out.length >= SENTINEL_REPLY.length && out.subarray(out.length - SENTINEL_REPLY.length).equals(SENTINEL_REPLY)) {
        return out.toString('latin1', 0, out.length - SENTINEL_REPLY.length);
      }
      return `${out.toString('latin1')}<no sentinel reply: ${c.closed ? 'connection closed' : 'timed out'}>`;
    }
    out = await c.readUntil(() => false, 3000);
    return `${out.toString('latin1')}${c.closed ? '<closed>' : '<still open>'}`;
  } finally {
    c.close();
  }
}

/** Whole, byte by byte (up to 1500 bytes) and every cut (a sample past 160 bytes). */
export function allCuts(data: Buffer): Mode[] {
  const n = data.length;
  let at: number[];
  if (n <= 160) {
    at = Array.from({ length: n - 1 }, (_, i) => i + 1);
  } else {
    // the first and last bytes, each side of every line end, and an even spread
    const s = new Set<number>();
    for (let i = 1; i < Math.min(n, 16); i++) s.add(i);
    for (let i = Math.max(1, n - 16); i < n; i++) s.add(i);
    for (let i = 0; i < n; i++) if (data[i] === 0x0a) for (const k of [i - 1, i, i + 1]) if (k > 0 && k < n) s.add(k);
    for (let i = 1; i < n; i += Math.max(1, Math.floor(n / 24))) s.add(i);
    at = [...s].sort((a, b) => a - b);
  }
  const modes: Mode[] = [{ kind: 'whole' }];
  if (n <= 1500) modes.push({ kind: 'bytes' });
  for (const k of at) modes.push({ kind: 'cut', at: k });
  return modes;
}

export class Differential {
  constructor(
    /** the reference memcached A */
    private readonly refPort: number,
    /** mcrelay, whose only master is B */
    private readonly proxyPort: number,
    private readonly adminA: WireClient,
    private readonly adminB: WireClient,
  ) {}

  /**
   * Flushes A and B, levels their cas counters, runs the setup on both.
   * Returns the cas value last handed out (the next store on either gets base+1).
   */
  async reset(setup: string): Promise<bigint> {
    const [ra, rb] = await Promise.all([admin(this.adminA, `flush_all\r\n${CAS_PROBE}`), admin(this.adminB, `flush_all\r\n${CAS_PROBE}`)]);
    let a = casOf(ra);
    let b = casOf(rb);
    if (a !== b) {
      const [low, diff] = a < b ? [this.adminA, b - a] : [this.adminB, a - b];
      const r = await admin(low, `${'set __cas 0 0 1 noreply\r\nx\r\n'.repeat(Number(diff) - 1)}${CAS_PROBE}`);
      if (a < b) a = casOf(r); else b = casOf(r);
      if (a !== b) throw new Error(`cas counters not level: A ${a}, B ${b}`);
    }
    if (setup !== '') {
      const [sa, sb] = await Promise.all([admin(this.adminA, setup), admin(this.adminB, setup)]);
      if (sa !== sb) throw new Error(`setup answered differently: A ${JSON.stringify(sa)}, B ${JSON.stringify(sb)}`);
    }
    return a;
  }

  /** Waits until mcrelay serves again (a failed row may have cost it its backend connection). */
  async settle(): Promise<void> {
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const c = await WireClient.connect(this.proxyPort);
      try {
        const r = await c.request('set __settle 0 0 1\r\nx\r\nget __settle\r\n', 'END\r\n', 1000);
        if (r === 'STORED\r\nVALUE __settle 0 1\r\nx\r\nEND\r\n') return;
      } finally {
        c.close();
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('mcrelay does not serve again within 5 s');
  }

  private async fail(message: string): Promise<never> {
    await this.settle();
    assert.unreachable(message);
    throw new Error(message);
  }

  async runRow(row: Row): Promise<void> {
    const frame = row.frame ?? 'sentinel';
    // The mode list is fixed by the row as first sent; a cas-dependent row keeps its length.
    const first = Buffer.from(typeof row.send === 'string' ? row.send : row.send(1000n), 'latin1');
    const modes = row.modes === 'whole' ? [{ kind: 'whole' } as Mode] : typeof row.modes === 'function' ? row.modes(first) : allCuts(first);
    const norm = row.normalize ?? ((s: string): string => s);
    for (const mode of modes) {
      const base = await this.reset(row.setup ?? '');
      const data = Buffer.from(typeof row.send === 'string' ? row.send : row.send(base), 'latin1');
      const where = `${row.name}, ${modeName(mode)} of ${show(data.toString('latin1'))}`;
      if (row.expect !== undefined) {
        const got = await exchange(this.proxyPort, data, mode, frame);
        if (typeof row.expect === 'string') {
          if (got !== row.expect) await this.fail(`${where}\n  mcrelay:  ${show(got)}\n  expected: ${show(row.expect)}`);
        } else {
          row.expect(got);
        }
        continue;
      }
      const [want, got] = await Promise.all([exchange(this.refPort, data, mode, frame), exchange(this.proxyPort, data, mode, frame)]);
      if (norm(got) !== norm(want)) await this.fail(`${where}\n  mcrelay:   ${show(got)}\n  memcached: ${show(want)}`);
    }
  }
}
