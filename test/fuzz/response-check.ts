// Properties of the backend-side response parser on one fuzz input (a reply
// stream, the kinds of the requests it answers, and the points it is cut at):
//
//   1. no exception escapes read();
//   2. every call makes progress or waits (a unit ends after pos and within end;
//      NEED_MORE's `need` is unknown or more than it has), a VALUE's key lies in
//      its line, and a block ends exactly where its header's length says;
//   3. a valid stream gives exactly the units it was built from;
//   4. the stream cut gives what it gives whole (unless a line runs past the
//      line limit, where the pieces decide, as designed);
//   5. a parser shared by connections gives each what a parser of its own would;
//   6. a line no memcached would send (by the kind of request) is BAD, never a
//      reply handed to a client.
//
// The driver mirrors BackendConnection.receive (src/backend/connection.ts): the
// kind of the request at the head of the queue is passed to read(); END or a
// line completes it; BAD ends the connection.
import { Expect, Reply, ResponseParser } from '../../src/protocol/response-parser.js';
import type { ReplyStream, Unit } from './response-gen.js';
import { firstDifference, type Failure } from './request-check.js';

const GARBAGE = Buffer.from('\r\nEND\r\nVALUE k 0 1\r\n', 'latin1');
/** the parser's limit on an unterminated reply line (response-parser.ts MAX_LINE) */
const LINE_LIMIT = 8192;

/**
 * The reply lines memcached 1.6 sends, by the kind of request they answer
 * (text storage, delete, incr/decr, touch, flush_all, verbosity, version; meta;
 * retrieval). A line outside these is not a memcached reply: the parser must
 * call it BAD, so that the connection is dropped and the request failed over,
 * instead of a client getting it as its answer.
 */
// "ERROR" alone, or with a text ("ERROR Too many open connections", "ERROR: shutdown not enabled")
const ERROR_LINE = /^(ERROR|ERROR[ :].*|CLIENT_ERROR .+|SERVER_ERROR .+)$/s;
// RESET: stats reset
const TEXT_LINE = /^(STORED|NOT_STORED|EXISTS|NOT_FOUND|DELETED|TOUCHED|OK|RESET|[0-9]+|VERSION .+)$/s;
const META_LINE = /^((HD|NS|EX|NF|EN|MN)( [^ ]+)*|VA [0-9]+( [^ ]+)*|ME .+)$/s;

export function memcachedCouldSend(kind: number, unit: string): boolean {
  const line = unit.slice(0, unit.indexOf('\r\n'));
  if (ERROR_LINE.test(line)) return true;
  if (kind === Expect.META) return META_LINE.test(line);
  if (kind === Expect.RETRIEVAL) return line === 'END';
  return TEXT_LINE.test(line);
}

const q = (s: string): string => JSON.stringify(s.length > 60 ? `${s.slice(0, 40)}...(${s.length})` : s);
export const unitText = (u: Unit): string => `${u.t}${u.key === undefined ? '' : ` key=${q(u.key)}`} ${q(u.text)}`;

export class ReplyDriver {
  readonly units: string[] = [];
  readonly violations: string[] = [];
  /** lines taken as replies that no memcached sends */
  readonly foreign: string[] = [];
  /** stream offsets where each unit starts, and where the parse stopped last */
  readonly starts: number[] = [];
  private pending: Buffer = Buffer.alloc(0);
  /** stream offset of pending[0] */
  private base = 0;
  private head = 0;
  private dead = false;
  private calls = 0;

  constructor(private readonly parser: ResponseParser, private readonly stream: Buffer, private readonly kinds: readonly number[]) {}

  deliver(from: number, to: number): void {
    if (this.dead) return;
    const chunk = this.stream.subarray(from, to);
    const buf = Buffer.concat([this.pending, chunk, GARBAGE]);
    const end = this.pending.length + chunk.length;
    let pos = 0;
    const p = this.parser;
    while (pos < end) {
      if (this.head >= this.kinds.length) { this.units.push('BAD (reply with no request pending)'); this.dead = true; return; }
      if (++this.calls > 100_000) { this.violations.push('more than 100000 read calls'); this.dead = true; return; }
      const kind = this.kinds[this.head]!;
      const r = p.read(buf, pos, end, kind);
      if (r === Reply.NEED_MORE) {
        if (p.need !== 0 && p.need <= end - pos) this.violations.push(`NEED_MORE at ${pos} with need ${p.need} but ${end - pos} bytes there`);
        break;
      }
      if (r === Reply.BAD) { this.units.push('BAD'); this.dead = true; return; }
      if (r !== Reply.VALUE && r !== Reply.END && r !== Reply.LINE) { this.violations.push(`read returned ${String(r)}`); this.dead = true; return; }
      // The unit's first line: the parser insists on CRLF, so the line ends before the first LF.
      const lineEnd = buf.indexOf(0x0a, pos) - 1;
      if (p.start !== pos || !(p.next > pos && p.next <= end) || !(lineEnd >= pos && lineEnd < p.next)) {
        this.violations.push(`unit at ${pos}: start ${p.start} lineEnd ${lineEnd} next ${p.next} end ${end}`);
        this.dead = true;
        return;
      }
      this.starts.push(this.base + pos);
      const text = buf.toString('latin1', pos, p.next);
      if (r === Reply.VALUE) {
        if (kind !== Expect.RETRIEVAL) this.violations.push(`VALUE for a request of kind ${kind}`);
        if (!(p.keyStart >= pos + 6 && p.keyStart < p.keyEnd && p.keyEnd <= lineEnd)) this.violations.push(`key at [${p.keyStart}, ${p.keyEnd}) outside the line`);
        const header = buf.toString('latin1', pos, lineEnd).split(' ');
        const declared = Number(header[3]);
        if (p.next !== lineEnd + 2 + declared + 2) this.violations.push(`VALUE block of ${p.next - pos} bytes, header ${q(header.join(' '))}`);
        this.units.push(unitText({ t: 'VALUE', text, key: buf.toString('latin1', p.keyStart, p.keyEnd) }));
      } else {
        if (r === Reply.END && kind !== Expect.RETRIEVAL) this.violations.push(`END for a request of kind ${kind}`);
        if (!memcachedCouldSend(kind, text)) this.foreign.push(`${q(text)} taken as the reply to a request of kind ${kind}`);
        this.units.push(unitText({ t: r === Reply.END ? 'END' : 'LINE', text }));
        this.head++;
      }
      pos = p.next;
    }
    this.base += pos;
    this.pending = Buffer.from(buf.subarray(pos, end));
  }

