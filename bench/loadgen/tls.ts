// TLS for the load connections (--tls), with memtier_benchmark's meaning of its
// options: the server's certificate must chain to --cacert (unless
// --tls-skip-verify) but its name is not checked (memtier sets SSL_VERIFY_PEER
// and no host name); --sni is sent only when given; --key defaults to the
// --cert file; TLS 1.2 and 1.3, memtier's default --tls-protocols.
//
// One SecureContext per load thread, made from the files once; every
// connection of the thread shares it.
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { LoadOptions } from './options.js';

function pem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`${what} ${file}: ${(err as Error).message}`);
  }
}

/** The thread's TLS context; null without --tls. Throws, naming the file, when one cannot be read or used. */
export function loadSecureContext(o: LoadOptions): tls.SecureContext | null {
  if (!o.tls) return null;
  const ca = o.tlsCacert !== null ? pem(o.tlsCacert, '--cacert') : undefined;
  const cert = o.tlsCert !== null ? pem(o.tlsCert, '--cert') : undefined;
  const key = o.tlsCert !== null ? pem(o.tlsKey ?? o.tlsCert, '--key') : undefined;
  try {
    return tls.createSecureContext({ ca, cert, key, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' });
  } catch (err) {
    throw new Error(`TLS settings (--cacert, --cert, --key): ${(err as Error).message}`);
  }
}

/** The name check memtier does not make: the chain alone decides. */
function anyName(): undefined {
  return undefined;
}

/** A TLS connection to the load's server; 'secureConnect' once the handshake is done. */
export function connectTls(o: LoadOptions, context: tls.SecureContext): tls.TLSSocket {
  const socket = tls.connect({
    host: o.server,
    port: o.port,
    secureContext: context,
    rejectUnauthorized: !o.tlsSkipVerify,
    checkServerIdentity: anyName,
    // Node sends the host as SNI unless it is an IP address; memtier sends one only when asked.
    servername: o.tlsSni ?? '',
  });
  socket.setNoDelay(true);
  return socket;
}
