// Moving an accepted client socket from the main thread to a worker thread.
//
// Worker threads share the process's descriptor table, but a descriptor belongs to
// the libuv handle that wraps it: two threads may not both own it. So the socket
// is passed the way Node's cluster module passes it between processes: written
// over a local IPC pipe with SCM_RIGHTS, which makes the kernel give the receiver
// a new descriptor of its own; the main thread then closes its copy. Node exposes
// IPC pipes only through its internal pipe_wrap binding (what child_process uses),
// reached through process.binding in io/internals.ts.
//
//   main: listener handle --onconnection (takeAccepts)--> HandoffServer (one per
//         worker) --accept, token checked--> IPC pipe --write(handle)-->
//   worker: HandoffReceiver (IPC pipe, sends the token) --onread: pendingHandle-->
//           RawStream (io/raw-stream.ts)
//
// Whoever becomes a worker's pipe receives that worker's clients, so no other
// process may. Node has no socketpair() and no SO_PEERCRED, hence three locks:
// - the pipe is a socket file of mode 0600 (chmod before listen()): the kernel
//   refuses a process of another uid at connect(), before any connection exists;
// - the worker's first bytes must be a random token it got in workerData, which
//   never leaves the process: a connection of the same uid (or root) that does not
//   send it is closed, logged, and never sent a socket;
// - the listener closes (and libuv unlinks its file) as soon as the worker is in.
//
// libuv only reads or writes descriptors on a pipe opened as IPC, and a pipe that
// comes out of accept() never is; the main thread therefore re-opens the accepted
// descriptor as an IPC pipe and parks the accepted handle unclosed (closing it
// would close the descriptor under the IPC pipe). One parked handle per worker
// start: bounded by the number of worker (re)starts.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { getSystemErrorName } from 'node:util';
import { HandoffError } from '../errors.js';
import { log } from '../log.js';
import { internals, lastWriteWasAsync, listenerHandle, readResult, type AcceptedHandle, type PipeHandle } from './internals.js';

export type { AcceptedHandle } from './internals.js';

/** sun_path's size, less its terminating NUL. */
export const MAX_SOCKET_PATH = 107;
/** Node calls `oncomplete` when a write it could not finish at once is done. */
interface HandoffWrite { oncomplete: () => void }

const parked: PipeHandle[] = [];
const ignoreRead = (): void => {};

/** A token is 32 hex characters; what a peer sends is read into this, one peer at a time per read. */
const TOKEN_BYTES = 16;
const peerBuffer = new Uint8Array(64);
/** Connections that have not sent the token yet, per worker; past it the oldest is closed. */
const MAX_UNVERIFIED = 8;
/** How long a connection may take to send the token (the worker sends it with its connect). */
const TOKEN_WAIT_MS = 2000;

/**
 * Has `server` give each accepted connection's handle to `onHandle` instead of
 * wrapping it in a net.Socket: the main thread only passes connections on, and a
 * Socket per accept left its heap 26 MB larger after 10,000 connections.
 */
export function takeAccepts(server: net.Server, onHandle: (handle: AcceptedHandle) => void, onError: (status: number) => void): void {
  listenerHandle(server).onconnection = (status, handle) => {
    if (status !== 0 || handle === undefined) onError(status);
    else onHandle(handle);
  };
}

/** Main-thread end for one worker: accepts the worker's pipe, then sends sockets on it. */
export class HandoffServer {
  readonly path: string;
  /** what the worker must send first; give it to the worker only (workerData) */
  readonly token: string;
  private server: PipeHandle | null;
  private ipc: PipeHandle | null = null;
  private readonly unverified = new Map<PipeHandle, NodeJS.Timeout>();
  private readonly ready: Promise<void>;
  private resolve: () => void = () => {};

  constructor(readonly name: string) {
    this.token = randomBytes(TOKEN_BYTES).toString('hex');
    // A random name: another process cannot have made it in advance (bind would
    // fail rather than reuse it), and /proc/net/unix shows it only once it exists.
    this.path = path.join(os.tmpdir(), `mcrelay-${process.pid}-${name}-${randomBytes(6).toString('hex')}.sock`);
    if (Buffer.byteLength(this.path) > MAX_SOCKET_PATH) {
      throw new HandoffError(`handoff pipe ${name}: ${this.path} is longer than a unix socket path may be (set TMPDIR to a shorter directory)`);
    }
    const { Pipe, pipeTypes } = internals();
    const server = new Pipe<PipeHandle>(pipeTypes.SERVER);
    let err = server.bind(this.path);
    if (err === 0) {
      // Before listen(): until then a connect() is refused whatever the mode.
      try { fs.chmodSync(this.path, 0o600); } catch { err = -1; }
    }
    if (err === 0) err = server.listen(MAX_UNVERIFIED);
    if (err !== 0) {
      server.close();
      throw new HandoffError(`handoff pipe ${name}: cannot listen on ${this.path} (${err < 0 ? getSystemErrorName(err) : err})`);
    }
    this.server = server;
    this.ready = new Promise((resolve) => { this.resolve = resolve; });
    server.onconnection = (status: number, client: PipeHandle) => {
      if (status === 0) this.vet(client);
    };
  }

