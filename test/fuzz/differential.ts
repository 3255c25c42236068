// Differential fuzzing against a real memcached:
//
//   stream --> memcached A                       (the reference)
//   stream --> mcrelay (one master) --> memcached B
//
// The same random-ish request stream goes to A and through mcrelay to B, on a
// fresh connection each, in one write or split in a few; a sentinel request
// after it marks the end of the replies (or the connection closes). The reply
// bytes must be equal.
//
// The model (memcached mode) screens each request first and leaves out those
// whose reply is allowed to differ or depends on timing: mcrelay's documented
// differences (keys with control characters, version/verbosity/stats answered
// by the proxy, commands it does not implement), a get
// with an over-long key (memcached then drops replies it has not sent yet),
// flush_all with a delay, values next to the size limit. A stream that leaves a
// request unfinished is completed, so the sentinel is read as a request.
// A and B start empty and get the same writes, so they hold the same items and
// hand out the same cas ids; the counters are levelled again if they drift.
import { Rng } from './rng.js';
import { mutate, randomStream, validRequest, type GenOptions } from './request-gen.js';
import { M, RequestModel, type Outcome } from './request-model.js';
import { WireClient } from '../helpers/wire.js';

const SENTINEL = Buffer.from('set __end 0 0 10\r\n<sentinel>\r\nget __end\r\n');
const SENTINEL_REPLY = Buffer.from('STORED\r\nVALUE __end 0 10\r\n<sentinel>\r\nEND\r\n');

export interface DiffInput {
  index: number;
  stream: string;
  /** write boundaries */
  cuts: number[];
  /** the stream ends with the connection closed by the server */
  closes: boolean;
  /** requests left out, by reason */
  dropped: string[];
}

export interface DiffMismatch {
  index: number;
  stream: string;
  cuts: number[];
  memcached: string;
  mcrelay: string;
}

export interface DiffReport {
  inputs: number;
  requests: number;
  dropped: Record<string, number>;
  mismatches: DiffMismatch[];
  ms: number;
  timedOut: boolean;
}

const GEN: GenOptions = { maxItemSize: 2048, differential: true };
const memcachedModel = new RequestModel({ mode: 'memcached', maxItemSize: 1024 * 1024 });
const proxyModel = new RequestModel({ mode: 'proxy', maxItemSize: 1024 * 1024 });

function canonical(o: Outcome): string {
  return JSON.stringify(o.t === 'REQUEST' ? { ...o, line: undefined } : o);
}

/** Why a candidate request may not be part of a differential stream, or null if it may. */
function screen(prefix: string, candidate: string): string | null {
  const before = memcachedModel.run(prefix).outcomes.length;
  const m = memcachedModel.run(prefix + candidate);
  if (m.unstable.length > 0) return m.unstable[0]!;
  const added = m.outcomes.slice(before);
  for (const o of added) {
    if (o.t === 'UNSUPPORTED') return 'a memcached command mcrelay does not implement';
    if (o.t === 'REQUEST' && (o.cmd === M.VERSION || o.cmd === M.VERBOSITY || o.cmd === M.STATS)) return 'answered by the proxy itself';
    if (o.t === 'REQUEST' && o.keys.some((k) => /[\x00-\x20\x7f]/.test(k))) return 'key with control characters (refused by mcrelay)';
  }
  const p = proxyModel.run(prefix + candidate).outcomes.map(canonical);
  const q = m.outcomes.map(canonical);
  if (p.length !== q.length || p.some((x, i) => x !== q[i])) {
    // the model's two modes differ only where mcrelay differs on purpose
    if (/[\x00-\x1f\x7f]/.test(candidate)) return 'key with control characters (refused by mcrelay)';
    return 'documented difference';
  }
  return null;
}

