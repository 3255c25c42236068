// Node's internal bindings for libuv streams, the layer under net.Socket (what
// net.js itself uses), reached through process.binding: TCP and Unix socket
// handles (tcp_wrap, pipe_wrap), the request objects of a connect, a write and a
// shutdown, and the shared array where a handle's calls leave their side
// results. main/handoff.ts passes accepted handles to the workers over IPC pipes
// with them; shared/raw-stream.ts drives client and backend connections with
// them.

interface StreamWrapBinding {
  WriteWrap: new () => object;
  ShutdownWrap: new () => object;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
}

interface HandleBinding {
  TCP?: new (type: number) => object;
  TCPConnectWrap?: new () => object;
  Pipe?: new (type: number) => object;
  PipeConnectWrap?: new () => object;
  constants: { SOCKET: number; SERVER: number; IPC?: number };
}

const load = (process as unknown as { binding(name: string): unknown }).binding;
const binding = load('stream_wrap') as StreamWrapBinding;
const tcpWrap = load('tcp_wrap') as HandleBinding;
const pipeWrap = load('pipe_wrap') as HandleBinding;
const { streamBaseState, kReadBytesOrError, kLastWriteWasAsync } = binding;

/**
 * A write request; T names the fields the caller sets on it (Node calls its
 * `oncomplete(status)` with the request as `this` when a write finishes later).
 */
export const WriteWrap = binding.WriteWrap as new <T extends object>() => T;
/** A shutdown request, likewise. */
export const ShutdownWrap = binding.ShutdownWrap as new <T extends object>() => T;

/** A TCP handle: `new TCP<T>(tcpTypes.SOCKET)` for a connection of this side's own. */
export const TCP = tcpWrap.TCP! as new <T extends object>(type: number) => T;
export const TCPConnectWrap = tcpWrap.TCPConnectWrap! as new <T extends object>() => T;
export const tcpTypes = tcpWrap.constants as { SOCKET: number; SERVER: number };
/** A Unix socket or IPC pipe handle. */
export const Pipe = pipeWrap.Pipe! as new <T extends object>(type: number) => T;
export const PipeConnectWrap = pipeWrap.PipeConnectWrap! as new <T extends object>() => T;
export const pipeTypes = pipeWrap.constants as { SOCKET: number; SERVER: number; IPC: number };

/** Whether the last write on a handle of this thread left bytes for libuv to write later. */
export function lastWriteWasAsync(): boolean {
  return streamBaseState[kLastWriteWasAsync] !== 0;
}

/** In an `onread` callback: the bytes read, or a negative libuv error (UV_EOF at the end). */
export function readResult(): number {
  return streamBaseState[kReadBytesOrError]!;
}
