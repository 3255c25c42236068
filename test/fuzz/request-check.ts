// Properties of the client-side request parser on one fuzz input (a stream and
// the points it is cut at), checked against the reference model:
//
//   1. no exception escapes parse();
//   2. every call makes progress or waits (REQUEST/REPLY end after pos and
//      within end; NEED_MORE's `need` is unknown or more than it has) and its
//      offsets lie inside the request;
//   3. the outcomes, stream cut or whole, are the model's (mcrelay's documented
//      rules over memcached's): same requests, same replies, same closes;
//   4. the stream cut gives what it gives whole, unless the model says the
//      pieces matter (memcached's rule for long unterminated lines);
//   5. what mcrelay forwards for a request, read by memcached (the model in
//      memcached mode), is that same request and gets exactly one reply;
//   6. a parser shared by connections (as in a worker) gives each connection
//      what a parser of its own would (no state leaks between streams).
//
// The driver mirrors ClientConnection.receive (src/worker/client.ts): unconsumed
// bytes are kept and the parse restarts at them when a piece arrives; a refused
// value is swallowed; bytes after `end` are garbage the parser must not read.
import { Cmd } from '../../src/protocol/commands.js';
import { META_KEEP_Q } from '../../src/protocol/meta-request.js';
import { RequestParser } from '../../src/protocol/request-parser.js';
import { Parse } from '../../src/protocol/request-rules.js';
import * as wire from '../../src/protocol/wire.js';
import { LINE_MAX, M, numberValue, PROXY_REFUSED_REPLIES, RequestModel, type Outcome } from './request-model.js';

const GARBAGE = Buffer.from('\r\n\nEND\r\n0 \r\nget k\r\n', 'latin1');
const NAMES = ['NEED_MORE', 'REQUEST', 'REPLY', 'CLOSE'];
const KNOWN_REPLIES = new Set([
  'ERROR\r\n', 'CLIENT_ERROR bad command line format\r\n', 'CLIENT_ERROR bad data chunk\r\n',
  'CLIENT_ERROR invalid numeric delta argument\r\n', 'CLIENT_ERROR invalid exptime argument\r\n',
  'CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n', 'SERVER_ERROR object too large for cache\r\n',
  'CLIENT_ERROR options flags too long\r\n', 'CLIENT_ERROR options flags are too long\r\n',
  ...PROXY_REFUSED_REPLIES,
]);

const str = (b: Buffer, s: number, e: number): string => b.toString('latin1', s, e);
const q = (s: string | null): string => (s === null ? 'null' : JSON.stringify(s.length > 60 ? `${s.slice(0, 40)}...(${s.length})` : s));

/** What a parse outcome means to the client, as one comparable line. */
function canonical(o: Outcome & { dropKey?: boolean }): string {
  switch (o.t) {
    case 'REQUEST':
      if (o.cmd === M.VERBOSITY && o.noreply) return 'SILENT verbosity';
      if (o.cmd === M.VERSION || o.cmd === M.STATS) return `REQ ${o.cmd}`;
      return `REQ ${o.cmd} [${o.keys.map(q).join(',')}] nr=${o.noreply}` +
        `${o.data === null ? '' : ` d=${q(o.data)}`}${o.arg === null ? '' : ` a=${argValue(o.cmd, o.arg)}`}`;
    case 'REPLY':
      if (o.cmd === M.VERBOSITY && o.noreply) return 'SILENT verbosity';
      // memcached unlinks the old item of a set or ms it refuses as too large: so must the proxy (drop)
      return `REPLY ${q(o.reply)} nr=${o.noreply}${o.dropKey === true || (o.dropKey === undefined && (o.cmd === M.SET || o.cmd === M.MS) && o.reply.startsWith('SERVER_ERROR object too large')) ? ' drop' : ''}`;
    case 'CLOSE': return 'CLOSE';
    case 'UNSUPPORTED': return `UNSUPPORTED ${q(o.line)}`;
  }
}

/** A number argument by the value memcached reads from it (the bytes may differ: "10\r" is 10). */
function argValue(cmd: number, tok: string): string {
  return numberValue(tok, cmd !== M.INCR && cmd !== M.DECR) ?? `invalid ${q(tok)}`;
}

const ARG_CMDS = new Set<number>([Cmd.GAT, Cmd.GATS, Cmd.INCR, Cmd.DECR, Cmd.TOUCH, Cmd.FLUSH_ALL]);

