// Each backend failure reaches the connection's handler as an error with its
// stable code, and is counted in the server's figures under its kind (an error
// also under its code). One BackendConnection talks to a scripted server on
// loopback: what a real memcached cannot send (garbage, a reply nobody asked
// for, silence, its connection-limit greeting) comes from the fake.
import net, { type AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BackendConnection, Failure, type ReplyHandler } from '../../src/backend/connection.js';
import type { ServerAddress } from '../../src/config/config.js';
import {
  BackendClosedError, BackendTimeoutError, BackendUnparseableError, Code, codeOf, ConnectError, IoInternalsError, ListenError, McrelayError, UsageError,
} from '../../src/errors.js';
import { listenerHandle } from '../../src/io/internals.js';
import { claimPort, listenShared } from '../../src/io/portable.js';
import { listenUnix } from '../../src/main/unix-socket.js';
import { Expect } from '../../src/protocol/response-parser.js';
import { ERROR_CODES, S, ServerStats } from '../../src/shared/server-stats.js';
import { Op } from '../../src/worker/request.js';
import { FakeBackend, type Behaviour } from '../helpers/fake-backend.js';
import { freePort } from '../helpers/procs.js';

interface Outcome { failure: number; error: Error | null; failedOps: number; lines: string[]; stats: Float64Array }

const open: Array<{ close(): Promise<void> | void }> = [];
test.after.each(async () => {
  for (const o of open.splice(0)) await o.close();
});

/**
 * Sends `request` (expecting a reply of `kind`) on a new connection to `address`
 * and resolves with the first failure of that connection; rejects after 3 s.
 */
function failureOf(address: ServerAddress, request: string, kind: number, opts: { timeoutMs?: number; retryable?: boolean } = {}): Promise<Outcome> {
  const stats = new ServerStats(1, 1).block(0, 0);
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    let failedOps = 0;
    const handler: ReplyHandler = {
      onValue() {},
      onLine(_op, buf, start, end) { lines.push(buf.toString('latin1', start, end)); },
      onFailed() { failedOps++; },
      retryable: () => opts.retryable ?? false,
      onConnectionFailed(_conn, failure, error) {
        clearTimeout(timer);
        // The ops are failed just after this call: read the outcome a turn later.
        setImmediate(() => { conn.close(); resolve({ failure, error, failedOps, lines, stats }); });
      },
      schedule(c) { setImmediate(() => c.flush()); },
    };
    const conn = new BackendConnection(0, address, handler, opts.timeoutMs ?? 2000, 1000, stats);
    const timer = setTimeout(() => { conn.close(); reject(new Error(`no failure within 3 s; replies: ${JSON.stringify(lines)}`)); }, 3000);
    const op = new Op();
    op.kind = kind;
    conn.outbox.addAll(Buffer.from(request));
    conn.enqueue(op, performance.now());
  });
}

/** What a test checks of every failure: the code, the failure kind, and every counter it could have moved. */
function seen(o: Outcome): Record<string, unknown> {
  return {
    code: codeOf(o.error), failure: o.failure, failedOps: o.failedOps,
    requests: o.stats[S.REQUESTS], errors: o.stats[S.ERRORS], timeouts: o.stats[S.TIMEOUTS], reconnects: o.stats[S.RECONNECTS],
    // the errors by code (stats servers' errors_<code>), those not 0
    byCode: Object.fromEntries(ERROR_CODES.map((c, k) => [c, o.stats[S.ERRORS_BY_CODE + k]!]).filter(([, n]) => n !== 0)),
  };
}

async function fake(behaviour: Behaviour): Promise<ServerAddress> {
  const f = await new FakeBackend(behaviour).listen();
  open.push(f);
  return { name: f.addr, host: '127.0.0.1', port: f.port, path: null };
}

