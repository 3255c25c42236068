// One client connection inside a worker.
//
//   socket read --> InputBuffer --> RequestParser --> Request --> Dispatcher.submit
//   socket      <-- Outbox <-- reply queue (strictly in request order) <--'
//
// Requests go to the backends as soon as they are parsed (pipelined); replies are
// written in request order when the request at the head of the queue is done.
// A client that does not read its replies is paused once too much is pending.
//
// The first byte of a connection picks its protocol, as memcached's -B auto does:
// 0x80 is the binary protocol, whose requests are translated into text ones
// (protocol/binary-request.ts) and then go the same way; their replies are
// encoded back (protocol/binary-reply.ts).

import { performance } from 'node:perf_hooks';
import { Cmd } from '../protocol/commands.js';
import { InputBuffer, Outbox, readArena, replyArena } from '../io/buffers.js';
import type { RequestParser } from '../protocol/request-parser.js';
import { META_BASE64 } from '../protocol/meta-request.js';
import { Parse } from '../protocol/request-rules.js';
import { addTextValue } from '../protocol/gets-as-mg.js';
import { Bin, BinaryParser, MAGIC_REQUEST } from '../protocol/binary-request.js';
import { encodeReply, errorResponse, statsResponse, statusOf, Status } from '../protocol/binary-reply.js';
import * as wire from '../protocol/wire.js';
import { C } from '../shared/counters.js';
import type { Dispatcher } from './dispatch.js';
import type { FlushScheduler } from './flush-scheduler.js';
import type { Request } from './request.js';
import { STATS_ANSWER, STATS_FORWARD, type LocalCommands } from './local.js';
import type { PendingBytes } from './pending-bytes.js';
import { LARGE_BYTES, LARGE_KEYS, largeRequestDone } from './collect.js';
import { adoptStream } from '../io/open-stream.js';
import type { ByteStream } from '../io/stream.js';
import { debugEnabled, log } from '../log.js';

/** While draining, a client quiet this long with nothing owed is closed. */
const DRAIN_QUIET_MS = 100;
/** Requests in flight per client before its input stops being parsed and read. */
const MAX_QUEUED = 256;
/** ... and when it is parsed again. */
const RESUME_QUEUED = MAX_QUEUED >> 1;
/** Reply bytes waiting in the socket before the client stops being read. */
const MAX_UNSENT = 4 * 1024 * 1024;

let nextId = 0;

export class ClientConnection {
  readonly id = nextId++ & 0x3fffffff;
  /** null once closed */
  private socket: ByteStream | null;
  private readonly input = new InputBuffer();
  private readonly outbox = new Outbox(replyArena);
  /** bytes the parser wants before it can continue (a large value), 0 if unknown */
  private need = 0;
  /** bytes of a refused data block still to discard */
  private swallow = 0;
  /** bytes this client holds in the worker's PendingBytes for a value still arriving */
  private reserved = 0;
  /** a flush of LARGE_BYTES or more is still being written */
  private largeOut = false;
  // reply queue: a ring of requests in arrival order
  private queue: Array<Request | null> = new Array(4).fill(null);
  private head = 0;
  private tail = 0;
  private queued = 0;
  /** quit or a fatal error was read: close once earlier replies are out */
  private closing = false;
  /** the client shut its side: close once everything it sent is answered */
  private eof = false;
  /** parsing stopped at MAX_QUEUED, or behind a held request, with input left over */
  private held = false;
  /** requests of this connection waiting before their master (Dispatcher.hold): parsing waits for them */
  private holding = 0;
  private scheduled = false;
  /** set while the worker drains (shutdown) */
  private drainTimer: NodeJS.Timeout | null = null;
  private lastData = 0;
  /** null until the first byte came, then false (text) or the binary front end */
  private binary: BinaryParser | false | null = null;
  /** the binary request being translated: its opcode and opaque */
  private binOp = -1;
  private binOpaque = 0;

