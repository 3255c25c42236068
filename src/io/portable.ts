// The portable I/O path: the same ByteStream as io/raw-stream.ts, over a
// net.Socket, and the listeners each worker opens itself. Public APIs only
// (net.Socket, net.Server's `reusePort`, Node 22.12+), so it runs where the fast
// path's internals are missing or refused (`node --permission`). One exception,
// read where present: a TLS socket's stall watch (io/tls-stream.ts StallWatch)
// looks at two figures of its handle, through io/internals.ts `tlsHandle`.
//
//   worker: net.Server (reusePort: the kernel spreads the accepts over the
//           workers' listeners) --'connection'--> PortableStream(socket) --> owner
//   backend: net.connect({ onread: readArena.scratch }) --> PortableStream --> owner
//
// Reads reach the owner as on the fast path, in readArena.scratch: a backend
// connection reads straight into it (the `onread` option), an accepted client's
// chunk is copied there (net.Server has no `onread`). Back-pressure: `pending` is
// the socket's writableLength, and the owner hears drained() at 'drain', which
// comes whenever a write found the socket above its high-water mark: the owners
// only wait for it past that (a client past 4 MB unsent, a large reply).

import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ListenError } from '../errors.js';
import { clientOptions, type ServerTls } from '../config/tls.js';
import { tlsHandle } from './internals.js';
import { StallWatch, UV_EPIPE } from './tls-stream.js';
import { readArena } from './buffers.js';
import { UV_EAI_NONAME, type ByteStream, type ConnectingOwner, type StreamAddress, type StreamOwner } from './stream.js';

/** libuv's UV_UNKNOWN: an error without an errno (Node's own codes, such as a connect attempt timing out). */
const UV_UNKNOWN = -4094;

export class PortableStream implements ByteStream {
  /** null once closing: nothing more is read or written */
  private socket: net.Socket | null;
  private owner: StreamOwner;
  private reading = false;
  private ending = false;
  private readEnded = false;
  private connecting: boolean;
  /** the error that closed it, as a negative errno */
  private status = 0;
  /** the code of an error that has no errno (UV_UNKNOWN), such as a TLS failure */
  private detail: string | null = null;
  private done = false;
  /** a TLS socket whose handle shows its output queues (io/tls-stream.ts) */
  private stall: StallWatch | null = null;

  /** Takes over a connected socket (an accepted client), or from connect() one still connecting. */
  constructor(socket: net.Socket, owner: StreamOwner, connected = true) {
    this.socket = socket;
    this.owner = owner;
    this.connecting = !connected;
    socket.on('error', (err: NodeJS.ErrnoException) => this.failed(err));
    socket.on('close', () => this.closedNow());
    socket.on('end', () => this.readDone());
    socket.on('drain', () => { if (this.socket !== null) this.owner.drained(); });
    // The write side shut after the queued writes: close, as raw-stream's end() does.
    socket.on('finish', () => this.destroy());
    const tls = (socket as Partial<TLSSocket>).encrypted === true ? tlsHandle(socket) : null;
    // Progress: the bytes whose write completed (bytesWritten counts what is
    // buffered too, writableLength what has not completed).
    if (tls !== null) this.stall = new StallWatch(tls, () => (!this.connecting && socket.writableLength > 0 ? socket.bytesWritten - socket.writableLength : -1), () => this.destroy(UV_EPIPE));
    if (connected) {
      socket.on('data', (chunk: Buffer) => this.received(chunk));
      this.reading = true;
    }
  }

  /** Opens a connection; the owner hears connected(), or closed() with the error. */
  static connect(address: StreamAddress, owner: ConnectingOwner): PortableStream {
    let stream: PortableStream | null = null;
    const onread = { buffer: readArena.scratch, callback: (n: number): boolean => { stream?.receivedInScratch(n); return true; } };
    const options = address.path !== null
      ? { path: address.path, allowHalfOpen: true, onread }
      : { host: address.host, port: address.port, allowHalfOpen: true, noDelay: true, onread };
    const socket = net.connect(options);
    const s = stream = new PortableStream(socket, owner, false);
    socket.once('connect', () => {
      if (s.socket === null) return;
      s.connecting = false;
      s.reading = true;
      owner.connected();
    });
    return s;
  }

  /** Opens a TLS connection (a pool's masters_tls / backups_tls); the owner hears connected() once the handshake is done. */
  static connectTls(address: StreamAddress, settings: ServerTls, owner: ConnectingOwner): PortableStream {
    const socket = process.getBuiltinModule('node:tls').connect(clientOptions(settings, address.host, address.port));
    socket.setNoDelay(true);
    const s = new PortableStream(socket, owner, false);
    socket.once('secureConnect', () => {
      if (s.socket === null) return;
      s.connecting = false;
      socket.on('data', (chunk: Buffer) => s.received(chunk));
      s.reading = true;
      owner.connected();
    });
    return s;
  }