test('garbage for a get: MCRELAY_BACKEND_UNPARSEABLE, a protocol failure, counted as an error of the server', async () => {
  const address = await fake((_line, s) => s.write('HELLO WORLD\r\n'));
  const o = await failureOf(address, 'get k\r\n', Expect.RETRIEVAL);
  assert.ok(o.error instanceof BackendUnparseableError);
  assert.is(o.error.message, 'unparseable reply');
  assert.equal(seen(o), { code: 'MCRELAY_BACKEND_UNPARSEABLE', failure: Failure.PROTOCOL, failedOps: 1, requests: 0, errors: 1, timeouts: 0, reconnects: 0, byCode: { MCRELAY_BACKEND_UNPARSEABLE: 1 } });
});

test('a second reply to one request: MCRELAY_BACKEND_UNEXPECTED_REPLY, after the first was delivered', async () => {
  const address = await fake((_line, s) => s.write('TOUCHED\r\nTOUCHED\r\n'));
  const o = await failureOf(address, 'touch k 0\r\n', Expect.LINE);
  assert.equal(o.lines, ['TOUCHED\r\n']);
  assert.equal(seen(o), { code: 'MCRELAY_BACKEND_UNEXPECTED_REPLY', failure: Failure.PROTOCOL, failedOps: 0, requests: 1, errors: 1, timeouts: 0, reconnects: 0, byCode: { MCRELAY_BACKEND_UNEXPECTED_REPLY: 1 } });
});

test('a server that never answers: MCRELAY_BACKEND_TIMEOUT, counted as a timeout', async () => {
  const address = await fake(() => { /* silent */ });
  const o = await failureOf(address, 'get k\r\n', Expect.RETRIEVAL, { timeoutMs: 50 });
  assert.ok(o.error instanceof BackendTimeoutError);
  assert.equal(seen(o), { code: 'MCRELAY_BACKEND_TIMEOUT', failure: Failure.TIMEOUT, failedOps: 1, requests: 0, errors: 0, timeouts: 1, reconnects: 0, byCode: {} });
});

test('a closed port: MCRELAY_CONNECT_FAILED, with the socket error (ECONNREFUSED) as its cause and in its words', async () => {
  const port = await freePort();
  const o = await failureOf({ name: `127.0.0.1:${port}`, host: '127.0.0.1', port, path: null }, 'get k\r\n', Expect.RETRIEVAL);
  assert.ok(o.error instanceof ConnectError);
  assert.is(codeOf(o.error.cause), 'ECONNREFUSED');
  assert.is(o.error.message, `connect ECONNREFUSED 127.0.0.1:${port}`);
  assert.equal(seen(o), { code: 'MCRELAY_CONNECT_FAILED', failure: Failure.CONNECTION, failedOps: 1, requests: 0, errors: 1, timeouts: 0, reconnects: 0, byCode: { MCRELAY_CONNECT_FAILED: 1 } });
});

