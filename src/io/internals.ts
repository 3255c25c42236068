// Every use of a Node internal in mcrelay is reached through this module.
//
//   process.binding('stream_wrap' | 'tcp_wrap' | 'pipe_wrap') --check()--> Internals
//       io/raw-stream.ts: TCP and Unix socket handles driven without a net.Socket
//       io/handoff.ts:    IPC pipes that pass accepted handles to the workers
//   net.Server#_handle.onconnection (listenerHandle): accepts without a net.Socket
//   tls.TLSSocket#_handle (tlsHandle): a client's TLS session (TLSWrap), driven
//       by tls-stream.ts once its handshake is done
//
// These are libuv stream handles, the layer under net.Socket (what net.js itself
// uses), with the request objects of a connect, a write and a shutdown, and the
// shared array where a handle's calls leave their side results. None of it
// carries a compatibility promise, and `node --permission` refuses
// process.binding. So nothing here is touched when a module is imported:
// probeInternals() loads and checks everything once (the constructors exist, a
// handle of each kind has every method the callers use) and says what is missing;
// the main thread runs it at start and takes the portable path (io/portable.ts,
// public APIs only) when the answer is not ok.

import type net from 'node:net';
import { IoInternalsError } from '../errors.js';

/** A TCP or Unix socket handle as raw-stream.ts drives it. */
export interface UvStream {
  readStart(): number;
  readStop(): number;
  useUserBuffer(buf: Uint8Array): void;
  writeBuffer(req: object, data: Buffer): number;
  writev(req: object, chunks: Buffer[], allBuffers: true): number;
  shutdown(req: object): number;
  close(callback?: () => void): void;
  setNoDelay?: (enable: boolean) => number;
  /** TCP: connect(req, ipv4, port); Unix socket: connect(req, path) */
  connect(req: object, address: string, port?: number): number;
  connect6(req: object, address: string, port: number): number;
}

/** A TLS session's handle (TLSWrap): a stream as above over the TCP handle, plus the callback of its TLS errors. */
export interface TlsHandle extends UvStream {
  /** Node calls it (with the handle as `this`) when OpenSSL fails a read: a bad record, an alert */
  onerror: (err: Error) => void;
  /** encrypted bytes whose TCP write has not completed yet (or not begun) */
  readonly writeQueueSize: number;
  /** the TCP handle under it; its writeQueueSize: bytes libuv has not written yet */
  readonly _parent: { readonly writeQueueSize: number };
}

/** An IPC pipe (or a pipe listener) as handoff.ts drives it. */
export interface PipeHandle {
  close(cb?: () => void): void;
  fd: number;
  bind(path: string): number;
  listen(backlog: number): number;
  open(fd: number): number;
  connect(req: object, path: string): number;
  readStart(): number;
  readStop(): number;
  useUserBuffer(buf: Uint8Array): void;
  /** with `handle`, sends it along (SCM_RIGHTS) */
  writeUtf8String(req: object, s: string, handle?: object): number;
  onconnection: ((status: number, client: PipeHandle) => void) | null;
  /** Node accepts only a function here */
  onread: () => void;
  pendingHandle: object | null;
}

/** A connection as a listener's libuv handle accepted it (TCP or pipe), before any net.Socket. */
export interface AcceptedHandle { close(cb?: () => void): void }

type Ctor<T> = new (...args: never[]) => T;

export interface Internals {
  /** A write request; Node calls its `oncomplete(status)` with the request as `this` when a write finishes later. */
  readonly WriteWrap: new <T extends object>() => T;
  readonly ShutdownWrap: new <T extends object>() => T;
  /** `new TCP<T>(tcpTypes.SOCKET)` for a connection of this side's own */
  readonly TCP: new <T extends object>(type: number) => T;
  readonly TCPConnectWrap: new <T extends object>() => T;
  readonly tcpTypes: { readonly SOCKET: number; readonly SERVER: number };
  /** A Unix socket or IPC pipe handle. */
  readonly Pipe: new <T extends object>(type: number) => T;
  readonly PipeConnectWrap: new <T extends object>() => T;
  readonly pipeTypes: { readonly SOCKET: number; readonly SERVER: number; readonly IPC: number };
  /** where a handle's calls leave the bytes read and whether a write went async */
  readonly streamBaseState: Int32Array;
  readonly kReadBytesOrError: number;
  readonly kLastWriteWasAsync: number;
}