  get pending(): number {
    return this.socket === null ? 0 : this.socket.writableLength;
  }

  private received(chunk: Buffer): void {
    const scratch = readArena.scratch;
    // A read is at most 64 KB, the scratch's size: one pass in practice.
    for (let at = 0; at < chunk.length && this.socket !== null;) {
      const n = Math.min(scratch.length, chunk.length - at);
      chunk.copy(scratch, 0, at, at + n);
      at += n;
      this.owner.receive(n);
    }
  }

  /** @internal */ receivedInScratch(n: number): void {
    if (this.socket !== null && n > 0) this.owner.receive(n);
  }

  private readDone(): void {
    if (this.socket === null) return;
    // The peer shut its side: it may still read the replies to what it sent.
    this.pause();
    this.readEnded = true;
    this.owner.ended();
  }

  private failed(err: NodeJS.ErrnoException): void {
    if (this.status === 0) {
      this.status = typeof err.errno === 'number' ? err.errno : err.code === 'ENOTFOUND' ? UV_EAI_NONAME : UV_UNKNOWN;
      // An error without an errno (a TLS alert, a certificate that does not verify): its own code says what happened.
      if (this.status === UV_UNKNOWN) this.detail = err.code ?? err.message;
    }
    // Node destroys a socket after its own errors, but not after a TLS
    // session's (a record that does not decrypt): destroy it here. 'close' follows.
    const socket = this.socket;
    this.socket = null;
    socket?.destroy();
  }

  private closedNow(): void {
    this.socket = null;
    this.stall?.stop();
    if (this.done) return;
    this.done = true;
    this.owner.closed(this.status, this.detail ?? undefined);
  }

  pause(): void {
    if (this.socket === null || !this.reading) return;
    this.reading = false;
    this.socket.pause();
  }

  resume(): void {
    if (this.socket === null || this.reading || this.readEnded || this.ending || this.connecting) return;
    this.reading = true;
    this.socket.resume();
  }

  write(data: Buffer): void {
    if (this.socket === null || this.ending) return;
    this.socket.write(data);
    this.stall?.arm();
  }

  /** Several chunks as one writev (cork gathers them). */
  writev(chunks: Buffer[]): void {
    const socket = this.socket;
    if (socket === null || this.ending) return;
    socket.cork();
    for (let i = 0; i < chunks.length; i++) socket.write(chunks[i]!);
    socket.uncork();
    this.stall?.arm();
  }

  end(): void {
    const socket = this.socket;
    if (socket === null || this.ending) return;
    this.ending = true;
    this.pause();
    socket.end();
  }

  destroy(status = 0): void {
    const socket = this.socket;
    if (socket === null) return;
    this.stall?.stop();
    this.socket = null;
    if (this.status === 0) this.status = status;
    socket.destroy();
  }

  abandon(): void {
    this.owner = SILENT;
    this.destroy();
  }
}

function noop(): void {}
const SILENT: StreamOwner = { receive: noop, drained: noop, ended: noop, closed: noop };

/** A worker's client listener: its own socket on the shared port. */
export interface ListenAt {
  readonly host: string;
  readonly port: number;
  /** the listener speaks TLS (config/tls.ts) */
  readonly tls: boolean;
}

/**
 * Listens on every address with SO_REUSEPORT, so that each worker has its own
 * listener on the same port and the kernel spreads new connections over them.
 * Rejects with the address that failed.
 */
export async function listenShared(
  addresses: readonly ListenAt[], onSocket: (socket: net.Socket, tls: boolean) => void, onError: (err: Error) => void,
): Promise<net.Server[]> {
  const servers: net.Server[] = [];
  try {
    for (const a of addresses) {
      const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => onSocket(socket, a.tls));
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: a.host, port: a.port, backlog: 1024, reusePort: true }, () => {
          server.off('error', reject);
          server.on('error', onError);
          resolve();
        });
      }).catch((err: Error) => { throw new ListenError(`listen ${a.host}:${a.port} (reusePort): ${err.message}`, { cause: err }); });
    }
  } catch (err) {
    for (const s of servers) s.close();
    throw err;
  }
  return servers;
}

/**
 * Before the workers listen with reusePort: a plain listen on the address, at
 * once closed. It fails where anything listens already, as the fast path's
 * listener would: the kernel would otherwise let a second mcrelay of the same
 * user share the port and take part of its clients. Port 0 comes back as the
 * free port found, for every worker to share (each worker's port 0 would be its own).
 */
export function claimPort(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', (err) => reject(new ListenError(`listen ${host}:${port}: ${err.message}`, { cause: err })));
    s.listen({ host, port }, () => {
      const bound = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(bound));
    });
  });
}