test("memcached's connection-limit greeting: MCRELAY_BACKEND_CONNECTION_LIMIT, a failed connection", async () => {
  const server = net.createServer((s) => { s.on('error', () => {}); s.end('ERROR Too many open connections\r\n'); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  // Not awaited: its close callback waits for connections the greeting already ended.
  open.push({ close: () => { server.close(); } });
  const port = (server.address() as AddressInfo).port;
  const o = await failureOf({ name: `127.0.0.1:${port}`, host: '127.0.0.1', port, path: null }, 'get k\r\n', Expect.RETRIEVAL);
  assert.equal(seen(o), { code: 'MCRELAY_BACKEND_CONNECTION_LIMIT', failure: Failure.CONNECTION, failedOps: 1, requests: 0, errors: 1, timeouts: 0, reconnects: 0, byCode: { MCRELAY_BACKEND_CONNECTION_LIMIT: 1 } });
});

test('a server closing under a read that may go again: MCRELAY_BACKEND_CLOSED, counted as a reconnect', async () => {
  const address = await fake((_line, s) => s.destroy());
  const o = await failureOf(address, 'get k\r\n', Expect.RETRIEVAL, { retryable: true });
  assert.ok(o.error instanceof BackendClosedError);
  assert.equal(seen(o), { code: 'MCRELAY_BACKEND_CLOSED', failure: Failure.CLOSED, failedOps: 1, requests: 0, errors: 0, timeouts: 0, reconnects: 1, byCode: {} });
});

test('a server closing under a write, which may not go again: MCRELAY_BACKEND_CLOSED, a failed connection, an error under its code', async () => {
  const address = await fake((_line, s) => s.destroy());
  const o = await failureOf(address, 'set k 0 0 1\r\nv\r\n', Expect.LINE);
  assert.ok(o.error instanceof BackendClosedError);
  assert.equal(seen(o), { code: 'MCRELAY_BACKEND_CLOSED', failure: Failure.CONNECTION, failedOps: 1, requests: 0, errors: 1, timeouts: 0, reconnects: 0, byCode: { MCRELAY_BACKEND_CLOSED: 1 } });
});

test('the per-code slots lie between the other figures and the latency ones', () => {
  assert.is(S.ERRORS_BY_CODE + ERROR_CODES.length, S.LATENCY_SUM);
  assert.ok(ERROR_CODES.every((c) => Object.values(Code).includes(c)));
  assert.is(new Set(ERROR_CODES).size, ERROR_CODES.length);
});

test('a unix socket in a directory that does not exist: MCRELAY_LISTEN_FAILED, naming the path', async () => {
  const server = net.createServer();
  try {
    await listenUnix(server, '/nonexistent-mcrelay-dir/s.sock', 0o660, 16, null);
    assert.unreachable('listened');
  } catch (err) {
    assert.ok(err instanceof ListenError);
    assert.is(codeOf(err), 'MCRELAY_LISTEN_FAILED');
    assert.match((err as Error).message, /^unix socket \/nonexistent-mcrelay-dir\/s\.sock: directory \/nonexistent-mcrelay-dir does not exist$/);
  } finally {
    server.close();
  }
});

test('a port already taken, claimed or listened on with reusePort: MCRELAY_LISTEN_FAILED, naming the address and the socket error', async () => {
  const taken = net.createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  open.push({ close: () => { taken.close(); } });
  const port = (taken.address() as AddressInfo).port;
  const claim = await claimPort('127.0.0.1', port).then(() => null, (err: unknown) => err);
  assert.ok(claim instanceof ListenError);
  assert.is(codeOf(claim), 'MCRELAY_LISTEN_FAILED');
  assert.is(codeOf(claim.cause), 'EADDRINUSE');
  assert.match(claim.message, new RegExp(`^listen 127\\.0\\.0\\.1:${port}: listen EADDRINUSE`));
  const shared = await listenShared([{ host: '127.0.0.1', port, tls: false }], (s) => s.destroy(), () => {}).then((servers) => {
    for (const s of servers) s.close();
    return null;
  }, (err: unknown) => err);
  assert.ok(shared instanceof ListenError);
  assert.is(codeOf(shared), 'MCRELAY_LISTEN_FAILED');
  assert.match(shared.message, new RegExp(`^listen 127\\.0\\.0\\.1:${port} \\(reusePort\\): listen EADDRINUSE`));
});

test('a server with no libuv handle where the fast path needs one: MCRELAY_IO_INTERNALS, pointing to --io portable', () => {
  try {
    listenerHandle(net.createServer());
    assert.unreachable('a handle');
  } catch (err) {
    assert.ok(err instanceof IoInternalsError);
    assert.is(codeOf(err), 'MCRELAY_IO_INTERNALS');
    assert.match((err as Error).message, /; use --io portable$/);
  }
});

test('every class is a McrelayError with its own code and name; codeOf reads any error', () => {
  const e = new UsageError('unknown user');
  assert.ok(e instanceof McrelayError && e instanceof Error);
  assert.is(e.code, Code.USAGE);
  assert.is(e.name, 'UsageError');
  assert.is(String(e), 'UsageError: unknown user');
  // Every code is distinct and spelled MCRELAY_*.
  const codes = Object.values(Code);
  assert.is(new Set(codes).size, codes.length);
  for (const c of codes) assert.match(c, /^MCRELAY_[A-Z_]+$/);
  assert.is(codeOf(Object.assign(new Error('x'), { code: 'EADDRINUSE' })), 'EADDRINUSE');
  assert.is(codeOf(new Error('x')), undefined);
  assert.is(codeOf(null), undefined);
  assert.is(codeOf('text'), undefined);
});

test.run();
