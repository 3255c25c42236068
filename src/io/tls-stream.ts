// A TLS client on the fast path, once its handshake is done (issue 18): the
// worker drives the session's handle (Node's TLSWrap, over the TCP handle) as
// raw-stream.ts drives TCP handles. TLSWrap has the same stream methods; it
// encrypts what is written and decrypts into the read arena. The TLSSocket did
// the handshake (worker/tls-clients.ts) and keeps the handle without reading or
// writing it; what it still reports (its TCP socket's errors, a client
// renegotiating past Node's limit, its own close) closes this stream.
//
// Where TLSWrap differs from a TCP handle:
// - One write at a time: a second while the first is out fails a CHECK in Node
//   and aborts the process. Writes made meanwhile wait in `queued` and go as one
//   writev when it completes; the shutdown of end() waits for them.
// - Its writes complete later, never at once: each takes a fresh request, made
//   ready before the call, because an error of the TCP write that TLSWrap makes
//   inside the call (a peer that reset) completes it there and then.
// - OpenSSL's failures (a record that does not decrypt, an alert) come through
//   the handle's `onerror`.
// - TLSWrap drops the error of a TCP write it made for itself (a session
//   ticket, to a client that reset just after its handshake) with none of ours
//   out, and then waits for that write for ever: its encrypted output stays
//   queued while the TCP handle holds nothing, and the next read is an end of
//   input, so the client looks half-closed and its replies never go. A session
//   found so on two checks a second apart, with no write completed between
//   them, is closed (StallWatch, which io/portable.ts uses on a TLS socket too:
//   Node's own writes wait the same).

import type tls from 'node:tls';
import { getSystemErrorMap } from 'node:util';
import { tlsHandle, type TlsHandle } from './internals.js';
import { bind, onWriteComplete, RawStream, totalLength, type UvStream, type WriteReq } from './raw-stream.js';
import type { StreamOwner } from './stream.js';

/** libuv's UV_EPROTO: a TLS session's failure (a bad record, an alert) */
const UV_EPROTO = [...getSystemErrorMap()].find(([, [name]]) => name === 'EPROTO')![0];
/** libuv's UV_EPIPE: a session whose encrypted output no longer goes out */
export const UV_EPIPE = [...getSystemErrorMap()].find(([, [name]]) => name === 'EPIPE')![0];
/** how often a session with a write out is checked for stalled output */
const STALL_CHECK_MS = 1000;

export class TlsStream extends RawStream {
  /** writes made while one is out */
  private queued: Buffer[] = [];
  /** a write is out */
  private writing = false;
  /** inside writeBuffer/writev: a completion that comes now is taken when the call returns */
  private inCall = false;
  private completedInCall: number | null = null;
  /** writes completed: the stall watch's measure of progress */
  private completed = 0;
  private readonly stall: StallWatch;

  /**
   * Takes over a TLS client whose handshake is done; null when this Node's TLS
   * socket has no handle to drive, or when it has already read data the handle
   * would not give again: the caller keeps the net.Socket (io/portable.ts).
   */
  static adopt(socket: tls.TLSSocket, owner: StreamOwner): TlsStream | null {
    const handle = tlsHandle(socket);
    if (handle === null || socket.readableLength > 0) return null;
    // The TLS socket started reading for itself: start again, into the arena.
    handle.readStop();
    const stream = new TlsStream(handle, owner);
    handle.onerror = onTlsError;
    socket.on('error', () => stream.destroy(UV_EPROTO));
    socket.once('close', () => stream.destroy());
    return stream;
  }

  private constructor(handle: TlsHandle, owner: StreamOwner) {
    super(handle, owner, false);
    this.stall = new StallWatch(handle, () => (this.writing ? this.completed : -1), () => this.destroy(UV_EPIPE));
    this.opened();
  }