/** A stream finishing any request left unfinished (a line, a value, a refused value); null if that takes too much. */
function complete(stream: string): string | null {
  for (let i = 0; i < 4; i++) {
    const r = memcachedModel.run(stream);
    const p = r.pending;
    if (p.t === 'idle' || p.t === 'closed') return stream;
    if (p.t === 'line') stream += '\r\n';
    else if (p.missing > 256 * 1024) return null;
    else stream += 'x'.repeat(p.missing);
  }
  return stream;
}

export function diffInput(seed: number, index: number): DiffInput {
  const rng = new Rng(seed ^ 0x2545f491, index);
  const dropped: string[] = [];
  let stream = '';
  const n = rng.range(1, 8);
  for (let i = 0; i < n; i++) {
    const r = rng.int(10);
    let candidate = validRequest(rng, GEN);
    if (r < 4) candidate = mutate(rng, candidate);
    else if (r === 4) candidate = randomStream(rng, GEN);
    // meta flags whose reply depends on the clock of each server
    if (/(^|\n) *m[gsa] /.test(candidate)) candidate = candidate.replace(/ [tl](?= |\r?\n)/g, ' v');
    // screened as it will be sent: completed, if it is the last
    // memcached reads a connection whose first byte is 0x80 as its binary protocol (mcrelay is text only)
    if (stream.length === 0 && candidate.charCodeAt(0) === 0x80) { dropped.push('binary protocol (first byte 0x80)'); continue; }
    // mcrelay closes a connection that opens with a TLS handshake record (a TLS client on a plain port)
    if (stream.length === 0 && /^\x16\x03[\x00-\x04]/.test(candidate)) { dropped.push('TLS hello on a plain port (closed by mcrelay)'); continue; }
    const completed = complete(stream + candidate);
    const why = completed === null ? 'announces more data than a test stream sends' : screen(stream, completed.slice(stream.length));
    if (why !== null) { dropped.push(why); continue; }
    stream += candidate;
  }
  stream = complete(stream)!;
  const final = memcachedModel.run(stream);
  const closes = final.pending.t === 'closed';
  // A line past the limit makes the pieces matter, and memcached's reads are not ours: send those whole.
  const longLine = stream.split('\n').some((l) => l.length > 2000);
  const cuts: number[] = [];
  if (!longLine && stream.length > 1) {
    const k = rng.weighted([4, 3, 2]);
    for (let i = 0; i < k; i++) cuts.push(rng.range(1, stream.length - 1));
    cuts.sort((a, b) => a - b);
  }
  return { index, stream, cuts: [...new Set(cuts)], closes, dropped };
}

/** Sends one input on a fresh connection and returns what came back (with how it ended). */
export async function exchange(port: number, input: DiffInput, timeoutMs = 2000): Promise<string> {
  const c = await WireClient.connect(port);
  try {
    const data = Buffer.from(input.stream, 'latin1');
    if (input.cuts.length === 0) c.write(data);
    else await c.writeSplit(data, input.cuts);
    if (input.closes) {
      const out = await c.readUntil(() => false, Math.min(timeoutMs, 1000));
      return `${out.toString('latin1')}${c.closed ? '<closed>' : '<still open>'}`;
    }
    c.write(SENTINEL);
    const out = await c.readUntil((b) => b.length >= SENTINEL_REPLY.length &&
      b.subarray(b.length - SENTINEL_REPLY.length).equals(SENTINEL_REPLY), timeoutMs);
    if (out.length >= SENTINEL_REPLY.length && out.subarray(out.length - SENTINEL_REPLY.length).equals(SENTINEL_REPLY)) {
      return out.toString('latin1', 0, out.length - SENTINEL_REPLY.length);
    }
    return `${out.toString('latin1')}<no reply to the sentinel: ${c.closed ? 'connection closed' : `nothing more within ${timeoutMs} ms`}>`;
  } finally {
    c.close();
  }
}

const CAS_PROBE = 'set __cas 0 0 1\r\nx\r\ngets __cas\r\n';

