// TLS toward clients and toward the memcached servers (issue 18): the settings
// as the flags and the file give them, and the certificate files read and
// checked, at start and at each reload.
//
//   --tls-cert/--tls-key/--tls-ca/--tls-client-auth/--tls-min-version/--tls-listen,
//   or the file's `tls:` section --> TlsDraft --finishTls (reads the files)--> ClientTls
//
// Which listeners speak TLS: the addresses of `tls.listen` (--tls-listen) when
// given, each a listener of its own beside the plain ones; without it, every TCP
// listener (-l/-p, `listen:`) speaks TLS and none plain. A unix socket stays
// plain: only processes the file's mode lets in reach it.
//
// The files' contents travel in the Config to the workers, which make their own
// secure context (a context cannot cross threads); Config is never logged whole.

import { readFileSync } from 'node:fs';
import type { SecureContextOptions } from 'node:tls';
import { unreadable } from '../errors.js';

/** A TCP address to listen on (config.ts's ListenAddress without a socket path; imported the other way). */
export interface TlsAddress {
  readonly host: string;
  readonly port: number;
}

export type ClientAuth = 'none' | 'optional' | 'require';
export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

export const CLIENT_AUTH_EXPECTED = 'expected none, optional or require';
export const TLS_VERSION_EXPECTED = 'expected TLSv1.2 or TLSv1.3';

export function parseClientAuth(s: string): ClientAuth | null {
  return s === 'none' || s === 'optional' || s === 'require' ? s : null;
}

export function parseTlsVersion(s: string): TlsVersion | null {
  return s === 'TLSv1.2' || s === 'TLSv1.3' ? s : null;
}

/** What the flags and the file set, before the files are read; null: not given. */
export interface TlsDraft {
  cert: string | null;
  key: string | null;
  ca: string | null;
  clientAuth: ClientAuth | null;
  minVersion: TlsVersion | null;
  listen: TlsAddress[] | null;
}

export function emptyTlsDraft(): TlsDraft {
  return { cert: null, key: null, ca: null, clientAuth: null, minVersion: null, listen: null };
}

/** The client listeners' TLS, files read and checked. */
export interface ClientTls {
  readonly certFile: string;
  readonly keyFile: string;
  /** the CA that client certificates must chain to; null: none (client_auth none, which needs none) */
  readonly caFile: string | null;
  readonly clientAuth: ClientAuth;
  readonly minVersion: TlsVersion;
  /** the TCP addresses that speak TLS; empty: every TCP listener does */
  readonly listen: readonly TlsAddress[];
  /** PEM text of the files */
  readonly cert: string;
  readonly key: string;
  readonly ca: string | null;
}

/** The settings with their files read and checked; a string is the one-line error (it names the file). */
export function finishTls(d: TlsDraft): ClientTls | null | string {
  const given = d.cert !== null || d.key !== null || d.ca !== null || d.clientAuth !== null || d.minVersion !== null || d.listen !== null;
  if (!given) return null;
  if (d.cert === null || d.key === null) return 'TLS needs both a certificate and its key (--tls-cert and --tls-key, or tls.cert and tls.key)';
  const clientAuth = d.clientAuth ?? 'none';
  if (clientAuth !== 'none' && d.ca === null) return `--tls-client-auth ${clientAuth} needs the CA that signs client certificates (--tls-ca or tls.ca)`;
  const files = readTlsFiles(d, 'tls');
  if (typeof files === 'string') return files;
  return Object.freeze({
    certFile: d.cert,
    keyFile: d.key,
    caFile: d.ca,
    clientAuth,
    minVersion: d.minVersion ?? 'TLSv1.2',
    listen: Object.freeze((d.listen ?? []).map((a) => Object.freeze({ host: a.host, port: a.port }))),
    cert: files.cert!,
    key: files.key!,
    ca: files.ca,
  });
}

/** The PEM text of a certificate, its key and a CA (or their paths), each given or not. */
export interface TlsFiles {
  cert: string | null;
  key: string | null;
  ca: string | null;
}

/**
 * Reads the files `paths` names and checks each: a certificate, a private key
 * without a passphrase that is the certificate's, a CA certificate. A string is
 * the one-line error, naming the setting and the file ("tls.key /etc/x.key: not
 * the key of tls.cert /etc/x.pem"). `setting`: tls, admin_tls, masters_tls...
 */
