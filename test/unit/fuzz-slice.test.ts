// The CI slice of the parser fuzzers (the full run is `npm run fuzz`): a fixed
// seed, a fixed number of inputs for each parser (about 20 s on one core, and
// stopped by a deadline on a slower machine, which fails the slice if it cut
// the run below a minimum), one test per property so that a failure names what
// broke. Every failing class prints its first input, shrunk, and how to replay
// it: npm run fuzz -- --seed 20240601 --replay request:<index>.
//
// Then the findings of the fuzzers, pinned as literal wire strings, each named
// after the bug: what memcached 1.6 does with the input (checked on a real
// server by the differential suite) against what mcrelay's parser does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Cmd } from '../../src/protocol/commands.js';
import { RequestParser } from '../../src/protocol/request-parser.js';
import { Parse } from '../../src/protocol/request-rules.js';
import { Expect, Reply, ResponseParser } from '../../src/protocol/response-parser.js';
import { formatReport, fuzzRequests, fuzzResponses, type Report } from '../fuzz/engine.js';
import { RequestModel } from '../fuzz/request-model.js';

const SEED = 20240601;
const REQUEST_INPUTS = 80_000;
const RESPONSE_INPUTS = 70_000;
// The fewest inputs a slice must run for its properties to mean anything; a
// deadline that cuts the run below them fails every property test. Measured on
// the 2-core machine the suite runs on, with load averages of 3 to 13 (other
// suites running, and two slices at once): the request fuzzer always ran all
// 80,000 (8,700 to 15,600 inputs/s against a 14 s deadline), the response
// fuzzer 35,072 at the slowest (5,000/s, stopped by its 7 s deadline) and all
// 70,000 otherwise. The minimums are a quarter of the slowest request run and
// under a third of the slowest response run.
const MIN_INPUTS: Record<Report['target'], number> = { request: 20_000, response: 10_000 };

let requests: Report;
let responses: Report;

test.before(() => {
  requests = fuzzRequests({ seed: SEED, first: 0, count: REQUEST_INPUTS, step: 1, deadline: Date.now() + 14_000, maxItemSize: 1024 });
  responses = fuzzResponses({ seed: SEED, first: 0, count: RESPONSE_INPUTS, step: 1, deadline: Date.now() + 7_000, maxItemSize: 1024 });
  console.log(`\n${summary(requests)}\n${summary(responses)}`);
});

function summary(r: Report): string {
  return `  ${r.target} parser: ${r.inputs} inputs in ${(r.ms / 1000).toFixed(1)} s (${Math.round(r.inputs / (r.ms / 1000))}/s)${r.timedOut ? ', stopped by the deadline' : ''}`;
}

/** Fails with every failure class of the property (matched by prefix), or if too few inputs ran to tell. */
function holds(r: Report, property: string): void {
  const min = MIN_INPUTS[r.target];
  assert.ok(r.inputs >= min, `only ${r.inputs} ${r.target} inputs ran before the deadline (at least ${min} are needed): ${summary(r).trim()}`);
  const failures = r.failures.filter((f) => f.property.startsWith(property));
  if (failures.length > 0) assert.unreachable(`\n${formatReport({ ...r, failures })}`);
}

test('request parser fuzz: nothing throws, every call progresses, offsets lie inside the request', () => {
  holds(requests, 'no exception escapes');
  holds(requests, 'progress and offsets');
});

test('request parser fuzz: every outcome is memcached\'s (model of memcached 1.6 plus mcrelay\'s documented rules)', () => {
  holds(requests, 'outcomes are the model\'s');
});

test('request parser fuzz: a stream cut anywhere gives what it gives whole', () => {
  holds(requests, 'cut gives what whole gives');
});

test('request parser fuzz: what mcrelay forwards means the same request to memcached and gets one reply', () => {
  holds(requests, 'a forwarded request means the same');
});

test('request parser fuzz: a parser shared by connections leaks no state between them', () => {
  holds(requests, 'a shared parser leaks no state');
});

test('response parser fuzz: nothing throws, every call progresses, offsets and value lengths are right', () => {
  holds(responses, 'no exception escapes');
  holds(responses, 'progress and offsets');
});

test('response parser fuzz: a valid reply stream gives exactly its units, whole and cut', () => {
  holds(responses, 'a valid stream gives its units');
});

test('response parser fuzz: a stream cut anywhere gives what it gives whole', () => {
  holds(responses, 'cut gives what whole gives');
});

test('response parser fuzz: a line no memcached would send is BAD (the connection is dropped), never a client\'s reply', () => {
  holds(responses, 'a line no memcached sends is BAD');
});

test('response parser fuzz: a parser shared by connections leaks no state between them', () => {
  holds(responses, 'a shared parser leaks no state');
});

// ------------------------------------------------------------------ findings, pinned

const memcached = new RequestModel({ mode: 'memcached', maxItemSize: 1024 * 1024 });

function parseAll(wire: string): Array<{ r: string; cmd: number; reply: string | null; noreply: boolean; next: number }> {
  const p = new RequestParser(1024 * 1024);
  const buf = Buffer.from(wire, 'latin1');
  const out = [];
  let pos = 0;
  while (pos < buf.length) {
    const r = p.parse(buf, pos, buf.length);
    if (r === Parse.NEED_MORE) { out.push({ r: 'NEED_MORE', cmd: p.cmd, reply: null, noreply: false, next: pos }); break; }
    out.push({ r: ['NEED_MORE', 'REQUEST', 'REPLY', 'CLOSE'][r]!, cmd: p.cmd, reply: p.reply?.toString('latin1') ?? null, noreply: p.noreply, next: p.next });
    if (r === Parse.CLOSE) break;
    pos = p.next;
  }
  return out;
}

