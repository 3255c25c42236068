// Moving an accepted client socket from the main thread to a worker thread.
//
// Worker threads share the process's descriptor table, but a descriptor belongs to
// the libuv handle that wraps it: two threads may not both own it. So the socket
// is passed the way Node's cluster module passes it between processes: written
// over a local IPC pipe with SCM_RIGHTS, which makes the kernel give the receiver
// a new descriptor of its own; the main thread then closes its copy. Node exposes
// IPC pipes only through its internal pipe_wrap binding (what child_process uses),
// reached through process.binding in shared/stream-wrap.ts.
//
//   main: listener handle --onconnection (takeAccepts)--> HandoffServer (one per
//         worker) --accept--> IPC pipe --write(handle)-->
//   worker: HandoffReceiver (IPC pipe) --onread: pendingHandle--> RawStream
//           (shared/raw-stream.ts)
//
// libuv only reads or writes descriptors on a pipe opened as IPC, and a pipe that
// comes out of accept() never is; the main thread therefore re-opens the accepted
// descriptor as an IPC pipe and parks the accepted handle unclosed (closing it
// would close the descriptor under the IPC pipe). One parked handle per worker
// start: bounded by the number of worker (re)starts.

import net from 'node:net';
import { lastWriteWasAsync, Pipe, PipeConnectWrap, pipeTypes, readResult, WriteWrap } from '../shared/stream-wrap.js';

interface UvHandle { close(cb?: () => void): void; fd: number }
interface PipeHandle extends UvHandle {
  bind(path: string): number;
  listen(backlog: number): number;
  open(fd: number): number;
  connect(req: object, path: string): number;
  readStart(): number;
  readStop(): number;
  writeUtf8String(req: object, s: string, handle?: object): number;
  onconnection: ((status: number, client: PipeHandle) => void) | null;
  onread: ((buf: ArrayBuffer | undefined) => void) | null;
  pendingHandle: object | null;
  unref(): void;
  ref(): void;
}
/** Node calls `oncomplete` when a write it could not finish at once is done. */
interface HandoffWrite { oncomplete: () => void }

const parked: PipeHandle[] = [];

/** A connection as a listener's libuv handle accepted it (TCP or pipe), before any net.Socket. */
export interface AcceptedHandle { close(cb?: () => void): void }

/**
 * Has `server` give each accepted connection's handle to `onHandle` instead of
 * wrapping it in a net.Socket: the main thread only passes connections on, and a
 * Socket per accept left its heap 26 MB larger after 10,000 connections.
 */
export function takeAccepts(server: net.Server, onHandle: (handle: AcceptedHandle) => void, onError: (status: number) => void): void {
  const listener = (server as unknown as { _handle: { onconnection: (status: number, handle?: AcceptedHandle) => void } | null })._handle;
  if (listener === null) throw new Error('takeAccepts: the server is not listening');
  listener.onconnection = (status, handle) => {
    if (status !== 0 || handle === undefined) onError(status);
    else onHandle(handle);
  };
}

/** Main-thread end for one worker: accepts the worker's pipe, then sends sockets on it. */
export class HandoffServer {
  readonly path: string;
  private server: PipeHandle | null;
  private ipc: PipeHandle | null = null;
  private readonly ready: Promise<void>;

  constructor(name: string) {
    // An abstract socket name: nothing on disk to clean up, gone with the process.
    this.path = `\0mcrelay-${process.pid}-${name}`;
    const server = new Pipe<PipeHandle>(pipeTypes.SERVER);
    let err = server.bind(this.path);
    if (err === 0) err = server.listen(1);
    if (err !== 0) throw new Error(`handoff pipe ${name}: bind/listen failed (${err})`);
    this.server = server;
    this.ready = new Promise((resolve) => {
      server.onconnection = (status: number, client: PipeHandle) => {
        if (status !== 0 || this.ipc !== null) return;
        const ipc = new Pipe<PipeHandle>(pipeTypes.IPC);
        if (ipc.open(client.fd) !== 0) throw new Error('handoff pipe: cannot open as IPC');
        parked.push(client);
        this.ipc = ipc;
        this.server?.close();
        this.server = null;
        resolve();
      };
    });
  }

  /** Resolves once the worker has connected. */
  connected(): Promise<void> { return this.ready; }

  /**
   * Sends an accepted connection's handle to the worker, then closes the main
   * thread's copy. Returns false if the pipe is gone (the worker died); the
   * caller then closes the handle.
   */
  send(handle: AcceptedHandle): boolean {
    const ipc = this.ipc;
    if (ipc === null) return false;
    const req = new WriteWrap<HandoffWrite>();
    req.oncomplete = () => { handle.close(); };
    const err = ipc.writeUtf8String(req, 'S', handle);
    if (err !== 0) return false;
    // A synchronous write already handed the descriptor to the kernel.
    if (!lastWriteWasAsync()) handle.close();
    return true;
  }

  close(): void {
    this.server?.close();
    this.server = null;
    this.ipc?.close();
    this.ipc = null;
  }
}

/** Worker-thread end: connects to the main thread's pipe and receives sockets. */
export class HandoffReceiver {
  private readonly pipe: PipeHandle;

  constructor(path: string, onSocket: (handle: object) => void, onClosed: () => void) {
    const pipe = new Pipe<PipeHandle>(pipeTypes.IPC);
    this.pipe = pipe;
    const req = new PipeConnectWrap<{ oncomplete: ((status: number) => void) | null }>();
    req.oncomplete = (status: number) => {
      if (status !== 0) { onClosed(); return; }
      pipe.onread = () => {
        const handle = pipe.pendingHandle;
        pipe.pendingHandle = null;
        if (handle !== null && handle !== undefined) onSocket(handle);
        // A negative count is EOF or an error: the main thread is gone.
        if (readResult() < 0) { pipe.readStop(); onClosed(); }
      };
      pipe.readStart();
    };
    const err = pipe.connect(req, path);
    if (err !== 0) throw new Error(`handoff pipe: connect failed (${err})`);
  }

  /** Lets the thread exit once nothing else keeps it alive. */
  unref(): void { this.pipe.unref(); }

  close(): void { this.pipe.close(); }
}
