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
/**
 * The cuts worth making in a row that sends a 2,000,000-byte value past the
 * item size limit: around its command line, one command (`step` bytes) into
 * the value, deep inside it, and around its end.
 */
export function hugeCuts(data: Buffer, step: number): Mode[] {
  const line = data.indexOf(0x0a) + 1;
  const dataEnd = line + 2_000_000 + 2;
  const at = [1, line - 2, line - 1, line, line + 1, line + step, line + 65_536, line + 1_000_000,
    dataEnd - 2, dataEnd - 1, dataEnd, dataEnd + 1, data.length - 1];
  return [{ kind: 'whole' }, ...at.filter((k) => k > 0 && k < data.length).map((k): Mode => ({ kind: 'cut', at: k }))];
}

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

export interface DifferentialOptions {
  /**
   * mcrelay's backup C: flushed and levelled with A and B before every send,
   * and given the row's setup (as memcached replication would have it).
   */
  backup?: WireClient;
  /**
   * With a backup: the setup goes to C only, B holds nothing before the row
   * (B warming: warming-conformance.test.ts).
   */
  masterEmpty?: boolean;
  /** applied to both replies of every row, before the row's own normalize */
  normalize?: (reply: string) => string;
  /**
   * Each row sent whole and byte by byte (up to 1500 bytes) only, not cut at
   * every offset: for suites about what happens behind the parser (a backup),
   * whose framing the suites without one already cut every way. Also the
   * default under MCRELAY_TEST_CUTS=few (test/run.ts: on the other Nodes).
   */
  fewCuts?: boolean;
}

const FEW_CUTS = process.env.MCRELAY_TEST_CUTS === 'few';

export class Differential {
  constructor(
    /** the reference memcached A */
    private readonly refPort: number,
    /** mcrelay, whose only master is B */
    private readonly proxyPort: number,
    private readonly adminA: WireClient,
    private readonly adminB: WireClient,
    private readonly opts: DifferentialOptions = {},
  ) {}

  /**
   * Flushes the servers, levels their cas counters, runs the setup on A and on
   * mcrelay's side (B; B and C; or C alone: opts). Returns the cas value last handed out (the next store on any of
   * them gets base+1).
   */
  async reset(setup: string): Promise<bigint> {
    const c = this.opts.backup;
    if (c !== undefined) {
      // A write's backup copy may still be on its way when the client has its
      // reply (which waits for the master only), and would land after this
      // flush. A delete through mcrelay goes to the backup first, on the same
      // connection, and is answered once the master has answered too: after it,
      // the backup has applied everything mcrelay sent it before.
      const sync = await WireClient.connect(this.proxyPort);
      try {
        await sync.request('delete __sync\r\n', '\r\n', 2000);
      } finally {
        sync.close();
      }
    }
    const all = c === undefined ? [this.adminA, this.adminB] : [this.adminA, this.adminB, c];
    let cas = (await Promise.all(all.map((c) => admin(c, `flush_all\r\n${CAS_PROBE}`)))).map(casOf);
    // A warming master may still take the last row's fills (they go on beside
    // the reply): level again until a round finds the counters even.
    for (let round = 0; ; round++) {
      const top = cas.reduce((x, y) => (x > y ? x : y));
      if (cas.every((c) => c === top)) break;
      if (round === 5) throw new Error(`cas counters not level: ${cas.join(', ')}`);
      // Flushed again (a late fill is gone), each is brought to top + 1.
      cas = await Promise.all(all.map((c, i) =>
        admin(c, `flush_all\r\n${'set __cas 0 0 1 noreply\r\nx\r\n'.repeat(Number(top - cas[i]!))}${CAS_PROBE}`).then(casOf)));
    }
    const top = cas[0]!;
    if (setup !== '') {
      const sides = c === undefined ? [this.adminB] : this.opts.masterEmpty === true ? [c] : [this.adminB, c];
      const [sa, ...rest] = await Promise.all([this.adminA, ...sides].map((x) => admin(x, setup)));
      for (const sb of rest) if (sa !== sb) throw new Error(`setup answered differently: A ${JSON.stringify(sa)}, mcrelay's side ${JSON.stringify(sb)}`);
    }
    return top;
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
    const modes = row.modes === 'whole' ? [{ kind: 'whole' } as Mode]
      : (this.opts.fewCuts ?? FEW_CUTS) ? allCuts(first).filter((m) => m.kind !== 'cut')
        : typeof row.modes === 'function' ? row.modes(first) : allCuts(first);
    const own = row.normalize ?? ((s: string): string => s);
    const all = this.opts.normalize ?? ((s: string): string => s);
    const norm = (s: string): string => own(all(s));
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