test('finding: an HTTP request line ("GET / HTTP/1.1") closes the connection as memcached does, not ERROR', () => {
  // memcached 1.6 process_command_ascii: a command that starts with none of the
  // letters it knows and whose last token starts with "HTTP/" closes the connection.
  for (const wire of ['GET / HTTP/1.1\r\n', 'HTTP/1.1\r\n', 'POST /x HTTP/1.0\r\n']) {
    assert.equal(memcached.run(wire).outcomes, [{ t: 'CLOSE' }], `memcached on ${JSON.stringify(wire)}`);
    const got = parseAll(wire);
    assert.is(got[0]!.r, 'CLOSE', `mcrelay parses ${JSON.stringify(wire)} as ${JSON.stringify(got)}`);
  }
});

test('finding: ms with 20 or more tokens is refused ("CLIENT_ERROR options flags too long") and its data block is read as commands', () => {
  // memcached answers before it reads the data (process_mset_command, ntokens >
  // MFLAG_MAX_OPT_LENGTH); mcrelay takes the line as a request with a data block,
  // so the backend answers twice (the error, then ERROR for the data line).
  const wire = `ms k 1${' T1'.repeat(18)}\r\nx\r\n`;
  assert.equal(memcached.run(wire).outcomes.map((o) => (o.t === 'REPLY' ? o.reply : o.t)),
    ['CLIENT_ERROR options flags too long\r\n', 'ERROR\r\n']);
  const got = parseAll(wire);
  assert.equal(got.map((o) => o.reply), ['CLIENT_ERROR options flags too long\r\n', 'ERROR\r\n'], `mcrelay: ${JSON.stringify(got)}`);
});

test('finding: "noreply" followed by a NUL byte is noreply to memcached, so mcrelay must not forward the line expecting a reply', () => {
  // memcached ends a command line at its first NUL (strlen in tokenize_command):
  // "set k 0 0 1 noreply\0" is a noreply set there. mcrelay reads the token as
  // "noreply\0" (not noreply), forwards the line unchanged and waits for a reply
  // that never comes: the next reply on that backend connection answers it.
  const wire = 'set k 0 0 1 noreply\0\r\na\r\n';
  const m = memcached.run(wire).outcomes[0]!;
  assert.ok(m.t === 'REQUEST' && m.noreply, 'memcached reads a noreply set');
  const got = parseAll(wire)[0]!;
  const forwardedExpectingReply = got.r === 'REQUEST' && got.cmd === Cmd.SET && !got.noreply;
  assert.not.ok(forwardedExpectingReply, 'mcrelay forwards "set k 0 0 1 noreply\\0" as a set that gets a reply');
});

test('finding: a line ending in "HTTP/..." closes only when memcached does (an unknown command), not a known one', () => {
  // memcached 1.6.18 (checked on a real server): the HTTP rule is the last branch
  // of process_command_ascii, for a name it did not dispatch on (not g s a c i d t,
  // not a two-letter m name). These are served as the commands they are.
  const cases: Array<[string, string]> = [
    ['get / HTTP/1.1\r\n', 'END'],
    ['mg HTTP/1.1\r\n', 'EN'],
    ['flush_all 0 HTTP/1.1\r\n', 'OK'],
    ['prepend k 0 0 1 HTTP/1.1\r\nx\r\n', 'NOT_STORED'],
    ['t HTTP/1.1\r\n', 'ERROR'],
    ['x y HTTP/1.0\r\n', 'ERROR'],
  ];
  for (const [wire, fromMemcached] of cases) {
    const m = memcached.run(wire).outcomes[0]!;
    assert.is.not(m.t, 'CLOSE', `memcached (model) on ${JSON.stringify(wire)}; a real one answers ${fromMemcached}`);
    const got = parseAll(wire)[0]!;
    assert.is.not(got.r, 'CLOSE', `mcrelay closes on ${JSON.stringify(wire)}; memcached answers ${fromMemcached}`);
  }
});

test('finding: a meta line with a key over 250 bytes and 20 or more tokens is "bad command line format", as in memcached', () => {
  // memcached 1.6.18 checks the key's length before the token limit (mg, ms, md, ma).
  const key = 'k'.repeat(251);
  for (const wire of [`mg ${key}${' v'.repeat(18)}\r\n`, `md ${key}${' q'.repeat(18)}\r\n`, `ms ${key} 1${' T1'.repeat(17)}\r\nx\r\n`]) {
    const m = memcached.run(wire).outcomes[0]!;
    assert.ok(m.t === 'REPLY' && m.reply === 'CLIENT_ERROR bad command line format\r\n', `model on ${wire.slice(0, 3)}`);
    const got = parseAll(wire)[0]!;
    assert.is(got.reply, 'CLIENT_ERROR bad command line format\r\n', `mcrelay on ${wire.slice(0, 3)}<251-byte key>...: ${JSON.stringify(got)}`);
  }
});

test('finding: a meta reply line "HD " (a space and no flag) is not one memcached sends: BAD', () => {
  // memcached writes each meta flag as " <flag>" after the code: never a bare trailing space.
  const p = new ResponseParser();
  const buf = Buffer.from('HD \r\n', 'latin1');
  assert.is(p.read(buf, 0, buf.length, Expect.META), Reply.BAD, 'mcrelay takes "HD \\r\\n" as a reply');
});

test.run();