  /** Where the next unit would start. */
  get stopped(): number { return this.base; }
}

export class ResponseChecker {
  readonly parser = new ResponseParser();

  drive(stream: Buffer, kinds: readonly number[], cuts: readonly number[], parser = this.parser): ReplyDriver {
    const d = new ReplyDriver(parser, stream, kinds);
    let prev = 0;
    for (const c of [...cuts, stream.length]) {
      if (c > prev) d.deliver(prev, c);
      prev = c;
    }
    return d;
  }

  check(input: ReplyStream, cuts: readonly number[]): Failure | null {
    const stream = Buffer.from(input.text, 'latin1');
    let whole: ReplyDriver;
    let split: ReplyDriver;
    try {
      whole = this.drive(stream, input.kinds, []);
      split = cuts.length > 0 ? this.drive(stream, input.kinds, cuts) : whole;
    } catch (err) {
      return { property: 'no exception escapes', detail: (err as Error).stack ?? String(err) };
    }
    for (const [name, d] of [['whole', whole], ['cut', split]] as const) {
      if (d.violations.length > 0) return { property: 'progress and offsets', detail: `${name}: ${d.violations.join('; ')}` };
    }
    if (input.units !== null) {
      const want = input.units.map(unitText);
      const d1 = firstDifference(whole.units, want);
      if (d1 !== null) return { property: 'a valid stream gives its units (whole)', detail: d1 };
      const d2 = firstDifference(split.units, want);
      if (d2 !== null) return { property: 'a valid stream gives its units (cut)', detail: d2 };
    }
    if (whole.foreign.length > 0) {
      return { property: 'a line no memcached sends is BAD, not a reply', detail: whole.foreign.slice(0, 3).join('\n') };
    }
    if (!hasLongLine(input.text, [...whole.starts, whole.stopped])) {
      const d = firstDifference(split.units, whole.units);
      if (d !== null) return { property: 'cut gives what whole gives', detail: d };
    }
    return null;
  }

  /** Property 5: two connections' streams through one parser, chunks alternating. */
  checkShared(a: ReplyStream, cutsA: readonly number[], b: ReplyStream, cutsB: readonly number[]): Failure | null {
    const sa = Buffer.from(a.text, 'latin1');
    const sb = Buffer.from(b.text, 'latin1');
    const alone = [this.drive(sa, a.kinds, cutsA).units, this.drive(sb, b.kinds, cutsB).units];
    const da = new ReplyDriver(this.parser, sa, a.kinds);
    const db = new ReplyDriver(this.parser, sb, b.kinds);
    const ea = [...cutsA, sa.length];
    const eb = [...cutsB, sb.length];
    let pa = 0;
    let pb = 0;
    try {
      for (let i = 0; i < Math.max(ea.length, eb.length); i++) {
        if (i < ea.length) { if (ea[i]! > pa) da.deliver(pa, ea[i]!); pa = ea[i]!; }
        if (i < eb.length) { if (eb[i]! > pb) db.deliver(pb, eb[i]!); pb = eb[i]!; }
      }
    } catch (err) {
      return { property: 'no exception escapes', detail: (err as Error).stack ?? String(err) };
    }
    const d1 = firstDifference(da.units, alone[0]!);
    if (d1 !== null) return { property: 'a shared parser leaks no state between connections', detail: `connection A: ${d1}` };
    const d2 = firstDifference(db.units, alone[1]!);
    if (d2 !== null) return { property: 'a shared parser leaks no state between connections', detail: `connection B: ${d2}` };
    return null;
  }
}

/** Whether, from some unit start, more than the line limit runs without a \n (the pieces then decide). */
function hasLongLine(text: string, starts: readonly number[]): boolean {
  for (const s of starts) {
    const nl = text.indexOf('\n', s);
    if ((nl === -1 ? text.length : nl) - s > LINE_LIMIT) return true;
  }
  return false;
}