  constructor(
    /** the connection: a libuv handle received from the main thread, or a net.Socket (--io portable) */
    handle: object,
    /** the worker's current dispatcher and parser (a reload replaces them; requests in flight stay with theirs) */
    private readonly ctx: { readonly dispatcher: Dispatcher; readonly parser: RequestParser; readonly pending: PendingBytes; readonly scheduler: FlushScheduler },
    private readonly local: LocalCommands,
  ) {
    this.socket = adoptStream(handle, this);
  }

  /** @internal */ receive(n: number): void {
    this.ctx.dispatcher.counters[C.BYTES_READ]! += n;
    if (this.drainTimer !== null) this.lastData = performance.now();
    if (this.closing) return;
    let start = 0;
    if (this.swallow > 0) {
      start = Math.min(this.swallow, n);
      this.swallow -= start;
      if (start === n) return;
    }
    this.input.pushRead(readArena, start, n, this.need);
    this.need = 0;
    this.parseInput();
    // An idle client with half a command must not pin an arena slab.
    if (this.socket !== null && this.input.pending > 0) this.input.detach(this.need);
  }

  /**
   * Runs the parser over what is buffered. Stops (keeping the rest) while too
   * many requests wait for replies: a client that pipelines without reading its
   * replies holds at most MAX_QUEUED requests' worth of memory.
   */
  private parseInput(): void {
    const input = this.input;
    if (this.binary === null && input.end > input.pos) {
      this.binary = input.buf[input.pos] === MAGIC_REQUEST ? new BinaryParser(this.ctx.parser.maxItemSize) : false;
    }
    if (this.binary) {
      this.parseBinary(this.binary);
      return;
    }
    const buf = input.buf;
    const end = input.end;
    let pos = input.pos;
    const parser = this.ctx.parser;
    while (pos < end) {
      if (this.queued >= MAX_QUEUED || this.holding > 0) {
        this.held = true;
        break;
      }
      let r = parser.parse(buf, pos, end);
      if (r === Parse.NEED_MORE) {
        const need = parser.need;
        if (need === 0 || this.reserved > 0 || this.reserve(need)) {
          this.need = need;
          break;
        }
        r = parser.refuseValue();
      }
      if (this.reserved > 0) this.release();
      pos = parser.next;
      if (r === Parse.REQUEST) {
        this.request(buf);
      } else if (r === Parse.REPLY) {
        // ERROR: no command memcached knows, or not in the shape of one.
        if (parser.reply === wire.ERROR) this.protocolError('no command memcached knows: answered ERROR', buf, parser.lineStart, parser.next);
        if (!parser.noreply) this.replyNow(parser.reply!);
        if (parser.dropKey) this.ctx.dispatcher.dropKey(buf, parser.keyOffsets[0]!, parser.keyOffsets[1]!, this, (parser.metaFlags & META_BASE64) !== 0);
        if (parser.swallow > 0) {
          const skip = Math.min(parser.swallow, end - pos);
          pos += skip;
          this.swallow = parser.swallow - skip;
        }
      } else {
        // CLOSE: quit, or a line memcached would drop the connection for.
        if (parser.reply === wire.CLIENT_ERROR_REQUEST_TOO_LONG) this.protocolError('request line too long: connection closed', buf, pos, end);
        else if (parser.cmd !== Cmd.QUIT) this.protocolError('an HTTP request: connection closed', buf, pos, end);
        this.closeAfter(parser.reply);
        pos = end;
        break;
      }
      if (this.socket === null) return;
    }
    input.consume(pos);
    this.checkPressure();
  }

  /**
   * Bytes that are no request memcached serves (an unknown command or opcode, a
   * malformed binary header, a line too long): counted (stats protocol_errors)
   * and told at debug level, with the first bytes of it.
   */
  private protocolError(what: string, buf: Buffer, pos: number, end: number): void {
    this.ctx.dispatcher.counters[C.PROTOCOL_ERRORS]!++;
    if (debugEnabled()) log.debug(`protocol error: ${what}`, { client: this.id, bytes: end - pos, head: buf.toString('hex', pos, Math.min(end, pos + 24)) });
  }

  /** Answers `reply` (if any) after the replies owed, then closes; nothing more is read. */
  private closeAfter(reply: Buffer | null): void {
    if (reply !== null) this.replyNow(reply);
    this.closing = true;
    this.replyReady();
  }

