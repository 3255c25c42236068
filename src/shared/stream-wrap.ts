// Node's internal stream_wrap binding, the layer under net.Socket (what net.js
// itself uses), reached through process.binding: the request objects of a write
// and of a shutdown on a libuv stream handle, and the shared array where a
// handle's calls leave their side results. main/handoff.ts writes accepted
// handles to the workers with it; worker/client-handle.ts drives client
// connections with it.

interface StreamWrapBinding {
  WriteWrap: new () => object;
  ShutdownWrap: new () => object;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
}

const binding = (process as unknown as { binding(name: string): StreamWrapBinding }).binding('stream_wrap');
const { streamBaseState, kReadBytesOrError, kLastWriteWasAsync } = binding;

/**
 * A write request; T names the fields the caller sets on it (Node calls its
 * `oncomplete(status)` with the request as `this` when a write finishes later).
 */
export const WriteWrap = binding.WriteWrap as new <T extends object>() => T;
/** A shutdown request, likewise. */
export const ShutdownWrap = binding.ShutdownWrap as new <T extends object>() => T;

/** Whether the last write on a handle of this thread left bytes for libuv to write later. */
export function lastWriteWasAsync(): boolean {
  return streamBaseState[kLastWriteWasAsync] !== 0;
}

/** In an `onread` callback: the bytes read, or a negative libuv error (UV_EOF at the end). */
export function readResult(): number {
  return streamBaseState[kReadBytesOrError]!;
}
