// What a connection's owner (worker/client.ts, backend/connection.ts) sees of its
// socket, whichever path drives it: io/raw-stream.ts (libuv handles, the fast
// path) or io/portable.ts (net.Socket). io/open-stream.ts picks one.
//
//   bytes in:  owner.receive(n) with the bytes in readArena.scratch[0, n)
//   bytes out: write / writev; `pending` bytes not written yet, owner.drained() as they go
//   closing:   end() after queued writes, destroy() now, abandon() now and silently;
//              owner.closed(status) once, never inside a read or a write

import { getSystemErrorName } from 'node:util';
import type { ServerTls } from '../config/tls.js';
import type { Writable } from './buffers.js';

/** What a stream's owner hears from it. */
export interface StreamOwner {
  /** n bytes were read into readArena.scratch[0, n); take them before returning */
  receive(n: number): void;
  /** a queued write completed: `pending` went down */
  drained(): void;
  /** the peer shut its side (EOF); reading has stopped, writing may go on */
  ended(): void;
  /**
   * the stream is closed; called once. `status` is the libuv error (negative
   * errno) that closed it, 0 if none; `detail`, for an error without an errno
   * (a TLS failure), its code
   */
  closed(status: number, detail?: string): void;
}

/** The owner of a stream this side opens. */
export interface ConnectingOwner extends StreamOwner {
  /** connect() succeeded: the stream reads, and writes go out */
  connected(): void;
}

/** Where connect() goes: a Unix socket when `path` is set, else host (a name or an IP literal) and port. */
export interface StreamAddress {
  readonly host: string;
  readonly port: number;
  readonly path: string | null;
  /** set: the connection speaks TLS (io/portable.ts connectTls) */
  readonly tls?: ServerTls;
}

/** A connection as its owner drives it. */
export interface ByteStream extends Writable {
  /** bytes handed to the socket that it has not written yet */
  readonly pending: number;
  /** stops reading (back-pressure); idempotent, as is resume() */
  pause(): void;
  resume(): void;
  /** closes once every queued write is out */
  end(): void;
  /** closes now; `status`: the libuv error that is the reason, if any */
  destroy(status?: number): void;
  /** closes now, and the owner hears nothing more */
  abandon(): void;
}

/** libuv's UV_EAI_NONAME and UV_EAI_NODATA: a host name that does not resolve (Node's ENOTFOUND) */
export const UV_EAI_NONAME = -3008;
const UV_EAI_NODATA = -3007;

/** An Error for a libuv status, worded like Node's own: "connect ECONNREFUSED 127.0.0.1:11211". */
export function streamError(what: string, status: number, where: string, detail?: string): Error {
  const code = detail ?? (status === UV_EAI_NONAME || status === UV_EAI_NODATA ? 'ENOTFOUND' : getSystemErrorName(status));
  return Object.assign(new Error(`${what} ${code} ${where}`), { code, errno: status });
}
