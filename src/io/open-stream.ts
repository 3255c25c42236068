// Which path drives this thread's sockets: io/raw-stream.ts (the fast path,
// Node's internal handles) or io/portable.ts (net.Socket). The worker sets it
// once at start from what the main thread chose (--io, or the fallback when the
// internals are missing); owners open their streams here and never name a path.

import net from 'node:net';
import type tls from 'node:tls';
import type { IoMode } from '../config/config.js';
import { PortableStream } from './portable.js';
import { RawStream } from './raw-stream.js';
import { TlsStream } from './tls-stream.js';
import type { ByteStream, ConnectingOwner, StreamAddress, StreamOwner } from './stream.js';

let portable = false;

/** Sets the path of this thread's new streams. */
export function useIo(mode: IoMode): void {
  portable = mode === 'portable';
}

/**
 * Takes over an accepted client: a libuv handle the main thread handed over, a
 * worker's own net.Socket, or a TLS socket whose handshake is done (on the fast
 * path its session handle is driven as the TCP handles are).
 */
export function adoptStream(handle: object, owner: StreamOwner): ByteStream {
  if (!(handle instanceof net.Socket)) return new RawStream(handle, owner);
  if (!portable && isTls(handle)) return TlsStream.adopt(handle, owner) ?? new PortableStream(handle, owner);
  return new PortableStream(handle, owner);
}

/** A TLS socket says so in `encrypted` (node:tls is loaded only where TLS is configured). */
function isTls(socket: net.Socket): socket is tls.TLSSocket {
  return (socket as Partial<tls.TLSSocket>).encrypted === true;
}

/** Opens a connection (to a memcached server); the owner hears connected(), or closed() with the error. */
export function connectStream(address: StreamAddress, owner: ConnectingOwner): ByteStream {
  // TLS runs in Node's TLS socket on either path.
  if (address.tls !== undefined) return PortableStream.connectTls(address, address.tls, owner);
  return portable ? PortableStream.connect(address, owner) : RawStream.connect(address, owner);
}
