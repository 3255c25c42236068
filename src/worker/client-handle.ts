// A client connection's libuv stream handle (TCP or Unix socket), driven without
// a net.Socket.
//
// The worker does four things with a client's socket: read into the thread's
// arena, write replies, stop and restart reading under back-pressure, close. A
// net.Socket wraps the handle in a Readable and a Writable for that: about 2 KB
// more per connection (10,000 idle clients), and per read and per write its
// bookkeeping plus a process.nextTick. Here reads come straight from the handle's
// `onread` into the arena (useUserBuffer), and a write is one WriteWrap and the
// syscall. Node exposes WriteWrap and ShutdownWrap only through its internal
// stream_wrap binding (shared/stream-wrap.ts).
//
// Back-pressure: this class counts the bytes still queued in libuv (`pending`)
// and calls the owner's drained() whenever a queued write completes. Ordering
// holds: libuv does not try a write while earlier ones are queued, and the
// shutdown of end() waits for them.
//
// Closing: end() shuts the write side once the queued writes are out, then closes
// (memcached closes a connection after quit); destroy() closes now. Either way
// the owner hears closed() once, from the handle's close callback, never in the
// middle of a read or a write.

import { readArena } from '../protocol/io-buffers.js';
import type { Writable } from '../protocol/io-buffers.js';
import { lastWriteWasAsync, readResult, ShutdownWrap, WriteWrap } from '../shared/stream-wrap.js';

interface StreamHandle {
  readStart(): number;
  readStop(): number;
  useUserBuffer(buf: Uint8Array): void;
  writeBuffer(req: WriteReq, data: Buffer): number;
  writev(req: WriteReq, chunks: Buffer[], allBuffers: true): number;
  shutdown(req: ShutdownReq): number;
  close(callback: () => void): void;
  setNoDelay?: (enable: boolean) => number;
  /** Node accepts only a function here */
  onread: (this: StreamHandle) => void;
  /** set by this module: the handle's owner */
  client: ClientHandle | null;
}

/** Node calls a write request's `oncomplete` when libuv finishes it; the other fields are this module's own. */
interface WriteReq {
  oncomplete: (this: WriteReq, status: number) => void;
  bytes: number;
  buffer: Buffer | Buffer[] | null;
  client: ClientHandle | null;
}

interface ShutdownReq {
  oncomplete: (this: ShutdownReq, status: number) => void;
  client: ClientHandle | null;
}

/** What a client connection hears from its handle. */
export interface ClientHandleOwner {
  /** n bytes were read into readArena.scratch[0, n); take them before returning */
  receive(n: number): void;
  /** a queued write completed: `pending` went down */
  drained(): void;
  /** the client shut its side (EOF); reading has stopped, writing may go on */
  ended(): void;
  /** the handle is closed; called once */
  closed(): void;
}

export class ClientHandle implements Writable {
  /** bytes handed to libuv that it has not written yet */
  pending = 0;
  /** null once closing: nothing more is read or written */
  private handle: StreamHandle | null;
  /** between cork() and uncork(): the chunks to write as one writev */
  private batch: Buffer[] | null = null;
  private reading = false;
  /** end() was called: the write side is being shut down */
  private ending = false;
  /** the client shut its side: nothing more to read */
  private readEnded = false;

  /** Takes over a handle received from the main thread and starts reading it. */
  constructor(handle: object, private readonly owner: ClientHandleOwner) {
    const h = handle as StreamHandle;
    this.handle = h;
    h.client = this;
    h.onread = onRead;
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
    if (this.handle.readStart() !== 0) this.destroy();
  }

  write(data: Buffer): boolean {
    if (this.batch !== null) {
      this.batch.push(data);
      return true;
    }
    return this.send(data);
  }

  /** An Outbox with several chunks (a large value by reference) sends them as one writev. */
  cork(): void {
    this.batch = [];
  }

  uncork(): void {
    const chunks = this.batch;
    this.batch = null;
    if (chunks === null || chunks.length === 0) return;
    this.send(chunks.length === 1 ? chunks[0]! : chunks);
  }

  private send(data: Buffer | Buffer[]): boolean {
    const handle = this.handle;
    if (handle === null || this.ending) return false;
    // A write that libuv finishes at once leaves its request untouched: the next
    // write of any client of this thread takes it again.
    let req = spareWrite;
    if (req === null) {
      req = new WriteWrap<WriteReq>();
      req.oncomplete = onWriteComplete;
      req.bytes = 0;
      req.buffer = null;
      req.client = null;
    }
    const err = Array.isArray(data) ? handle.writev(req, data, true) : handle.writeBuffer(req, data);
    if (err !== 0) {
      spareWrite = null;
      this.destroy();
      return false;
    }
    spareWrite = req;
    if (lastWriteWasAsync()) {
      spareWrite = null;
      // libuv writes the rest later, from this memory: keep it alive until then.
      const bytes = Array.isArray(data) ? totalLength(data) : data.length;
      req.buffer = data;
      req.bytes = bytes;
      req.client = this;
      this.pending += bytes;
    }
    return true;
  }

  /** @internal */ written(req: WriteReq, status: number): void {
    this.pending -= req.bytes;
    req.buffer = null;
    req.client = null;
    if (status < 0) this.destroy();
    else if (this.handle !== null) this.owner.drained();
  }

  /** Closes once every queued write is out: shuts the write side down, then closes. */
  end(): void {
    const handle = this.handle;
    if (handle === null || this.ending) return;
    this.ending = true;
    this.pause();
    const req = new ShutdownWrap<ShutdownReq>();
    req.oncomplete = onShutdown;
    req.client = this;
    if (handle.shutdown(req) !== 0) this.destroy();
  }

  /** Closes now; what libuv still holds is dropped. */
  destroy(): void {
    const handle = this.handle;
    if (handle === null) return;
    this.handle = null;
    this.reading = false;
    handle.onread = ignoreRead;
    handle.close(() => {
      handle.client = null;
      this.owner.closed();
    });
  }

  /** @internal */ readDone(n: number): void {
    if (n > 0) this.owner.receive(n);
    else if (n === UV_EOF) {
      // The client shut its side: it may still read the replies to what it sent.
      this.pause();
      this.readEnded = true;
      this.owner.ended();
    } else if (n < 0) this.destroy();
  }
}

/** a write request no write holds (see send) */
let spareWrite: WriteReq | null = null;

/** libuv's UV_EOF */
const UV_EOF = -4095;

function onRead(this: StreamHandle): void {
  this.client?.readDone(readResult());
}

function ignoreRead(): void {}

function totalLength(chunks: readonly Buffer[]): number {
  let n = 0;
  for (let i = 0; i < chunks.length; i++) n += chunks[i]!.length;
  return n;
}

function onWriteComplete(this: WriteReq, status: number): void {
  this.client?.written(this, status);
}

function onShutdown(this: ShutdownReq, _status: number): void {
  const client = this.client;
  this.client = null;
  client?.destroy();
}