export interface Driven {
  outcomes: string[];
  /** the bytes mcrelay would send a backend for each forwarded request, and the request they must read as */
  forwards: Array<{ bytes: string; expect: string }>;
  violations: string[];
}

/**
 * Feeds a stream to the parser in the pieces given, as one client connection
 * does. `interleave` (another connection's chunks) shares the parser between
 * calls when set.
 */
export class ParserDriver {
  readonly outcomes: string[] = [];
  readonly forwards: Array<{ bytes: string; expect: string }> = [];
  readonly violations: string[] = [];
  private pending: Buffer = Buffer.alloc(0);
  private swallow = 0;
  private closed = false;
  private calls = 0;

  constructor(private readonly parser: RequestParser, private readonly stream: Buffer) {}

  get done(): boolean { return this.closed; }

  /** Delivers bytes [from, to) of the stream. */
  deliver(from: number, to: number): void {
    if (this.closed) return;
    let chunk = this.stream.subarray(from, to);
    if (this.swallow > 0) {
      const n = Math.min(this.swallow, chunk.length);
      this.swallow -= n;
      chunk = chunk.subarray(n);
      if (chunk.length === 0) return;
    }
    const buf = Buffer.concat([this.pending, chunk, GARBAGE]);
    const end = this.pending.length + chunk.length;
    let pos = 0;
    const p = this.parser;
    while (pos < end) {
      if (++this.calls > 100_000) { this.violations.push('more than 100000 parse calls for one stream'); this.closed = true; return; }
      const r = p.parse(buf, pos, end);
      if (r === Parse.NEED_MORE) {
        if (p.need !== 0 && p.need <= end - pos) this.violations.push(`NEED_MORE at ${pos} with need ${p.need} but ${end - pos} bytes there`);
        break;
      }
      if (r === Parse.CLOSE) {
        // The one reply a close carries: why an unterminated line was refused.
        if (p.reply !== null && p.reply !== wire.CLIENT_ERROR_REQUEST_TOO_LONG) this.violations.push(`CLOSE with a reply ${q(p.reply.toString('latin1'))}`);
        this.outcomes.push('CLOSE');
        this.closed = true;
        return;
      }
      if (r !== Parse.REQUEST && r !== Parse.REPLY) {
        this.violations.push(`parse returned ${String(r)}`);
        this.closed = true;
        return;
      }
      if (!(p.next > pos && p.next <= end)) {
        this.violations.push(`${NAMES[r]} at ${pos} with next ${p.next} (end ${end}): no progress or past the end`);
        this.closed = true;
        return;
      }
      if (r === Parse.REPLY) {
        const reply = p.reply?.toString('latin1') ?? null;
        if (reply === null || !KNOWN_REPLIES.has(reply)) this.violations.push(`REPLY with ${q(reply)}`);
        if (p.swallow < 0) this.violations.push(`swallow ${p.swallow}`);
        this.outcomes.push(canonical({ t: 'REPLY', cmd: p.cmd, reply: reply ?? '', noreply: p.noreply, dropKey: p.dropKey }));
        pos = p.next;
        if (p.swallow > 0) {
          const skip = Math.min(p.swallow, end - pos);
          pos += skip;
          this.swallow = p.swallow - skip;
        }
        continue;
      }
      this.request(buf, pos);
      pos = p.next;
    }
    this.pending = Buffer.from(buf.subarray(pos, end));
  }