async function casOf(c: WireClient): Promise<bigint> {
  const r = await c.request(CAS_PROBE, 'END\r\n', 3000);
  const m = /VALUE __cas 0 1 (\d+)\r\n/.exec(r);
  if (m === null) throw new Error(`cas probe answered ${JSON.stringify(r)}`);
  return BigInt(m[1]!);
}

/** Brings the cas counters of A and B level (after a stream that stored on one side only). */
async function levelCas(a: WireClient, b: WireClient): Promise<void> {
  const [ca, cb] = await Promise.all([casOf(a), casOf(b)]);
  if (ca === cb) return;
  // as many stores on the side behind as it is behind: both then handed out the same last id
  const [low, diff] = ca < cb ? [a, cb - ca] : [b, ca - cb];
  low.write('set __cas 0 0 1 noreply\r\nx\r\n'.repeat(Number(diff)));
  const [na, nb] = await Promise.all([casOf(a), casOf(b)]);
  if (na !== nb) throw new Error(`cas counters not level: A ${na}, B ${nb}`);
}

export interface DiffTargets {
  /** memcached A, the reference */
  memcachedPort: number;
  /** mcrelay with memcached B as its only master */
  proxyPort: number;
  /** memcached B, directly (for levelling cas counters) */
  backendPort: number;
}

/** deadline: a Date.now() after which no further stream is started */
export async function runDifferential(t: DiffTargets, seed: number, count: number, deadline: number, first = 0): Promise<DiffReport> {
  const t0 = performance.now();
  const report: DiffReport = { inputs: 0, requests: 0, dropped: {}, mismatches: [], ms: 0, timedOut: false };
  const [adminA, adminB] = await Promise.all([WireClient.connect(t.memcachedPort), WireClient.connect(t.backendPort)]);
  try {
    for (let i = first; i < first + count; i++) {
      if (Date.now() > deadline) { report.timedOut = true; break; }
      const input = diffInput(seed, i);
      for (const d of input.dropped) report.dropped[d] = (report.dropped[d] ?? 0) + 1;
      if (input.stream.length === 0) continue;
      report.inputs++;
      report.requests += memcachedModel.run(input.stream).outcomes.length;
      const [a, b] = await Promise.all([exchange(t.memcachedPort, input), exchange(t.proxyPort, input)]);
      if (a !== b) report.mismatches.push({ index: i, stream: input.stream, cuts: input.cuts, memcached: a, mcrelay: b });
      // Every stream starts from empty servers, so one difference does not spread to the next.
      await Promise.all([adminA.request('flush_all\r\n', 'OK\r\n'), adminB.request('flush_all\r\n', 'OK\r\n')]);
      await levelCas(adminA, adminB);
    }
  } finally {
    adminA.close();
    adminB.close();
  }
  report.ms = performance.now() - t0;
  return report;
}

export function formatDiffReport(r: DiffReport, seed: number): string {
  const lines = [`differential: ${r.inputs} streams (${r.requests} requests) to memcached and through mcrelay in ${(r.ms / 1000).toFixed(1)} s` +
    `${r.timedOut ? ' (stopped by the time limit)' : ''}; ${r.mismatches.length === 0 ? 'all replies equal' : `${r.mismatches.length} streams answered differently`}`];
  const dropped = Object.entries(r.dropped).sort((a, b) => b[1] - a[1]);
  if (dropped.length > 0) lines.push(`  requests left out: ${dropped.map(([k, v]) => `${v} ${k}`).join('; ')}`);
  for (const m of r.mismatches.slice(0, 10)) {
    lines.push('', `  seed ${seed} stream ${m.index}: ${JSON.stringify(m.stream)}${m.cuts.length > 0 ? ` written in pieces cut at ${JSON.stringify(m.cuts)}` : ''}`,
      `    memcached: ${JSON.stringify(m.memcached)}`,
      `    mcrelay:   ${JSON.stringify(m.mcrelay)}`);
  }
  if (r.mismatches.length > 10) lines.push(`  ... and ${r.mismatches.length - 10} more`);
  return lines.join('\n');
}
