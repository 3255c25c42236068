// Which path drives this thread's sockets: io/raw-stream.ts (the fast path,
// Node's internal handles) or io/portable.ts (net.Socket). The worker sets it
// once at start from what the main thread chose (--io, or the fallback when the
// internals are missing); owners open their streams here and never name a path.

import net from 'node:net';
import type { IoMode } from '../config/config.js';
import { PortableStream } from './portable.js';
import { RawStream } from './raw-stream.js';
import type { ByteStream, ConnectingOwner, StreamAddress, StreamOwner } from './stream.js';

let portable = false;

/** Sets the path of this thread's new streams. */
export function useIo(mode: IoMode): void {
  portable = mode === 'portable';
}

/** Takes over an accepted client: a libuv handle the main thread handed over, or a worker's own net.Socket. */
export function adoptStream(handle: object, owner: StreamOwner): ByteStream {
  return handle instanceof net.Socket ? new PortableStream(handle, owner) : new RawStream(handle, owner);
}

/** Opens a connection (to a memcached server); the owner hears connected(), or closed() with the error. */
export function connectStream(address: StreamAddress, owner: ConnectingOwner): ByteStream {
  // TLS runs in Node's TLS socket on either path.
  if (address.tls !== undefined) return PortableStream.connectTls(address, address.tls, owner);
  return portable ? PortableStream.connect(address, owner) : RawStream.connect(address, owner);
}
