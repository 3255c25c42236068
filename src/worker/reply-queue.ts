// The reply queue of one client connection: its requests in arrival order, and
// their replies written in that order, whatever order the servers answer in.
//
//   ClientConnection (client.ts) --push(req)--> ring of requests, oldest at head
//   a request done --replyReady()--> every done request at the head --> Outbox
//   the worker's FlushScheduler, once per turn --flush()--> socket
//
// A reply the proxy gives itself (replyNow) takes a place in the ring only when
// replies are owed ahead of it. ClientConnection extends this class with the
// socket's input side: the parse loops, and when to stop reading.

import { Cmd } from '../protocol/commands.js';
import { Outbox, replyArena } from '../io/buffers.js';
import type { RequestParser } from '../protocol/request-parser.js';
import { addTextValue } from '../protocol/gets-as-mg.js';
import { encodeReply } from '../protocol/binary-reply.js';
import * as wire from '../protocol/wire.js';
import { C } from '../shared/counters.js';
import type { Dispatcher } from './dispatch.js';
import type { FlushScheduler } from './flush-scheduler.js';
import type { ReplyTarget, Request } from './request.js';
import type { LocalCommands } from './local.js';
import type { PendingBytes } from './pending-bytes.js';
import { LARGE_BYTES, LARGE_KEYS, largeRequestDone } from './collect.js';
import type { ByteStream } from '../io/stream.js';
import type { PasswordGate } from './auth.js';

/** The worker's current dispatcher and parser (a reload replaces them; requests in flight stay with theirs). */
export interface ClientWorker {
  readonly dispatcher: Dispatcher;
  readonly parser: RequestParser;
  readonly pending: PendingBytes;
  readonly scheduler: FlushScheduler;
  /** auth_file's users (null: clients are not asked to authenticate) */
  readonly auth: PasswordGate | null;
}

export abstract class ReplyQueue implements ReplyTarget {
  /** null once closed */
  protected socket: ByteStream | null = null;
  private readonly outbox = new Outbox(replyArena);
  /** a flush of LARGE_BYTES or more is still being written */
  protected largeOut = false;
  // reply queue: a ring of requests in arrival order
  private queue: Array<Request | null> = new Array(4).fill(null);
  private head = 0;
  private tail = 0;
  protected queued = 0;
  private scheduled = false;

  constructor(
    protected readonly ctx: ClientWorker,
    protected readonly local: LocalCommands,
  ) {}

  /** Whether the connection closes once no reply is owed. */
  protected abstract finishing(): boolean;

  /** Stops reading a client that has too much unanswered, resumes when it drains. */
  protected abstract checkPressure(): void;

  protected push(req: Request): void {
    this.queue[this.tail] = req;
    this.tail = (this.tail + 1) & (this.queue.length - 1);
    this.queued++;
    if (this.tail === this.head) {
      const old = this.queue;
      const next: Array<Request | null> = new Array(old.length * 2).fill(null);
      for (let i = 0; i < old.length; i++) next[i] = old[(this.head + i) & (old.length - 1)]!;
      this.queue = next;
      this.head = 0;
      this.tail = old.length;
    }
  }

  /**
   * A reply the proxy gives itself, written now if nothing is ahead of it. A null
   * reply is a stats reply of `statsKind`, whose figures are taken when it is written.
   */
  protected replyNow(reply: Buffer | null, statsKind = 0): void {
    if (this.queued === 0) {
      this.outbox.addAll(reply ?? this.local.statsReply(statsKind));
      this.schedule();
      return;
    }
    const req = this.ctx.dispatcher.pools.request();
    req.refs = 1;
    req.cmd = reply === null ? Cmd.STATS : Cmd.UNKNOWN;
    req.argStart = statsKind;
    req.reply = reply;
    req.done = true;
    req.client = this;
    this.push(req);
  }

  /** Called when some request became done: write every done request at the head. */
  replyReady(): void {
    const out = this.outbox;
    let wrote = false;
    while (this.queued > 0) {
      const req = this.queue[this.head]!;
      if (!req.done) break;
      this.queue[this.head] = null;
      this.head = (this.head + 1) & (this.queue.length - 1);
      this.queued--;
      if (req.cmd === Cmd.STATS) out.addAll(this.local.statsReply(req.argStart));
      else writeReply(out, req);
      if (req.keyCount >= LARGE_KEYS) largeRequestDone();
      req.client = null;
      this.ctx.dispatcher.release(req);
      wrote = true;
    }
    if (wrote || (this.queued === 0 && this.finishing())) this.schedule();
  }

  protected schedule(): void {
    if (!this.scheduled && this.socket !== null) {
      this.scheduled = true;
      this.ctx.scheduler.schedule(this);
    }
  }

  flush(): void {
    this.scheduled = false;
    const socket = this.socket;
    if (socket === null) return;
    this.ctx.dispatcher.counters[C.BYTES_WRITTEN]! += this.outbox.length;
    // A large reply's buffers can be collected once the socket has written them.
    if (this.outbox.length >= LARGE_BYTES) this.largeOut = true;
    this.outbox.flush(socket);
    if (this.largeOut && socket.pending === 0) this.largeWritten();
    if (this.queued === 0 && this.finishing()) {
      socket.end();
      return;
    }
    this.checkPressure();
  }

  protected largeWritten(): void {
    this.largeOut = false;
    largeRequestDone();
  }

  /** The connection closed: requests still at the backends finish there; their replies go nowhere. */
  protected dropReplies(): void {
    while (this.queued > 0) {
      const req = this.queue[this.head]!;
      this.queue[this.head] = null;
      this.head = (this.head + 1) & (this.queue.length - 1);
      this.queued--;
      req.client = null;
      this.ctx.dispatcher.release(req);
    }
    this.outbox.clear();
  }
}

function writeReply(out: Outbox, req: Request): void {
  if (req.binOp >= 0) {
    const v = req.valueCount > 0 ? req.values[0]! : null;
    encodeReply(out, req.binOp, req.binOpaque, req.reply, v, v === null ? 0 : req.valueSpans[0]!, v === null ? 0 : req.valueSpans[1]!,
      req.buf, req.keyStart(0), req.keyEnd(0));
    return;
  }
  if (req.reply !== null) {
    out.addAll(req.reply);
    return;
  }
  const v = req.values;
  const spans = req.valueSpans;
  const withCas = req.cmd === Cmd.GETS || req.cmd === Cmd.GATS;
  for (let i = 0; i < req.valueCount; i++) {
    const b = v[i];
    if (!b) continue;
    const start = spans[2 * i]!;
    const end = spans[2 * i + 1]!;
    // "VALUE ..." as the server sent it, or a meta reply "VA ..." (an mg for the key).
    if (b[start + 2] === 0x20) addTextValue(out, b, start, end, req.buf, req.keyStart(i), req.keyEnd(i), withCas);
    else out.add(b, start, end);
  }
  out.addAll(wire.END);
}
