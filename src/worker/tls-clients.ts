// TLS toward clients, in the worker that owns the connection (issue 18): the
// main thread (or, with --io portable, this worker's own listener) hands over the
// raw socket as for any client; here the handshake runs, and a client whose
// handshake completes becomes a ClientConnection over the TLS socket.
//
//   raw handle / net.Socket --tls.Server (never listening) 'connection'-->
//     handshake --'secureConnection'--> onClient(TLSSocket)   (io/portable.ts drives it)
//              --'tlsClientError'----> closed, counted, logged at debug
//
// A tls.Server that never listens does what a listening one does with each
// socket: the handshake timeout, the client certificate check (client_auth
// require: a client without a certificate the CA signed is refused; optional:
// one that presents a bad certificate is), and exactly one of the two events per
// socket. A reload that changes the settings makes a new server for new
// connections; handshakes under way finish on the old one.

import net from 'node:net';
import type tls from 'node:tls';
import { presentsUnverified, serverOptions, type ClientTls } from '../config/tls.js';
import { debugEnabled, log } from '../log.js';

/** How long a client may take to complete its handshake. */
const HANDSHAKE_MS = 10_000;

export class TlsClients {
  private server: tls.Server;
  private settings: ClientTls;

  constructor(
    settings: ClientTls,
    /** a client whose handshake completed */
    private readonly onClient: (socket: tls.TLSSocket) => void,
    /** a client that closed or was refused before its handshake completed */
    private readonly onRefused: () => void,
  ) {
    this.settings = settings;
    this.server = this.make(settings);
  }

  /** Starts the handshake on an accepted connection: a libuv handle from the main thread, or a net.Socket. */
  accept(connection: object): void {
    const socket = connection instanceof net.Socket
      ? connection
      : new net.Socket({ handle: connection, readable: true, writable: true } as net.SocketConstructorOpts);
    // The TLS socket takes this over: a peer that shuts its side before the
    // handshake is done is closed now (not at the handshake timeout).
    socket.allowHalfOpen = false;
    socket.setNoDelay(true);
    this.server.emit('connection', socket);
  }

  /** A reload: new connections use the new certificate and settings. */
  update(settings: ClientTls): void {
    if (sameSettings(settings, this.settings)) return;
    this.settings = settings;
    this.server = this.make(settings);
  }

  private make(settings: ClientTls): tls.Server {
    const { createServer } = process.getBuiltinModule('node:tls');
    const server = createServer({ ...serverOptions(settings), handshakeTimeout: HANDSHAKE_MS });
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      // client_auth optional: a certificate is not required, but one presented must verify.
      if (settings.clientAuth === 'optional' && presentsUnverified(socket)) {
        if (debugEnabled()) log.debug('TLS client refused: its certificate does not verify', { error: String(socket.authorizationError) });
        socket.destroy();
        this.onRefused();
        return;
      }
      // From here a client may shut its side and still read the replies it is owed, as on a plain listener.
      socket.allowHalfOpen = true;
      this.onClient(socket);
    });
    server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
      if (debugEnabled()) log.debug('TLS handshake failed', { error: err.message, code: (err as NodeJS.ErrnoException).code });
      socket.destroy();
      this.onRefused();
    });
    return server;
  }
}

function sameSettings(a: ClientTls, b: ClientTls): boolean {
  return a.cert === b.cert && a.key === b.key && a.ca === b.ca && a.clientAuth === b.clientAuth && a.minVersion === b.minVersion;
}