export function readTlsFiles(paths: TlsFiles, setting: string): TlsFiles | string {
  const { X509Certificate, createPrivateKey } = process.getBuiltinModule('node:crypto');
  const out: TlsFiles = { cert: null, key: null, ca: null };
  for (const which of ['cert', 'key', 'ca'] as const) {
    const path = paths[which];
    if (path === null) continue;
    try {
      out[which] = readFileSync(path, 'utf8');
    } catch (err) {
      return `${setting}.${which} ${path}: cannot read it: ${unreadable(err)}`;
    }
  }
  const parsed = <T>(parse: () => T): T | null => { try { return parse(); } catch { return null; } };
  const cert = out.cert === null ? null : parsed(() => new X509Certificate(out.cert!));
  if (out.cert !== null && cert === null) return `${setting}.cert ${paths.cert}: not a PEM certificate`;
  const key = out.key === null ? null : parsed(() => createPrivateKey(out.key!));
  if (out.key !== null && key === null) return `${setting}.key ${paths.key}: not a PEM private key without a passphrase`;
  if (cert !== null && key !== null && !cert.checkPrivateKey(key)) return `${setting}.key ${paths.key}: not the key of ${setting}.cert ${paths.cert}`;
  // createSecureContext takes a file without any certificate as an empty CA list: parse it.
  if (out.ca !== null && parsed(() => new X509Certificate(out.ca!)) === null) return `${setting}.ca ${paths.ca}: not a PEM certificate`;
  try {
    process.getBuiltinModule('node:tls').createSecureContext({ ...(out.cert !== null ? { cert: out.cert, key: out.key! } : {}), ...(out.ca !== null ? { ca: out.ca } : {}) });
  } catch (err) {
    return `${setting}.cert ${paths.cert}: refused by TLS: ${(err as Error).message.split('\n')[0]}`;
  }
  return out;
}

/** A pool's TLS toward its servers (the file's masters_tls, backups_tls), files not read yet. */
export interface ServerTlsDraft {
  ca: string | null;
  cert: string | null;
  key: string | null;
  servername: string | null;
  minVersion: TlsVersion | null;
}

export function emptyServerTlsDraft(): ServerTlsDraft {
  return { ca: null, cert: null, key: null, servername: null, minVersion: null };
}

/** TLS toward a server: its certificate verified against `ca` (else the system's roots), a client certificate optional. */
export interface ServerTls {
  readonly caFile: string | null;
  readonly certFile: string | null;
  readonly keyFile: string | null;
  /** the name its certificate must carry; null: the server's host */
  readonly servername: string | null;
  readonly minVersion: TlsVersion;
  readonly ca: string | null;
  readonly cert: string | null;
  readonly key: string | null;
}

/** A pool's server TLS with its files read and checked; `key`: the file's key, for messages. */
export function finishServerTls(d: ServerTlsDraft, key: string): ServerTls | string {
  if ((d.cert === null) !== (d.key === null)) return `${key}: a client certificate needs both cert and key`;
  const files = readTlsFiles(d, key);
  if (typeof files === 'string') return files;
  return Object.freeze({
    caFile: d.ca,
    certFile: d.cert,
    keyFile: d.key,
    servername: d.servername,
    minVersion: d.minVersion ?? 'TLSv1.2',
    ca: files.ca,
    cert: files.cert,
    key: files.key,
  });
}

/** What tls.connect takes to reach `host:port` with these settings. */
export function clientOptions(t: ServerTls, host: string, port: number): import('node:tls').ConnectionOptions {
  return {
    host,
    port,
    ...(t.ca !== null ? { ca: t.ca } : {}),
    ...(t.cert !== null ? { cert: t.cert, key: t.key! } : {}),
    ...(t.servername !== null ? { servername: t.servername } : {}),
    minVersion: t.minVersion,
    rejectUnauthorized: true,
  };
}

/** What a TLS listener's server takes from the settings (a worker's tls.Server, the admin listener's https.Server). */
export function serverOptions(
  t: Pick<ClientTls, 'clientAuth' | 'minVersion'> & TlsFiles,
): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
  return {
    cert: t.cert!,
    key: t.key!,
    ...(t.ca !== null ? { ca: t.ca } : {}),
    minVersion: t.minVersion,
    requestCert: t.clientAuth !== 'none',
    rejectUnauthorized: t.clientAuth === 'require',
  };
}

/** client_auth optional: a client may come without a certificate, but one it presents must verify. */
export function presentsUnverified(socket: import('node:tls').TLSSocket): boolean {
  return !socket.authorized && Object.keys(socket.getPeerCertificate()).length > 0;
}