  protected override send(data: Buffer | Buffer[]): void {
    if (this.handle === null || this.ending) return;
    if (!this.writing) return this.sendNow(data);
    const queued = this.queued;
    if (Array.isArray(data)) for (let i = 0; i < data.length; i++) queued.push(data[i]!);
    else queued.push(data);
    this.pending += Array.isArray(data) ? totalLength(data) : data.length;
  }

  private sendNow(data: Buffer | Buffer[]): void {
    const handle = this.handle!;
    const req = new (bind().WriteWrap)<WriteReq>();
    req.oncomplete = onWriteComplete;
    req.buffer = data;
    req.bytes = Array.isArray(data) ? totalLength(data) : data.length;
    req.stream = this;
    this.pending += req.bytes;
    this.writing = true;
    this.inCall = true;
    const err = Array.isArray(data) ? handle.writev(req, data, true) : handle.writeBuffer(req, data);
    this.inCall = false;
    if (err !== 0) {
      req.stream = null;
      this.pending -= req.bytes;
      this.writing = false;
      return this.destroy(err);
    }
    const early = this.completedInCall;
    if (early !== null) {
      this.completedInCall = null;
      return this.written(req, early);
    }
    this.stall.arm();
  }

  /** @internal */ override written(req: WriteReq, status: number): void {
    if (this.inCall) {
      this.completedInCall = status;
      return;
    }
    this.pending -= req.bytes;
    req.buffer = null;
    req.stream = null;
    this.writing = false;
    this.completed++;
    if (status < 0) return this.destroy(status);
    if (this.handle === null) return;
    const queued = this.queued;
    if (queued.length > 0) {
      this.queued = [];
      this.pending -= totalLength(queued);
      this.sendNow(queued.length === 1 ? queued[0]! : queued);
      if (this.handle === null) return;
    }
    // end() came while a write was out: the writes are done now.
    if (this.ending && !this.writing) this.shutdown(this.handle);
    if (this.handle !== null) this.owner.drained();
  }

  override end(): void {
    if (this.handle === null || this.ending) return;
    if (!this.writing) return super.end();
    // The shutdown follows the writes (written).
    this.ending = true;
    this.pause();
  }

  override destroy(status = 0): void {
    this.stall.stop();
    super.destroy(status);
  }
}

/**
 * Watches a TLS session with a write out for the stall described above: a check
 * every second while `progress()` says a write is out (a measure of the writes
 * completed so far; -1 when none is out), and `stalled()` when two checks in a
 * row find the session's encrypted output waiting (`writeQueueSize`: what
 * TLSWrap has encrypted and the TCP write has not yet completed) while its TCP
 * handle holds nothing, and no write completed between them. Healthy, that
 * state ends within a turn of the loop, when TLSWrap hears of the TCP write's
 * completion; a client that reads slowly keeps bytes in the TCP handle.
 */
export class StallWatch {
  private timer: NodeJS.Timeout | null = null;
  /** progress() at the last check, if it found the output waiting; else -1 */
  private waitingAt = -1;

  constructor(private readonly handle: TlsHandle, private readonly progress: () => number, private readonly stalled: () => void) {}

  /** After a write: checks from a second on, if not already. */
  arm(): void {
    if (this.timer === null) this.timer = setTimeout(check, STALL_CHECK_MS, this).unref();
  }

  stop(): void {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
  }

  /** @internal */ check(): void {
    this.timer = null;
    const progress = this.progress();
    if (progress < 0) {
      this.waitingAt = -1;
      return;
    }
    const waiting = this.handle.writeQueueSize > 0 && this.handle._parent.writeQueueSize === 0;
    if (waiting && progress === this.waitingAt) return this.stalled();
    this.waitingAt = waiting ? progress : -1;
    this.arm();
  }
}

function check(watch: StallWatch): void {
  watch.check();
}

function onTlsError(this: TlsHandle): void {
  (this as unknown as UvStream).stream?.destroy(UV_EPROTO);
}
