// Fuzzing a TLS listener's handshake path (issue 18 item 6):
//
//   recorded ClientHello --mutate (cut, flip, lie about lengths, splice junk)--> TCP --> mcrelay's TLS port
//
// Each input goes on a fresh TCP connection, maybe in a few writes, and then the
// fuzzer shuts its side. Whatever the bytes, mcrelay must close the connection
// promptly (a refusal, or the close that follows the fuzzer's), never answer in
// plaintext, and never hurt the worker's other clients: the caller checks those
// between inputs, and that no connection stays counted at the end.
import net from 'node:net';
import tls from 'node:tls';
import { Rng } from './rng.js';

export interface HandshakeInput {
  index: number;
  bytes: Buffer;
  /** write boundaries */
  cuts: number[];
  /** how the input was made, for the report */
  kind: string;
}

export interface HandshakeOutcome {
  /** the connection closed within the time allowed */
  closed: boolean;
  /** bytes mcrelay sent (a TLS alert or handshake record, never plaintext) */
  reply: Buffer;
  ms: number;
}

/** The first flight of a real TLS client (Node's), as a server would read it. */
export function recordClientHello(maxVersion: tls.SecureVersion = 'TLSv1.3'): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((s) => {
      s.once('data', (d: Buffer) => { resolve(d); s.destroy(); server.close(); });
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      const c = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, maxVersion });
      c.on('error', () => {});
    });
    server.on('error', reject);
  });
}

const KINDS = ['truncated', 'bit flips', 'record length', 'handshake length', 'junk after', 'random record', 'random bytes', 'sslv2 header', 'two hellos'] as const;

/** Input `index` of seed `seed`, made from one of the recorded hellos. */
export function handshakeInput(seed: number, index: number, hellos: readonly Buffer[]): HandshakeInput {
  const rng = new Rng(seed, index);
  const hello = Buffer.from(rng.pick(hellos));
  const kind = KINDS[rng.int(KINDS.length)]!;
  let bytes: Buffer;
  switch (kind) {
    case 'truncated':
      bytes = hello.subarray(0, rng.range(1, hello.length - 1));
      break;
    case 'bit flips': {
      bytes = Buffer.from(hello);
      const n = rng.range(1, 8);
      for (let i = 0; i < n; i++) bytes[rng.int(bytes.length)]! ^= 1 << rng.int(8);
      break;
    }
    case 'record length':
      bytes = Buffer.from(hello);
      bytes.writeUInt16BE(rng.pick([0, 1, 4, hello.length - 6, hello.length + 100, 0x4000, 0x4800, 0xffff]), 3);
      break;
    case 'handshake length':
      bytes = Buffer.from(hello);
      bytes.writeUIntBE(rng.pick([0, 1, 0x3fff, 0xffffff]), 6, 3);
      break;
    case 'junk after':
      bytes = Buffer.concat([hello, randomBytes(rng, rng.range(1, 200))]);
      break;
    case 'random record': {
      const body = randomBytes(rng, rng.range(0, 300));
      bytes = Buffer.concat([Buffer.from([rng.pick([0x14, 0x15, 0x16, 0x17, 0x18]), 3, rng.int(5), body.length >> 8, body.length & 0xff]), body]);
      break;
    }
    case 'random bytes':
      bytes = randomBytes(rng, rng.range(1, 600));
      break;
    case 'sslv2 header':
      bytes = Buffer.concat([Buffer.from([0x80, rng.range(3, 0x7f), 0x01, 0x00, 0x02]), randomBytes(rng, rng.range(0, 60))]);
      break;
    case 'two hellos':
      bytes = Buffer.concat([hello, hello]);
      break;
  }
  const cuts: number[] = [];
  if (bytes.length > 2 && rng.chance(0.5)) {
    const k = rng.range(1, 3);
    for (let i = 0; i < k; i++) cuts.push(rng.range(1, bytes.length - 1));
    cuts.sort((a, b) => a - b);
  }
  return { index, bytes, cuts: [...new Set(cuts)], kind };
}

function randomBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(256);
  return b;
}

/** Sends the input, shuts the write side, and waits at most `timeoutMs` for mcrelay to close. */
export function sendHandshake(port: number, input: HandshakeInput, timeoutMs: number): Promise<HandshakeOutcome> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1');
    let settled = false;
    const done = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ closed, reply: Buffer.concat(chunks), ms: performance.now() - t0 });
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', () => done(true));
    s.on('close', () => done(true));
    s.on('connect', async () => {
      let prev = 0;
      for (const cut of [...input.cuts, input.bytes.length]) {
        if (s.destroyed) return;
        s.write(input.bytes.subarray(prev, cut));
        prev = cut;
        await new Promise((r) => setTimeout(r, 1));
      }
      s.end();
    });
  });
}

/** What mcrelay may send back on a TLS port: TLS records only (alert 0x15, handshake 0x16, change cipher spec 0x14). */
export function onlyTlsRecords(reply: Buffer): boolean {
  let at = 0;
  while (at < reply.length) {
    if (reply.length - at < 5) return false;
    if (![0x14, 0x15, 0x16, 0x17].includes(reply[at]!) || reply[at + 1] !== 3) return false;
    at += 5 + reply.readUInt16BE(at + 3);
  }
  return at === reply.length;
}

export interface HandshakeReport {
  inputs: number;
  kinds: Record<string, number>;
  problems: string[];
  timedOut: boolean;
}

/**
 * Inputs first..first+count of seed, `parallel` at a time, each checked for a
 * prompt close and TLS-only bytes; `between` (another client's check, a
 * problem or null) runs after every 8th batch. Stops at `deadline` (Date.now()).
 */
export async function runHandshakeFuzz(
  port: number, seed: number, count: number, deadline: number,
  opts: { parallel?: number; closeWithinMs?: number; between?: (at: number) => Promise<string | null>; first?: number } = {},
): Promise<HandshakeReport> {
  const hellos = await Promise.all([recordClientHello('TLSv1.3'), recordClientHello('TLSv1.2')]);
  const parallel = opts.parallel ?? 4;
  const within = opts.closeWithinMs ?? 3000;
  const first = opts.first ?? 0;
  const report: HandshakeReport = { inputs: 0, kinds: {}, problems: [], timedOut: false };
  for (let i = first, batchNo = 0; i < first + count; i += parallel, batchNo++) {
    if (Date.now() > deadline) { report.timedOut = true; break; }
    const batch = Array.from({ length: Math.min(parallel, first + count - i) }, (_, j) => handshakeInput(seed, i + j, hellos));
    const outcomes = await Promise.all(batch.map((input) => sendHandshake(port, input, within)));
    batch.forEach((input, j) => {
      const o = outcomes[j]!;
      report.inputs++;
      report.kinds[input.kind] = (report.kinds[input.kind] ?? 0) + 1;
      if (!o.closed) report.problems.push(`input ${input.index} (${input.kind}): still open after ${within} ms`);
      else if (!onlyTlsRecords(o.reply)) report.problems.push(`input ${input.index} (${input.kind}): answered ${JSON.stringify(o.reply.toString('latin1').slice(0, 60))}`);
    });
    if (opts.between !== undefined && batchNo % 8 === 0) {
      const problem = await opts.between(i);
      if (problem !== null) report.problems.push(problem);
    }
  }
  return report;
}

export function formatHandshakeReport(r: HandshakeReport, seed: number): string {
  const kinds = Object.entries(r.kinds).map(([k, n]) => `${n} ${k}`).join(', ');
  const lines = [`TLS handshake: ${r.inputs} inputs of seed ${seed} (${kinds})${r.timedOut ? ' (stopped by the time limit)' : ''}; ${r.problems.length === 0 ? 'every one closed promptly, TLS records only' : `${r.problems.length} problems`}`];
  for (const p of r.problems.slice(0, 20)) lines.push(`  ${p}`);
  return lines.join('\n');
}