  private request(buf: Buffer, pos: number): void {
    const p = this.parser;
    const v = this.violations;
    if (p.lineStart !== pos) v.push(`lineStart ${p.lineStart}, request at ${pos}`);
    if (!(p.lineStart <= p.forwardEnd && p.forwardEnd <= p.lineEnd && p.lineEnd < p.next)) {
      v.push(`line offsets out of order: lineStart ${p.lineStart} forwardEnd ${p.forwardEnd} lineEnd ${p.lineEnd} next ${p.next}`);
    }
    const keys: string[] = [];
    for (let i = 0; i < p.keyCount; i++) {
      const ks = p.keyOffsets[2 * i]!;
      const ke = p.keyOffsets[2 * i + 1]!;
      if (!(p.lineStart <= ks && ks < ke && ke <= p.lineEnd)) v.push(`key ${i} at [${ks}, ${ke}) outside the line`);
      keys.push(str(buf, ks, ke));
    }
    const cmd = p.cmd;
    const meta = cmd >= M.MG;
    const storage = (cmd >= Cmd.SET && cmd <= Cmd.CAS) || cmd === M.MS;
    let data: string | null = null;
    if (storage) {
      if (p.dataStart + p.bytes + 2 !== p.next || p.dataStart <= p.lineEnd) {
        v.push(`data at ${p.dataStart}+${p.bytes} does not end the request at ${p.next}`);
      }
      data = str(buf, p.dataStart, p.dataStart + p.bytes);
    }
    let arg: string | null = null;
    if (ARG_CMDS.has(cmd)) {
      arg = p.argStart === p.argEnd && cmd === Cmd.FLUSH_ALL ? null : str(buf, p.argStart, p.argEnd);
    }
    const line = str(buf, p.lineStart, p.lineEnd);
    const canon = canonical({ t: 'REQUEST', cmd, keys, noreply: p.noreply, data, arg, line });
    this.outcomes.push(canon);
    if (cmd === Cmd.QUIT) { this.closed = true; return; }
    if (cmd === Cmd.VERSION || cmd === Cmd.VERBOSITY || cmd === Cmd.STATS) return;
    if (meta) {
      if (cmd === M.MN) return;
      // protocol/meta-line.ts writeMetaLine: the tokens joined by single spaces; the command, the key and
      // (ms) the length kept, q flags left out (unless there are two, which memcached refuses itself)
      const tokens = str(buf, p.lineStart, p.forwardEnd).split(' ').filter((t) => t.length > 0);
      const fixed = cmd === M.MS ? 3 : 2;
      const keepQ = (p.metaFlags & META_KEEP_Q) !== 0;
      const kept = tokens.filter((t, i) => i < fixed || keepQ || t[0] !== 'q');
      const bytes = `${kept.join(' ')}\r\n${cmd === M.MS ? `${data}\r\n` : ''}`;
      this.forwards.push({ bytes, expect: canonical({ t: 'REQUEST', cmd, keys, noreply: false, data, arg: null, line }) });
      return;
    }
    // What the dispatcher sends the backend (worker/reads.ts, writes.ts), and what it must mean there.
    const expect = canonical({ t: 'REQUEST', cmd, keys, noreply: false, data, arg, line });
    if (cmd <= Cmd.GATS) {
      const head = cmd === Cmd.GAT || cmd === Cmd.GATS ? `${['', 'get', 'gets', 'gat', 'gats'][cmd]} ${arg}` : ['', 'get', 'gets'][cmd]!;
      if (keys.length > 0) this.forwards.push({ bytes: `${head} ${keys.join(' ')}\r\n`, expect });
      return;
    }
    let fwd = str(buf, p.lineStart, p.forwardEnd);
    if (cmd === Cmd.CAS) {
      // The backup gets a cas the master stored as a set of the same line without its cas token.
      let s = p.lineStart;
      while (buf[s] === 0x20) s++;
      let e = p.casStart;
      while (buf[e - 1] === 0x20) e--;
      const asSet = `set${str(buf, s + 3, e)}\r\n${data}\r\n`;
      this.forwards.push({ bytes: asSet, expect: canonical({ t: 'REQUEST', cmd: Cmd.SET, keys, noreply: false, data, arg: null, line }) });
    }
    fwd += '\r\n';
    if (storage) fwd += `${data}\r\n`;
    this.forwards.push({ bytes: fwd, expect });
  }
}

export interface Failure {
  property: string;
  detail: string;
}

export class RequestChecker {
  /** one parser for every input, as one worker has for all its clients */
  readonly parser: RequestParser;
  private readonly proxy: RequestModel;
  private readonly memcached: RequestModel;

  constructor(readonly maxItemSize: number) {
    this.parser = new RequestParser(maxItemSize);
    this.proxy = new RequestModel({ mode: 'proxy', maxItemSize });
    this.memcached = new RequestModel({ mode: 'memcached', maxItemSize: 1 << 30 });
  }

  drive(stream: Buffer, cuts: readonly number[]): Driven {
    const d = new ParserDriver(this.parser, stream);
    let prev = 0;
    for (const c of [...cuts, stream.length]) {
      if (c > prev) d.deliver(prev, c);
      prev = c;
    }
    return d;
  }

