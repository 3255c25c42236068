// One pipelined connection from a worker to one memcached server.
//
//   enqueue(op, bytes) -> outbox --(one write per turn)--> server
//   server --> ResponseParser --> pending[head] (FIFO: replies come in request order)
//
// Replies are matched to ops purely by order, so anything that breaks the order
// (an unparseable reply, a reply that never comes) poisons the stream: the
// connection is closed and every op still pending on it is failed, which hands
// reads over to the backup (see worker/reads.ts).
//
// A connection the server closes or resets while nothing is pending on it says
// nothing about the server: memcached's idle_timeout, a NAT or firewall dropping
// a quiet flow, a load balancer. It is reopened on its next use, and counted
// (RECONNECTS). Closed with requests pending, it fails them as CLOSED when the
// handler says every one may be sent again (reads, once), so that a request
// racing an idle close is retried on a new connection instead of marking the
// server down.
//
// A server of a pool with credentials (backend_auth_file) gets the auth set
// (backend/auth.ts) first on each new connection; its STORED is read before
// any reply, and anything else fails the connection: the server is down.

import { performance } from 'node:perf_hooks';
import type { ServerAddress } from '../config/config.js';
import { bytesEqual, InputBuffer, Outbox, readArena } from '../io/buffers.js';
import { Reply, ResponseParser } from '../protocol/response-parser.js';
import { connectStream } from '../io/open-stream.js';
import { streamError, type ByteStream, type ConnectingOwner } from '../io/stream.js';
import { countError, recordLatency, S } from '../shared/server-stats.js';
import {
  BackendAuthError, BackendClosedError, BackendConnectionLimitError, BackendTimeoutError, BackendUnexpectedReplyError, BackendUnparseableError, ConnectError, codeOf,
} from '../errors.js';
import { debugEnabled, log } from '../log.js';
import { authAnswer, authRefusal, backendAuth } from './auth.js';

/** Why a connection failed its ops; decides what health does with the server. */
export const Failure = {
  /** refused, reset, closed by the server: the server is down */
  CONNECTION: 0,
  /** the head op waited longer than the timeout */
  TIMEOUT: 1,
  /** the server sent something that is not a memcached reply */
  PROTOCOL: 2,
  /** closed or reset once open, with only requests pending that may be sent again */
  CLOSED: 3,
} as const;

/**
 * What a request's size adds to its timeout: memcached reads a whole request
 * before it answers, and one get of 900,000 keys takes it seconds (7 s here for
 * hits). Per key asked and per byte sent; a reply that keeps arriving is never
 * timed out at all (see checkTimeout).
 */
const US_PER_KEY = 20;
const BYTES_PER_MS = 16 * 1024;

/** memcached's greeting to a connection past its -c limit, just before it closes it */
const TOO_MANY_CONNECTIONS = Buffer.from('ERROR Too many open connections\r\n');
/** memcached -Y's acceptance of the auth set */

/**
 * What the connection needs of a request queued on it; the worker's Op
 * (worker/request.ts) is one. The connection sets server, conn and sentAt.
 */
export interface PendingOp {
  /** what reply it expects: Expect.LINE / RETRIEVAL / META / META_GET (protocol/response-parser.ts) */
  kind: number;
  server: number;
  /** the connection the op is queued on */
  conn: BackendConnection | null;
  /** performance.now() when it was queued */
  sentAt: number;
  /** retrieval: how many keys it asks for (its timeout grows with them) */
  keyCount: number;
  /** the request it serves: a write's bytes grow its timeout */
  req: { readonly bytes: number } | null;
}

