// A libuv stream handle (TCP or Unix socket) driven without a net.Socket: the
// client connections a worker receives from the main thread, and the worker's
// own connections to memcached servers. The fast path; io/portable.ts is the
// same with a net.Socket.
//
// A worker does five things with a socket: connect (backends), read into the
// thread's arena, write, stop and restart reading under back-pressure, close. A
// net.Socket wraps the handle in a Readable and a Writable for that: about 2 KB
// more per connection (10,000 idle clients), and per read and per write its
// bookkeeping, a process.nextTick and (for a write) a request object. Here reads
// come straight from the handle's `onread` into the arena (useUserBuffer), and a
// write is one WriteWrap and the syscall. Node exposes the handles and their
// request objects only through its internal bindings (io/internals.ts).
//
// A TLS client, once its handshake is done, is driven the same way: its session
// handle is such a stream handle (io/tls-stream.ts, a subclass).
//
// Back-pressure: this class counts the bytes still queued in libuv (`pending`)
// and calls the owner's drained() whenever a queued write completes. Ordering
// holds: libuv does not try a write while earlier ones are queued, and the
// shutdown of end() waits for them.
//
// Closing: end() shuts the write side once the queued writes are out, then closes
// (memcached closes a connection after quit); destroy() closes now; abandon()
// closes now and tells the owner nothing more. Otherwise the owner hears
// closed() once, from the handle's close callback, never in the middle of a read
// or a write.

import { lookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import { getSystemErrorMap } from 'node:util';
import { readArena } from './buffers.js';
import { internals, lastWriteWasAsync, readResult, type Internals, type UvStream as Handle } from './internals.js';
import { UV_EAI_NONAME, type ByteStream, type ConnectingOwner, type StreamAddress, type StreamOwner } from './stream.js';

export interface UvStream extends Handle {
  /** Node accepts only a function here */
  onread: (this: UvStream) => void;
  /** set by this module: the handle's owner */
  stream: RawStream | null;
}

/** This thread's internals, taken on the first stream (never at import: the portable path imports this module too). */
let uv: Internals | null = null;

export function bind(): Internals {
  return uv ??= internals();
}

/** Node calls a write request's `oncomplete` when libuv finishes it; the other fields are this module's own. */
export interface WriteReq {
  oncomplete: (this: WriteReq, status: number) => void;
  bytes: number;
  buffer: Buffer | Buffer[] | null;
  stream: RawStream | null;
}

interface ShutdownReq {
  oncomplete: (this: ShutdownReq, status: number) => void;
  stream: RawStream | null;
}

interface ConnectReq {
  oncomplete: (this: ConnectReq, status: number) => void;
  stream: RawStream | null;
}

/** A connect() under way: where to, the addresses of the name still to try, the attempt in flight and its timer. */
interface Connecting {
  readonly address: StreamAddress;
  candidates: LookupAddress[];
  attempt: ConnectReq | null;
  /** set while other addresses are left: gives up on the attempt after ATTEMPT_TIMEOUT_MS */
  timer: NodeJS.Timeout | null;
}

export class RawStream implements ByteStream {
  /** bytes handed to libuv that it has not written yet */
  pending = 0;
  /** null once closing: nothing more is read or written */
  protected handle: UvStream | null;
  protected owner: StreamOwner;
  private reading = false;
  /** end() was called: the write side is being shut down */
  protected ending = false;
  /** the peer shut its side: nothing more to read */
  private readEnded = false;
  /** set from connect() until the stream is connected or closes */
  private connecting: Connecting | null = null;

  /**
   * Takes over a connected handle (one received from the main thread) and starts
   * reading it; or, from connect(), a handle not connected yet.
   */
  constructor(handle: object, owner: StreamOwner, connected = true) {
    bind();
    this.handle = this.adopt(handle as UvStream);
    this.owner = owner;
    if (connected) this.opened();
  }

  /** Routes the handle's reads to this stream. */
  private adopt(h: UvStream): UvStream {
    h.stream = this;
    h.onread = onRead;
    return h;
  }

  /** Opens a connection; the owner hears connected(), or closed() with the error. */
  static connect(address: StreamAddress, owner: ConnectingOwner): RawStream {
    const { Pipe, pipeTypes, TCP, tcpTypes } = bind();
    const stream = new RawStream(address.path !== null ? new Pipe<UvStream>(pipeTypes.SOCKET) : new TCP<UvStream>(tcpTypes.SOCKET), owner, false);
    const connecting: Connecting = { address, candidates: [], attempt: null, timer: null };
    stream.connecting = connecting;
    const family = isIP(address.host);
    if (address.path !== null || family !== 0) stream.connectTo(address.host, family);
    else {
      lookup(address.host, { all: true }, (err, addresses) => {
        if (stream.handle === null) return;
        if (err !== null || addresses.length === 0) return stream.destroy(typeof err?.errno === 'number' ? err.errno : UV_EAI_NONAME);
        connecting.candidates = addresses;
        stream.tryNext(connecting);
      });
    }
    return stream;
  }

  private tryNext(connecting: Connecting): void {
    const next = connecting.candidates.shift()!;
    this.connectTo(next.address, next.family);
  }

  private connectTo(address: string, family: number): void {
    const handle = this.handle!;
    const connecting = this.connecting!;
    const { path, port } = connecting.address;
    const req = path !== null ? new uv!.PipeConnectWrap<ConnectReq>() : new uv!.TCPConnectWrap<ConnectReq>();
    req.oncomplete = onConnect;
    req.stream = this;
    const err = path !== null ? handle.connect(req, path)
      : family === 6 ? handle.connect6(req, address, port) : handle.connect(req, address, port);
    // libuv refuses some at once (an IPv6 address on a host without IPv6).
    if (err !== 0) return this.attemptFailed(err);
    connecting.attempt = req;
    // An address that drops packets would hold the connect until the kernel gives
    // up (minutes): with other addresses left, move on after a while, as
    // net.connect's autoSelectFamily does.
    if (connecting.candidates.length > 0) connecting.timer = setTimeout(attemptTimedOut, ATTEMPT_TIMEOUT_MS, this);
  }

  /** @internal */ connectDone(status: number): void {
    if (this.handle === null) return;
    this.endAttempt();
    if (status !== 0) return this.attemptFailed(status);
    this.connecting = null;
    this.opened();
    (this.owner as ConnectingOwner).connected();
  }

  /** @internal */ attemptTimedOut(): void {
    this.connecting!.timer = null;
    if (this.handle !== null) this.attemptFailed(UV_ETIMEDOUT);
  }

  /** Forgets the connect in flight: its late completion (or cancellation) is ignored. */
  private endAttempt(): void {
    const c = this.connecting;
    if (c === null) return;
    if (c.attempt !== null) { c.attempt.stream = null; c.attempt = null; }
    if (c.timer !== null) { clearTimeout(c.timer); c.timer = null; }
  }

  /** A connect failed: the next address of the name if one is left, else the stream closes with `status`. */
  private attemptFailed(status: number): void {
    const handle = this.handle!;
    this.endAttempt();
    const connecting = this.connecting!;
    if (connecting.candidates.length === 0) return this.destroy(status);
    // A name with several addresses (localhost: ::1 and 127.0.0.1): the next one,
    // on a fresh handle (a socket whose connect failed is not reused).
    handle.stream = null;
    handle.onread = ignoreRead;
    handle.close(noop);
    this.handle = this.adopt(new uv!.TCP<UvStream>(uv!.tcpTypes.SOCKET));
    this.tryNext(connecting);
  }

  protected opened(): void {
    const h = this.handle!;
    h.useUserBuffer(readArena.scratch);
    if (typeof h.setNoDelay === 'function') h.setNoDelay(true);
    this.resume();
  }

  /** Stops reading (back-pressure); idempotent, as is resume(). */
  pause(): void {
    if (this.handle === null || !this.reading) return;
    this.reading = false;
    this.handle.readStop();
  }

  resume(): void {
    if (this.handle === null || this.reading || this.readEnded || this.ending) return;
    this.reading = true;
    const err = this.handle.readStart();
    if (err !== 0) this.destroy(err);
  }

  write(data: Buffer): void {
    this.send(data);
  }

  /** Several chunks (an Outbox holding a large value by reference) as one writev. */
  writev(chunks: Buffer[]): void {
    this.send(chunks);
  }

  /** Nothing is sent once the stream is closing or ending. */
  protected send(data: Buffer | Buffer[]): void {
    const handle = this.handle;
    if (handle === null || this.ending) return;
    // A write that libuv finishes at once leaves its request untouched: the next
    // write of any stream of this thread takes it again.
    let req = spareWrite;
    if (req === null) {
      req = new uv!.WriteWrap<WriteReq>();
      req.oncomplete = onWriteComplete;
      req.bytes = 0;
      req.buffer = null;
      req.stream = null;
    }
    const err = Array.isArray(data) ? handle.writev(req, data, true) : handle.writeBuffer(req, data);
    if (err !== 0) {
      spareWrite = null;
      this.destroy(err);
      return;
    }
    spareWrite = req;
    if (lastWriteWasAsync()) {
      spareWrite = null;
      // libuv writes the rest later, from this memory: keep it alive until then.
      const bytes = Array.isArray(data) ? totalLength(data) : data.length;
      req.buffer = data;
      req.bytes = bytes;
      req.stream = this;
      this.pending += bytes;
    }
  }

  /** @internal */ written(req: WriteReq, status: number): void {
    this.pending -= req.bytes;
    req.buffer = null;
    req.stream = null;
    if (status < 0) this.destroy(status);
    else if (this.handle !== null) this.owner.drained();
  }

  /** Closes once every queued write is out: shuts the write side down, then closes. */
  end(): void {
    const handle = this.handle;
    if (handle === null || this.ending) return;
    this.ending = true;
    this.pause();
    this.shutdown(handle);
  }

  protected shutdown(handle: UvStream): void {
    const req = new uv!.ShutdownWrap<ShutdownReq>();
    req.oncomplete = onShutdown;
    req.stream = this;
    const err = handle.shutdown(req);
    if (err !== 0) this.destroy(err);
  }

  /** Closes now; what libuv still holds is dropped. `status`: the libuv error that is the reason, if any. */
  destroy(status = 0): void {
    const handle = this.handle;
    if (handle === null) return;
    this.endAttempt();
    this.handle = null;
    this.reading = false;
    handle.onread = ignoreRead;
    handle.close(() => {
      handle.stream = null;
      this.owner.closed(status);
    });
  }

  /** Closes now, and the owner hears nothing more from this stream. */
  abandon(): void {
    this.owner = SILENT;
    this.destroy();
  }

  /** @internal */ readDone(n: number): void {
    if (n > 0) this.owner.receive(n);
    else if (n === UV_EOF) {
      // The peer shut its side: it may still read the replies to what it sent.
      this.pause();
      this.readEnded = true;
      this.owner.ended();
    } else if (n < 0) this.destroy(n);
  }
}

/** a write request no write holds (see send) */
let spareWrite: WriteReq | null = null;

/** libuv's UV_EOF */
const UV_EOF = -4095;
/** libuv's UV_ETIMEDOUT */
const UV_ETIMEDOUT = [...getSystemErrorMap()].find(([, [name]]) => name === 'ETIMEDOUT')![0];
/** how long one address of several may take to connect before the next is tried (net's autoSelectFamilyAttemptTimeout default) */
const ATTEMPT_TIMEOUT_MS = 250;

const SILENT: StreamOwner = { receive: noop, drained: noop, ended: noop, closed: noop };

function noop(): void {}

function onRead(this: UvStream): void {
  this.stream?.readDone(readResult());
}

function ignoreRead(): void {}

export function totalLength(chunks: readonly Buffer[]): number {
  let n = 0;
  for (let i = 0; i < chunks.length; i++) n += chunks[i]!.length;
  return n;
}

export function onWriteComplete(this: WriteReq, status: number): void {
  this.stream?.written(this, status);
}

function onShutdown(this: ShutdownReq, _status: number): void {
  const stream = this.stream;
  this.stream = null;
  stream?.destroy();
}

function attemptTimedOut(stream: RawStream): void {
  stream.attemptTimedOut();
}

function onConnect(this: ConnectReq, status: number): void {
  const stream = this.stream;
  this.stream = null;
  stream?.connectDone(status);
}
