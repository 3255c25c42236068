// One client connection inside a worker.
//
//   socket read --> InputBuffer --> RequestParser --> Request --> Dispatcher.submit
//   socket      <-- Outbox <-- reply queue (strictly in request order) <--'
//
// Requests go to the backends as soon as they are parsed (pipelined); replies are
// written in request order when the request at the head of the queue is done
// (the reply queue: reply-queue.ts, which this class extends; here, the input
// side). A client that does not read its replies is paused once too much is pending.
//
// The first byte of a connection picks its protocol, as memcached's -B auto does:
// 0x80 is the binary protocol, whose requests are translated into text ones
// (protocol/binary-request.ts) and then go the same way; their replies are
// encoded back (protocol/binary-reply.ts).
//
// With auth_file set, nothing is parsed before the client has authenticated
// (worker/auth.ts): its first bytes must be the auth `set`.

import { performance } from 'node:perf_hooks';
import { Cmd } from '../protocol/commands.js';
import { InputBuffer, readArena } from '../io/buffers.js';
import { META_BASE64 } from '../protocol/meta-request.js';
import { Parse } from '../protocol/request-rules.js';
import { Bin, BinaryParser, MAGIC_REQUEST } from '../protocol/binary-request.js';
import { errorResponse, statsResponse, statusOf, Status } from '../protocol/binary-reply.js';
import * as wire from '../protocol/wire.js';
import { C } from '../shared/counters.js';
import { STATS_ANSWER, STATS_FORWARD, type LocalCommands } from './local.js';
import { ReplyQueue, type ClientWorker } from './reply-queue.js';
import { adoptStream } from '../io/open-stream.js';
import { debugEnabled, log } from '../log.js';
import { Auth, type PasswordGate } from './auth.js';
import { isTlsHello } from '../protocol/tls-hello.js';

/** While draining, a client quiet this long with nothing owed is closed. */
const DRAIN_QUIET_MS = 100;
/** Requests in flight per client before its input stops being parsed and read. */
const MAX_QUEUED = 256;
/** ... and when it is parsed again. */
const RESUME_QUEUED = MAX_QUEUED >> 1;
/** Reply bytes waiting in the socket before the client stops being read. */
const MAX_UNSENT = 4 * 1024 * 1024;

let nextId = 0;

export class ClientConnection extends ReplyQueue {
  readonly id = nextId++ & 0x3fffffff;
  private readonly input = new InputBuffer();
  /** bytes the parser wants before it can continue (a large value), 0 if unknown */
  private need = 0;
  /** bytes of a refused data block still to discard */
  private swallow = 0;
  /** bytes this client holds in the worker's PendingBytes for a value still arriving */
  private reserved = 0;
  /** quit or a fatal error was read: close once earlier replies are out */
  private closing = false;
  /** the client shut its side: close once everything it sent is answered */
  private eof = false;
  /** parsing stopped at MAX_QUEUED, or behind a held request, with input left over */
  private held = false;
  /** requests of this connection waiting before their master (Dispatcher.hold): parsing waits for them */
  private holding = 0;
  /** set while the worker drains (shutdown) */
  private drainTimer: NodeJS.Timeout | null = null;
  private lastData = 0;
  /** null until the first byte came, then false (text) or the binary front end */
  private binary: BinaryParser | false | null = null;
  /** the binary request being translated: its opcode and opaque */
  private binOp = -1;
  private binOpaque = 0;
  /** auth_file is set and this client has not authenticated yet */
  private authenticating: boolean;
  /** the users in force when it connected: what judges it if a reload turns authentication off before it is in */
  private readonly gate: PasswordGate | null;

  constructor(
    /** the connection: a libuv handle received from the main thread, or a net.Socket (--io portable) */
    handle: object,
    ctx: ClientWorker,
    local: LocalCommands,
  ) {
    super(ctx, local);
    this.gate = ctx.auth;
    this.authenticating = ctx.auth !== null;
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
    // A TLS client on a plain listener: its hello would read as lines of junk (or
    // as a broken auth set). Closing at once lets it fail its handshake now
    // rather than on a timeout.
    if (this.binary === null && isTlsHello(input.buf, input.pos, input.end)) {
      if (debugEnabled()) log.debug('a TLS handshake on a plain listener: closed', { client: this.id });
      this.destroy();
      return;
    }
    if (this.authenticating && !this.authenticate()) return;
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

  /**
   * The client's first bytes, before it has authenticated: true once it has
   * (STORED is answered, and what follows is parsed as usual); false while
   * they are incomplete, or when it is refused and closes.
   */
  private authenticate(): boolean {
    // The file in force now; if a reload has turned authentication off, the
    // one it connected under (else a half-sent auth set would be read as a
    // set, and store the password).
    const auth = this.ctx.auth ?? this.gate!;
    const input = this.input;
    const r = auth.read(input.buf, input.pos, input.end);
    if (r === Auth.NEED_MORE) return false;
    if (r === Auth.REFUSED) {
      this.authRefused(auth.reply, auth.reason);
      return false;
    }
    input.consume(auth.next);
    this.authenticating = false;
    this.replyNow(wire.STORED);
    return true;
  }

  /** Refused before authenticating: counted (stats auth_failures), answered, closed. Never logs what the client sent. */
  private authRefused(reply: Buffer | null, why: string): void {
    this.ctx.dispatcher.counters[C.AUTH_FAILURES]!++;
    if (debugEnabled()) log.debug('client refused: authentication failed', { client: this.id, reason: why });
    this.input.consume(this.input.end);
    this.closeAfter(reply);
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

  protected override finishing(): boolean {
    return this.closing || (this.eof && !this.held);
  }

  protected override checkPressure(): void {
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

  /** @internal */ closed(): void {
    const socket = this.socket;
    if (socket === null) return;
    this.socket = null;
    this.dropReplies();
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

function checkDrained(client: ClientConnection): void { client.checkDrained(); }