/** Where a connection's replies and failures go; `O` is the kind of op its owner queues. */
export interface ReplyHandler<O extends PendingOp = PendingOp> {
  onValue(op: O, buf: Buffer, start: number, end: number, keyStart: number, keyEnd: number): void;
  /** the op's final reply: a line (END for a retrieval), or a whole meta reply (VA with its data), [start, end) including CRLF */
  onLine(op: O, buf: Buffer, start: number, end: number): void;
  /** op failed with its connection (`failure`: a Failure), after onConnectionFailed told the connection's failure */
  onFailed(op: O, failure: number): void;
  /** whether op may be sent again on a new connection if this one closes under it */
  retryable(op: O): boolean;
  onConnectionFailed(conn: BackendConnection<O>, failure: number, error: Error | null): void;
  /** the connection has bytes to write; flush() it later in this turn */
  schedule(conn: BackendConnection<O>): void;
}

const IDLE = 0;
const CONNECTING = 1;
const OPEN = 2;

export class BackendConnection<O extends PendingOp = PendingOp> implements ConnectingOwner {
  readonly server: number;
  readonly address: ServerAddress;
  private socket: ByteStream | null = null;
  private state = IDLE;
  readonly outbox = new Outbox();
  private readonly input = new InputBuffer();
  private readonly parser = new ResponseParser();
  // pending ops: a growable power-of-two ring
  private ring: Array<O | null> = new Array(64).fill(null);
  private head = 0;
  private tail = 0;
  private timer: NodeJS.Timeout | null = null;
  /** set while this connection is in the handler's flush list */
  scheduled = false;
  /** no reconnect before this time (ms) after a protocol failure */
  private backoffUntil = 0;
  private backoffMs = 0;
  /** connected, and no reply read yet: the server may still be refusing us */
  private fresh = false;
  /** the auth set went first on this connection and its STORED has not been read yet */
  private authing = false;
  /** when the head op became the head (the one before it was answered), performance.now() */
  private headSince = 0;
  /** when the last bytes arrived */
  private lastReadAt = 0;
  /** when checkTimeout last ran, and whether it let a late run go without judging */
  private checkedAt = 0;
  private latePassed = false;

  constructor(
    server: number,
    address: ServerAddress,
    private readonly handler: ReplyHandler<O>,
    private readonly timeoutMs: number,
    private readonly maxBackoffMs: number,
    /** this worker's figures for this server (shared/server-stats.ts) */
    private readonly stats: Float64Array,
  ) {
    this.server = server;
    this.address = address;
  }

  get inflight(): number { return (this.tail - this.head) & (this.ring.length - 1); }

  /** False while a reconnect is held back after a protocol failure. */
  usable(now: number): boolean {
    return this.state !== IDLE || now >= this.backoffUntil;
  }

  /** Queues op; the caller has added (or will add in this turn) its bytes to outbox. `now` is performance.now(). */
  enqueue(op: O, now: number): void {
    if (this.state === IDLE) this.connect();
    if (this.head === this.tail) this.headSince = now;
    op.server = this.server;
    op.conn = this;
    op.sentAt = now;
    this.ring[this.tail] = op;
    this.tail = (this.tail + 1) & (this.ring.length - 1);
    if (this.tail === this.head) this.grow();
    this.stats[S.INFLIGHT] = this.inflight;
    if (!this.scheduled) {
      this.scheduled = true;
      this.handler.schedule(this);
    }
    if (this.timer === null) this.timer = setInterval(checkTimeout, timerPeriod(this.timeoutMs), this);
  }

  flush(): void {
    this.scheduled = false;
    // While connecting, requests wait in the outbox; connected() sends them.
    if (this.state === OPEN) this.outbox.flush(this.socket!);
  }

  private grow(): void {
    // tail caught up with head: the ring is full; double it, unrolled from head
    const old = this.ring;
    const next: Array<O | null> = new Array(old.length * 2).fill(null);
    for (let i = 0; i < old.length; i++) next[i] = old[(this.head + i) & (old.length - 1)]!;
    this.ring = next;
    this.head = 0;
    this.tail = old.length;
  }

  private connect(): void {
    this.state = CONNECTING;
    this.socket = connectStream(this.address, this);
  }