export type Probe = { readonly ok: true; readonly internals: Internals } | { readonly ok: false; readonly missing: readonly string[] };

/** The methods each kind of handle must have, as raw-stream.ts and handoff.ts call them. */
const TCP_METHODS = ['readStart', 'readStop', 'useUserBuffer', 'writeBuffer', 'writev', 'shutdown', 'close', 'connect', 'connect6', 'setNoDelay'];
const PIPE_METHODS = ['readStart', 'readStop', 'useUserBuffer', 'writeBuffer', 'writev', 'writeUtf8String', 'shutdown', 'close', 'connect', 'bind', 'listen', 'open'];

/**
 * Loads the bindings through `load` (process.binding unless a test gives
 * another) and checks them. Never throws: a refused or missing binding is one
 * entry of `missing`, named as Node names it ("tcp_wrap.TCP", "process.binding:
 * ERR_ACCESS_DENIED").
 */
export function checkInternals(load: ((name: string) => unknown) | undefined): Probe {
  const missing: string[] = [];
  if (typeof load !== 'function') return { ok: false, missing: ['process.binding'] };
  const bindings: Record<string, Record<string, unknown>> = {};
  for (const name of ['stream_wrap', 'tcp_wrap', 'pipe_wrap']) {
    try {
      const b = load(name);
      if (b !== null && typeof b === 'object') bindings[name] = b as Record<string, unknown>;
      else missing.push(name);
    } catch (err) {
      missing.push(`process.binding('${name}'): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (missing.length > 0) return { ok: false, missing };
  const sw = bindings.stream_wrap!;
  const tw = bindings.tcp_wrap!;
  const pw = bindings.pipe_wrap!;
  const need = (b: Record<string, unknown>, where: string, key: string, type: 'function' | 'number' | 'object'): void => {
    if (typeof b[key] !== type) missing.push(`${where}.${key}`);
  };
  need(sw, 'stream_wrap', 'WriteWrap', 'function');
  need(sw, 'stream_wrap', 'ShutdownWrap', 'function');
  need(sw, 'stream_wrap', 'kReadBytesOrError', 'number');
  need(sw, 'stream_wrap', 'kLastWriteWasAsync', 'number');
  if (!(sw.streamBaseState instanceof Int32Array)) missing.push('stream_wrap.streamBaseState');
  for (const [b, where, ctor, connect] of [[tw, 'tcp_wrap', 'TCP', 'TCPConnectWrap'], [pw, 'pipe_wrap', 'Pipe', 'PipeConnectWrap']] as const) {
    need(b, where, ctor, 'function');
    need(b, where, connect, 'function');
    const constants = b.constants as Record<string, unknown> | undefined;
    for (const k of where === 'tcp_wrap' ? ['SOCKET', 'SERVER'] : ['SOCKET', 'SERVER', 'IPC']) {
      if (typeof constants?.[k] !== 'number') missing.push(`${where}.constants.${k}`);
    }
  }
  if (missing.length > 0) return { ok: false, missing };
  // A handle of each kind, never opened (libuv makes no socket before a bind or
  // a connect), for the methods that live on its prototype.
  const handles: Array<[string, Ctor<Record<string, unknown>>, number, readonly string[]]> = [
    ['tcp_wrap.TCP', tw.TCP as Ctor<Record<string, unknown>>, (tw.constants as { SOCKET: number }).SOCKET, TCP_METHODS],
    ['pipe_wrap.Pipe', pw.Pipe as Ctor<Record<string, unknown>>, (pw.constants as { IPC: number }).IPC, PIPE_METHODS],
  ];
  for (const [where, Handle, type, methods] of handles) {
    let h: Record<string, unknown>;
    try {
      h = new (Handle as unknown as new (t: number) => Record<string, unknown>)(type);
    } catch (err) {
      missing.push(`new ${where}(): ${(err as Error).message}`);
      continue;
    }
    for (const m of methods) if (typeof h[m] !== 'function') missing.push(`${where}#${m}`);
    if (typeof h.close === 'function') (h.close as () => void)();
  }
  if (missing.length > 0) return { ok: false, missing };
  return {
    ok: true,
    internals: {
      WriteWrap: sw.WriteWrap as Internals['WriteWrap'],
      ShutdownWrap: sw.ShutdownWrap as Internals['ShutdownWrap'],
      TCP: tw.TCP as Internals['TCP'],
      TCPConnectWrap: tw.TCPConnectWrap as Internals['TCPConnectWrap'],
      tcpTypes: tw.constants as Internals['tcpTypes'],
      Pipe: pw.Pipe as Internals['Pipe'],
      PipeConnectWrap: pw.PipeConnectWrap as Internals['PipeConnectWrap'],
      pipeTypes: pw.constants as Internals['pipeTypes'],
      streamBaseState: sw.streamBaseState as Int32Array,
      kReadBytesOrError: sw.kReadBytesOrError as number,
      kLastWriteWasAsync: sw.kLastWriteWasAsync as number,
    },
  };
}

let probed: Probe | null = null;
// Copied out of the internals once loaded: read after every write and read on the hot path.
let streamBaseState: Int32Array = new Int32Array(2);
let kReadBytesOrError = 0;
let kLastWriteWasAsync = 1;

/** This thread's internals, loaded and checked once. */
export function probeInternals(): Probe {
  if (probed !== null) return probed;
  probed = checkInternals((process as unknown as { binding?: (name: string) => unknown }).binding?.bind(process));
  if (probed.ok) ({ streamBaseState, kReadBytesOrError, kLastWriteWasAsync } = probed.internals);
  return probed;
}

/** Whether the last write on a handle of this thread left bytes for libuv to write later. */
export function lastWriteWasAsync(): boolean {
  return streamBaseState[kLastWriteWasAsync] !== 0;
}

/** In an `onread` callback: the bytes read, or a negative libuv error (UV_EOF at the end). */
export function readResult(): number {
  return streamBaseState[kReadBytesOrError]!;
}

/** The internals, for code that runs only on the fast path; throws with what is missing otherwise. */
export function internals(): Internals {
  const p = probeInternals();
  if (p.ok) return p.internals;
  throw new IoInternalsError(`the fast I/O path needs Node internals this Node lacks or refuses (${p.missing.join(', ')}); use --io portable`);
}

/**
 * A listening net.Server's libuv handle, to take its accepts (handoff.ts
 * takeAccepts). Checked where it is used, at start: Node gives no way to look
 * without a listener.
 */
export function listenerHandle(server: net.Server): { onconnection: (status: number, handle?: AcceptedHandle) => void } {
  const handle = (server as unknown as { _handle?: unknown })._handle;
  if (handle === null || typeof handle !== 'object' || !('onconnection' in handle)) {
    throw new IoInternalsError('the fast I/O path needs net.Server#_handle.onconnection, which this Node lacks; use --io portable');
  }
  return handle as { onconnection: (status: number, handle?: AcceptedHandle) => void };
}

/** The methods tls-stream.ts calls on a TLS session's handle. */
const TLS_METHODS = ['readStart', 'readStop', 'useUserBuffer', 'writeBuffer', 'writev', 'shutdown', 'close'];

/**
 * A TLS socket's session handle, for the fast path to drive once the handshake
 * is done; null when this Node has none with every method and figure tls-stream.ts reads,
 * and the socket stays a net.Socket (io/portable.ts).
 */
export function tlsHandle(socket: net.Socket): TlsHandle | null {
  const handle = (socket as unknown as { _handle?: unknown })._handle;
  if (handle === null || typeof handle !== 'object') return null;
  const h = handle as Record<string, unknown>;
  for (const m of TLS_METHODS) if (typeof h[m] !== 'function') return null;
  if (typeof h.writeQueueSize !== 'number' || typeof (h._parent as { writeQueueSize?: unknown } | undefined)?.writeQueueSize !== 'number') return null;
  return handle as TlsHandle;
}