  /** Resolves once the worker has connected and sent its token. */
  connected(): Promise<void> { return this.ready; }

  /** Reads a new connection's first bytes; only the token makes it the worker's pipe. */
  private vet(client: PipeHandle): void {
    // The oldest goes, not the newest: the worker sends its token as it
    // connects, so a flood of silent connections cannot keep it out.
    if (this.unverified.size >= MAX_UNVERIFIED) this.refuse(this.unverified.keys().next().value!, 'too many connections waiting');
    this.unverified.set(client, setTimeout(() => this.refuse(client, 'no token in time'), TOKEN_WAIT_MS));
    let got = '';
    client.useUserBuffer(peerBuffer);
    client.onread = () => {
      const n = readResult();
      if (n < 0) { this.refuse(client, 'closed before sending the token'); return; }
      got += Buffer.from(peerBuffer.buffer, peerBuffer.byteOffset, n).toString('latin1');
      if (got.length < this.token.length && this.token.startsWith(got)) return;
      if (got === this.token && this.ipc === null) this.adopt(client);
      else this.refuse(client, 'wrong token');
    };
    client.readStart();
  }

  private adopt(client: PipeHandle): void {
    clearTimeout(this.unverified.get(client));
    this.unverified.delete(client);
    client.readStop();
    client.onread = ignoreRead;
    const { Pipe, pipeTypes } = internals();
    const ipc = new Pipe<PipeHandle>(pipeTypes.IPC);
    if (ipc.open(client.fd) !== 0) throw new HandoffError('handoff pipe: cannot open as IPC');
    parked.push(client);
    this.ipc = ipc;
    this.closeListener();
    this.resolve();
  }

  private refuse(client: PipeHandle, reason: string): void {
    clearTimeout(this.unverified.get(client));
    this.unverified.delete(client);
    // Node offers no SO_PEERCRED to name the peer; the file's mode already
    // limits it to root and mcrelay's own user.
    log.warn('handoff pipe: refused a connection that is not the worker', { worker: this.name, reason });
    client.onread = ignoreRead;
    client.close();
  }

  private closeListener(): void {
    // libuv unlinks the socket file when it closes the listener.
    this.server?.close();
    this.server = null;
    for (const c of [...this.unverified.keys()]) this.refuse(c, 'the listener closed');
  }

  /**
   * Sends an accepted connection's handle to the worker, then closes the main
   * thread's copy. Returns false if the pipe is gone (the worker died); the
   * caller then closes the handle.
   */
  send(handle: AcceptedHandle, tls: boolean): boolean {
    const ipc = this.ipc;
    if (ipc === null) return false;
    const req = new (internals().WriteWrap)<HandoffWrite>();
    req.oncomplete = () => { handle.close(); };
    const err = ipc.writeUtf8String(req, tls ? TLS_CLIENT : PLAIN_CLIENT, handle);
    if (err !== 0) return false;
    // A synchronous write already handed the descriptor to the kernel.
    if (!lastWriteWasAsync()) handle.close();
    return true;
  }

  close(): void {
    this.closeListener();
    this.ipc?.close();
    this.ipc = null;
  }
}

// The byte sent with each socket: whether its listener speaks TLS. The kernel
// ends a read at a message carrying descriptors, so each read is one socket's byte.
const PLAIN_CLIENT = 'S';
const TLS_CLIENT = 'T';
const TLS_BYTE = TLS_CLIENT.charCodeAt(0);

/** Worker-thread end: connects to the main thread's pipe and receives sockets. */
export class HandoffReceiver {
  private readonly pipe: PipeHandle;

  /** onClosed: the pipe could not connect (status < 0) or the main thread closed it (0). */
  constructor(path: string, token: string, onSocket: (handle: object, tls: boolean) => void, onClosed: (status: number) => void) {
    const { Pipe, pipeTypes, PipeConnectWrap, WriteWrap } = internals();
    const pipe = new Pipe<PipeHandle>(pipeTypes.IPC);
    this.pipe = pipe;
    const req = new PipeConnectWrap<{ oncomplete: ((status: number) => void) | null }>();
    req.oncomplete = (status: number) => {
      if (status !== 0) { onClosed(status); return; }
      const hello = new WriteWrap<HandoffWrite>();
      hello.oncomplete = () => {};
      if (pipe.writeUtf8String(hello, token) !== 0) { onClosed(-1); return; }
      const bytes = new Uint8Array(64);
      pipe.useUserBuffer(bytes);
      pipe.onread = () => {
        const handle = pipe.pendingHandle;
        pipe.pendingHandle = null;
        const n = readResult();
        // The last byte read came with the descriptor (the read ended at its message).
        if (handle !== null && handle !== undefined) onSocket(handle, n > 0 && bytes[n - 1] === TLS_BYTE);
        // A negative count is EOF or an error: the main thread is gone.
        if (n < 0) { pipe.readStop(); onClosed(0); }
      };
      pipe.readStart();
    };
    const err = pipe.connect(req, path);
    if (err !== 0) throw new HandoffError(`handoff pipe: connect failed (${err})`);
  }

  close(): void { this.pipe.close(); }
}