  /** parseInput for a binary connection: each request is translated, then parsed as text. */
  private parseBinary(bp: BinaryParser): void {
    const input = this.input;
    const buf = input.buf;
    const end = input.end;
    let pos = input.pos;
    bp.version = this.local.serverVersion();
    while (pos < end) {
      if (this.queued >= MAX_QUEUED || this.holding > 0) {
        this.held = true;
        break;
      }
      const r = bp.parse(buf, pos, end);
      if (bp.fault !== null) this.protocolError(r === Bin.CLOSE ? `${bp.fault}: connection closed` : bp.fault, buf, pos, end);
      if (r === Bin.NEED_MORE) {
        this.need = bp.need;
        break;
      }
      if (r === Bin.TEXT) {
        pos = bp.next;
        this.translated(bp);
      } else if (r === Bin.LOCAL) {
        if (bp.skip > 0) {
          const skip = Math.min(bp.skip, end - pos);
          pos += skip;
          this.swallow = bp.skip - skip;
        } else {
          pos = bp.next;
        }
        if (bp.reply!.length > 0) this.replyNow(bp.reply!);
      } else if (r === Bin.STATS) {
        pos = bp.next;
        this.replyNow(statsResponse(bp.opaque, this.local.stats()));
      } else {
        this.closeAfter(bp.reply);
        pos = end;
        break;
      }
      if (this.socket === null) return;
    }
    input.consume(pos);
    this.checkPressure();
  }

  /** A binary request as text (in bp.textBuf): parsed and submitted like any other. */
  private translated(bp: BinaryParser): void {
    const parser = this.ctx.parser;
    const text = bp.textBuf;
    const r = parser.parse(text, bp.textStart, bp.textEnd);
    if (r === Parse.REQUEST) {
      this.binOp = bp.opcode;
      this.binOpaque = bp.opaque;
      this.request(text);
      this.binOp = -1;
      return;
    }
    // Refused by the text rules (a key mcrelay cannot forward, a value too large).
    const reply = parser.reply ?? wire.ERROR;
    if (parser.dropKey) this.ctx.dispatcher.dropKey(text, parser.keyOffsets[0]!, parser.keyOffsets[1]!, this, false);
    this.replyNow(errorResponse(bp.opcode, bp.opaque, r === Parse.REPLY ? statusOf(bp.opcode, reply, 0, reply.length - 2) : Status.EINVAL));
  }

  /** Holds `need` bytes of the worker's budget for the value arriving; false when they do not fit. */
  private reserve(need: number): boolean {
    if (!this.ctx.pending.take(need)) return false;
    this.reserved = need;
    return true;
  }

  private release(): void {
    this.ctx.pending.give(this.reserved);
    this.reserved = 0;
  }

  private request(buf: Buffer): void {
    const parser = this.ctx.parser;
    const cmd = parser.cmd;
    if (cmd === Cmd.VERSION || cmd === Cmd.VERBOSITY) {
      if (!parser.noreply) this.replyNow(this.local.reply(cmd), 0);
      return;
    }
    if (cmd === Cmd.MN) {
      // The end of a quiet batch: every reply before it is already in order.
      this.replyNow(wire.MN, 0);
      return;
    }
    if (cmd === Cmd.STATS) {
      const kind = this.local.statsKind(buf, parser);
      if (kind === STATS_FORWARD) this.forwardStats();
      else this.replyNow(kind === STATS_ANSWER ? this.local.answer : null, kind);
      return;
    }
    const req = this.ctx.dispatcher.pools.request();
    req.cmd = cmd;
    req.affinity = this.id;
    req.buf = buf;
    req.noreply = parser.noreply;
    req.setKeys(parser.keyOffsets, parser.keyCount);
    req.lineStart = parser.lineStart;
    req.forwardEnd = parser.forwardEnd;
    req.argStart = parser.argStart;
    req.argEnd = parser.argEnd;
    req.dataStart = parser.dataStart;
    req.bytes = parser.bytes;
    req.casStart = parser.casStart;
    req.metaFlags = parser.metaFlags;
    req.binOp = this.binOp;
    req.binOpaque = this.binOpaque;
    req.refs = 1;
    req.origin = this;
    if (parser.noreply) {
      // Nobody waits for the reply; the request lives only as long as its ops.
      this.ctx.dispatcher.submit(req);
      this.ctx.dispatcher.release(req);
      return;
    }
    req.client = this;
    this.push(req);
    this.ctx.dispatcher.submit(req);
  }