  /** @internal */ connected(): void {
    this.state = OPEN;
    this.backoffMs = 0;
    this.fresh = true;
    const auth = backendAuth(this.address);
    this.authing = auth !== null;
    if (auth !== null) this.socket!.write(auth);
    this.outbox.flush(this.socket!);
  }

  /** @internal */ ended(): void {
    this.lost(new BackendClosedError('connection closed by server'));
  }

  /** @internal */ closed(status: number, detail?: string): void {
    if (this.state === CONNECTING) {
      this.fail(Failure.CONNECTION, status === 0 ? new ConnectError('connection closed') : causedBy(ConnectError, streamError('connect', status, this.address.name, detail)));
      return;
    }
    this.lost(status === 0 ? new BackendClosedError('connection closed') : causedBy(BackendClosedError, streamError('connection', status, this.address.name, detail)));
  }

  /** The server closed or reset an open connection. */
  private lost(error: BackendClosedError): void {
    if (this.head === this.tail) {
      this.reset();
      this.stats[S.RECONNECTS]!++;
      log.debug('idle backend connection closed; reopened on next use', { server: this.address.name, code: error.code, reason: error.message });
      return;
    }
    let retryable = true;
    for (let i = this.head; i !== this.tail; i = (i + 1) & (this.ring.length - 1)) {
      if (!this.handler.retryable(this.ring[i]!)) { retryable = false; break; }
    }
    this.fail(retryable ? Failure.CLOSED : Failure.CONNECTION, error);
  }

  /** @internal */ drained(): void {}

  /** @internal */ receive(n: number): void {
    const input = this.input;
    input.pushRead(readArena, 0, n, this.parser.need);
    const buf = input.buf;
    const end = input.end;
    let pos = input.pos;
    const parser = this.parser;
    const handler = this.handler;
    const stats = this.stats;
    const now = performance.now();
    this.lastReadAt = now;
    if (this.fresh) {
      // memcached at its connection limit accepts, says this, and closes: a
      // refused connection, not the reply to our first request.
      if (end - pos >= TOO_MANY_CONNECTIONS.length && bytesEqual(buf, pos, TOO_MANY_CONNECTIONS, 0, TOO_MANY_CONNECTIONS.length)) {
        return this.fail(Failure.CONNECTION, new BackendConnectionLimitError('too many open connections'));
      }
      if (end - pos >= TOO_MANY_CONNECTIONS.length || buf[end - 1] === 0x0a) this.fresh = false;
    }
    if (this.authing) {
      const nl = buf.indexOf(0x0a, pos);
      if (nl < 0 || nl >= end) return;
      const line = buf.toString('latin1', pos, nl + 1);
      if (authAnswer(line) < 0) return this.fail(Failure.CONNECTION, new BackendAuthError(authRefusal(line)));
      this.authing = false;
      pos = nl + 1;
    }
    while (pos < end) {
      const op = this.ring[this.head];
      if (op === null || op === undefined) return this.fail(Failure.PROTOCOL, new BackendUnexpectedReplyError('reply with no request pending'));
      const r = parser.read(buf, pos, end, op.kind);
      if (r === Reply.NEED_MORE) break;
      if (r === Reply.BAD) return this.fail(Failure.PROTOCOL, new BackendUnparseableError('unparseable reply'));
      if (r === Reply.VALUE) {
        handler.onValue(op, buf, parser.start, parser.next, parser.keyStart, parser.keyEnd);
      } else {
        this.ring[this.head] = null;
        this.head = (this.head + 1) & (this.ring.length - 1);
        this.headSince = now;
        stats[S.REQUESTS]!++;
        stats[S.INFLIGHT] = (this.tail - this.head) & (this.ring.length - 1);
        recordLatency(stats, now - op.sentAt);
        handler.onLine(op, buf, parser.start, parser.next);
      }
      // A handler may have failed this connection (a value nobody asked for).
      if (this.state === IDLE) return;
      pos = parser.next;
    }
    input.consume(pos);
  }

