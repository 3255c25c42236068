// A connection of the main thread's own to a memcached server (probes, restore,
// dumps, forwarded stats: the slow paths), plain or, when the server's pool has
// masters_tls / backups_tls, TLS with the server's certificate verified. Writes
// made before it is ready wait in the socket; `ready` names the event after
// which the server reads them.

import net from 'node:net';
import type { ServerAddress } from '../config/config.js';
import { clientOptions } from '../config/tls.js';

export interface ServerSocket {
  readonly socket: net.Socket;
  /** 'connect' for plain, 'secureConnect' for TLS */
  readonly ready: 'connect' | 'secureConnect';
}

export function connectServer(address: ServerAddress): ServerSocket {
  if (address.path !== null) return { socket: net.connect(address.path), ready: 'connect' };
  if (address.tls === undefined) return { socket: net.connect(address.port, address.host), ready: 'connect' };
  return { socket: process.getBuiltinModule('node:tls').connect(clientOptions(address.tls, address.host, address.port)), ready: 'secureConnect' };
}