  /** A stats line for one server: its reply takes this request's place in the queue when it comes. */
  private forwardStats(): void {
    const dispatcher = this.ctx.dispatcher;
    const req = dispatcher.pools.request();
    // One reference for the queue, one for the server's answer (which may come after a close).
    req.refs = 2;
    req.cmd = Cmd.UNKNOWN;
    req.client = this;
    this.push(req);
    this.local.forward(req, (r) => dispatcher.release(r));
  }

  private push(req: Request): void {
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
  private replyNow(reply: Buffer | null, statsKind = 0): void {
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

  /** Whether the connection closes once no reply is owed. */
  private finishing(): boolean {
    return this.closing || (this.eof && !this.held);
  }

  private schedule(): void {
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

  /** Stops reading a client that has too much unanswered, resumes when it drains. */
  private checkPressure(): void {
    const socket = this.socket;
    if (socket === null) return;
    const unsent = socket.pending;
    if (this.held && this.holding === 0 && this.queued <= RESUME_QUEUED && unsent <= MAX_UNSENT && !this.closing) {
      this.held = false;
      this.parseInput();
      if (this.socket === null) return;
    }
    if (this.held || this.queued >= MAX_QUEUED || unsent > MAX_UNSENT) socket.pause();
    else socket.resume();
  }

  /** @internal One of this connection's requests waits before its master: the requests after it wait too. */
  holdNext(): void {
    this.holding++;
  }

  /**
   * @internal That request has gone to its master. Parsing goes on once the
   * dispatcher's current step is over (a microtask), not inside it.
   */
  readOn(): void {
    if (--this.holding === 0 && this.held) queueMicrotask(() => this.checkPressure());
  }

  /**
   * @internal The client shut its side of the connection. As memcached does,
   * everything it sent before is still answered (`printf 'get k\r\n' | nc -N`
   * gets its value); then the connection is closed.
   */
  ended(): void {
    this.eof = true;
    if (this.queued === 0 && !this.held) this.schedule();
  }

  /** @internal */ drained(): void {
    if (this.largeOut && this.socket !== null && this.socket.pending === 0) this.largeWritten();
    this.checkPressure();
  }

  private largeWritten(): void {
    this.largeOut = false;
    largeRequestDone();
  }

  /** @internal */ closed(): void {
    const socket = this.socket;
    if (socket === null) return;
    this.socket = null;
    // Requests still at the backends finish there; their replies go nowhere.
    while (this.queued > 0) {
      const req = this.queue[this.head]!;
      this.queue[this.head] = null;
      this.head = (this.head + 1) & (this.queue.length - 1);
      this.queued--;
      req.client = null;
      this.ctx.dispatcher.release(req);
    }
    this.outbox.clear();
    if (this.reserved > 0) this.release();
    this.local.clientClosed(this);
  }

  /**
   * Shutting down: keep answering what the client has already sent (bytes may
   * still be in flight towards us), and close once it has been quiet for a
   * moment with every reply written. The supervisor caps the whole drain.
   */
  drain(): void {
    if (this.socket === null || this.drainTimer !== null) return;
    this.lastData = performance.now();
    this.drainTimer = setInterval(checkDrained, DRAIN_QUIET_MS >> 1, this);
  }

  /** @internal */ checkDrained(): void {
    if (this.socket === null || (this.queued === 0 && performance.now() - this.lastData >= DRAIN_QUIET_MS)) {
      clearInterval(this.drainTimer!);
      if (this.socket === null) return;
      this.closing = true;
      this.replyReady();
    }
  }

  destroy(): void {
    this.socket?.destroy();
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

function checkDrained(client: ClientConnection): void { client.checkDrained(); }