  /**
   * Head op waiting too long? Then the stream is stuck: fail the connection. Its
   * wait starts when it became the head (ops behind a slow one are not late),
   * or at the last bytes received (a long reply still arriving is progress),
   * and it may take longer the larger it is.
   *
   * libuv runs due timers before it polls the sockets. A check that comes late
   * (a long turn, such as a giant reply handed on, a GC pause, or a process the
   * machine did not run) may find a reply that arrived meanwhile still unread:
   * such a check passes, once, so that the poll reads first. The next one
   * judges however late it is, so a loop that is always late still times out.
   */
  /** @internal */ checkTimeout(now: number): void {
    const op = this.ring[this.head];
    if (op === null || op === undefined) {
      if (this.timer !== null) { clearInterval(this.timer); this.timer = null; }
      return;
    }
    const late = now - this.checkedAt > 2 * timerPeriod(this.timeoutMs);
    this.checkedAt = now;
    if (late && !this.latePassed) {
      this.latePassed = true;
      return;
    }
    this.latePassed = false;
    const since = Math.max(op.sentAt, this.headSince, this.lastReadAt);
    // A write's size is its value's (a retrieval op counts its keys; its request's bytes are not its own).
    const allowance = op.keyCount > 0 ? op.keyCount * (US_PER_KEY / 1000) : (op.req?.bytes ?? 0) / BYTES_PER_MS;
    if (now - since >= this.timeoutMs + allowance) this.fail(Failure.TIMEOUT, new BackendTimeoutError(`no reply within ${Math.round(this.timeoutMs + allowance)} ms`));
  }

  /** Closes the connection, forgetting what was read and not yet sent; the next enqueue reconnects. */
  private reset(): void {
    const socket = this.socket;
    this.socket = null;
    this.state = IDLE;
    this.fresh = false;
    this.authing = false;
    socket?.abandon();
    if (this.timer !== null) { clearInterval(this.timer); this.timer = null; }
    this.outbox.clear();
    this.input.consume(this.input.end);
    this.parser.need = 0;
  }

  /** Closes the connection and fails every pending op (each exactly once). */
  fail(failure: number, error: Error | null): void {
    if (debugEnabled()) log.debug('backend connection failed', { server: this.address.name, code: codeOf(error), reason: error?.message });
    this.reset();
    if (failure === Failure.PROTOCOL) {
      this.backoffMs = Math.min(this.maxBackoffMs, this.backoffMs === 0 ? 50 : this.backoffMs * 2);
      this.backoffUntil = performance.now() + this.backoffMs;
    }
    if (failure === Failure.TIMEOUT) this.stats[S.TIMEOUTS]!++;
    else if (failure === Failure.CLOSED) this.stats[S.RECONNECTS]!++;
    else countError(this.stats, codeOf(error));
    // Taken off the ring first: a retried op is queued on this same connection.
    const failed: O[] = [];
    while (this.head !== this.tail) {
      failed.push(this.ring[this.head]!);
      this.ring[this.head] = null;
      this.head = (this.head + 1) & (this.ring.length - 1);
    }
    this.stats[S.INFLIGHT] = 0;
    this.handler.onConnectionFailed(this, failure, error);
    // Fail ops after the health update so that their failover sees the new state.
    for (const op of failed) this.handler.onFailed(op, failure);
  }

  close(): void {
    this.reset();
  }
}

/** A socket error as mcrelay's kind of it, in the same words; its system code (ECONNREFUSED...) stays on the cause. */
function causedBy<E extends Error>(Kind: new (message: string, options?: ErrorOptions) => E, cause: Error): E {
  return new Kind(cause.message, { cause });
}

/** How often a busy connection checks its oldest op: a timeout is noticed within this much. */
function timerPeriod(timeoutMs: number): number {
  return Math.max(5, Math.min(50, timeoutMs >> 3));
}
function checkTimeout(conn: BackendConnection): void { conn.checkTimeout(performance.now()); }