  /** All properties but the shared-parser one; null when they hold. */
  check(text: string, cuts: readonly number[]): Failure | null {
    const stream = Buffer.from(text, 'latin1');
    let whole: Driven;
    let split: Driven;
    try {
      whole = this.drive(stream, []);
      split = cuts.length > 0 ? this.drive(stream, cuts) : whole;
    } catch (err) {
      return { property: 'no exception escapes', detail: (err as Error).stack ?? String(err) };
    }
    for (const [name, d] of [['whole', whole], ['cut', split]] as const) {
      if (d.violations.length > 0) return { property: 'progress and offsets', detail: `${name}: ${d.violations.join('; ')}` };
    }
    const mWhole = this.proxy.run(text, []).outcomes.map((o) => canonical(o));
    const mSplit = cuts.length > 0 && hasLongStretch(text) ? this.proxy.run(text, cuts).outcomes.map((o) => canonical(o)) : mWhole;
    const diff = firstDifference(whole.outcomes, mWhole);
    if (diff !== null) return { property: 'outcomes are the model\'s (whole)', detail: diff };
    const diff2 = firstDifference(split.outcomes, mSplit);
    if (diff2 !== null) return { property: 'outcomes are the model\'s (cut)', detail: diff2 };
    if (sameList(mWhole, mSplit)) {
      const d = firstDifference(split.outcomes, whole.outcomes);
      if (d !== null) return { property: 'cut gives what whole gives', detail: d };
    }
    for (const f of whole.forwards) {
      const r = this.memcached.run(f.bytes, []);
      const got = r.outcomes.map((o) => canonical(o));
      if (got.length !== 1 || got[0] !== f.expect || r.pending.t !== 'idle') {
        return {
          property: 'a forwarded request means the same to memcached and gets one reply',
          detail: `forwarded ${q(f.bytes)}\n  mcrelay took it as: ${f.expect}\n  memcached reads:     ${got.join(' | ') || '(nothing)'}${r.pending.t !== 'idle' ? ` (then waits: ${r.pending.t})` : ''}`,
        };
      }
    }
    return null;
  }

  /** Property 6: two connections' streams through one parser, chunks alternating. */
  checkShared(a: string, cutsA: readonly number[], b: string, cutsB: readonly number[]): Failure | null {
    const sa = Buffer.from(a, 'latin1');
    const sb = Buffer.from(b, 'latin1');
    const alone = [this.drive(sa, cutsA).outcomes, this.drive(sb, cutsB).outcomes];
    const da = new ParserDriver(this.parser, sa);
    const db = new ParserDriver(this.parser, sb);
    const ea = [...cutsA, sa.length];
    const eb = [...cutsB, sb.length];
    let ia = 0;
    let ib = 0;
    let pa = 0;
    let pb = 0;
    try {
      while (ia < ea.length || ib < eb.length) {
        if (ia < ea.length) { if (ea[ia]! > pa) da.deliver(pa, ea[ia]!); pa = ea[ia++]!; }
        if (ib < eb.length) { if (eb[ib]! > pb) db.deliver(pb, eb[ib]!); pb = eb[ib++]!; }
      }
    } catch (err) {
      return { property: 'no exception escapes', detail: (err as Error).stack ?? String(err) };
    }
    const d1 = firstDifference(da.outcomes, alone[0]!);
    if (d1 !== null) return { property: 'a shared parser leaks no state between connections', detail: `connection A: ${d1}` };
    const d2 = firstDifference(db.outcomes, alone[1]!);
    if (d2 !== null) return { property: 'a shared parser leaks no state between connections', detail: `connection B: ${d2}` };
    return null;
  }
}

/** Pieces can only matter (the line limit) where more than LINE_MAX bytes run without a \n. */
function hasLongStretch(text: string): boolean {
  let from = 0;
  for (;;) {
    const nl = text.indexOf('\n', from);
    const to = nl === -1 ? text.length : nl;
    if (to - from > LINE_MAX) return true;
    if (nl === -1) return false;
    from = nl + 1;
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** null if equal, else where the lists first differ (got vs want). */
export function firstDifference(got: readonly string[], want: readonly string[]): string | null {
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++) {
    if (got[i] !== want[i]) {
      return `outcome #${i + 1}: mcrelay ${got[i] ?? '(none)'}\n  expected       ${want[i] ?? '(none)'}` +
        `\n  mcrelay all:   ${got.join(' | ')}\n  expected all:  ${want.join(' | ')}`;
    }
  }
  return null;
}
