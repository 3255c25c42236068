// A running mcrelay's admin listener (main/admin.ts), as the commands that
// talk to it see it: mcrelay ctl (drain, undrain, status) and mcrelay plan
// (GET /config, the pool running now).

import { readFileSync } from 'node:fs';
import http from 'node:http';
import { DEFAULTS } from './config/config.js';

/** The admin listener mcrelay ctl and mcrelay plan talk to unless told (--admin). */
export const DEFAULT_ADMIN = `${DEFAULTS.admin.host}:${DEFAULTS.admin.port}`;

/** --admin's HOST:PORT ([addr]:port for IPv6), or null. */
export function parseAdmin(text: string): { host: string; port: number } | null {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text);
  return m === null ? null : { host: m[1]!, port: Number(m[2]) };
}

/**
 * How to reach a secured admin listener (issue 18): the file holding its token
 * (admin_token_file), and for HTTPS the CA its certificate is checked against
 * and, for client_auth, a client certificate and key. All null: plain HTTP, no token.
 */
export interface AdminAccess {
  tokenFile: string | null;
  ca: string | null;
  cert: string | null;
  key: string | null;
}

export const ADMIN_ACCESS_USAGE = '[--admin-token-file FILE] [--admin-ca FILE [--admin-cert FILE --admin-key FILE]]';

export function noAdminAccess(): AdminAccess {
  return { tokenFile: null, ca: null, cert: null, key: null };
}

const ACCESS_OPTIONS: Record<string, keyof AdminAccess> = {
  '--admin-token-file': 'tokenFile', '--admin-ca': 'ca', '--admin-cert': 'cert', '--admin-key': 'key',
};

/**
 * args[i] as one of the access options (--opt FILE or --opt=FILE): the index of
 * its last argument, or null when it is not one, or the problem.
 */
export function takeAdminAccess(args: readonly string[], i: number, into: AdminAccess): number | null | string {
  const a = args[i]!;
  const eq = a.indexOf('=');
  const name = eq > 0 ? a.slice(0, eq) : a;
  const field = ACCESS_OPTIONS[name];
  if (field === undefined) return null;
  const value = eq > 0 ? a.slice(eq + 1) : args[i + 1];
  if (value === undefined || value === '') return `${name} wants a file`;
  into[field] = value;
  return eq > 0 ? i : i + 1;
}

/** The access options' files read: the Authorization header and the TLS options; or the problem, naming the file. */
function accessOptions(access: AdminAccess): { headers: Record<string, string>; tls: { ca: Buffer; cert?: Buffer; key?: Buffer } | null } | string {
  if (access.ca === null && (access.cert !== null || access.key !== null)) return '--admin-cert and --admin-key need --admin-ca (they are for HTTPS)';
  if ((access.cert === null) !== (access.key === null)) return '--admin-cert and --admin-key go together';
  const read = (flag: string, file: string): Buffer | string => {
    try { return readFileSync(file); } catch (err) { return `${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`; }
  };
  const headers: Record<string, string> = {};
  if (access.tokenFile !== null) {
    const t = read('--admin-token-file', access.tokenFile);
    if (typeof t === 'string') return t;
    const token = t.toString('utf8').replace(/\r?\n$/, '');
    if (token === '') return `--admin-token-file ${access.tokenFile}: empty`;
    headers.authorization = `Bearer ${token}`;
  }
  if (access.ca === null) return { headers, tls: null };
  const ca = read('--admin-ca', access.ca);
  if (typeof ca === 'string') return ca;
  if (access.cert === null) return { headers, tls: { ca } };
  const cert = read('--admin-cert', access.cert);
  if (typeof cert === 'string') return cert;
  const key = read('--admin-key', access.key!);
  if (typeof key === 'string') return key;
  return { headers, tls: { ca, cert, key } };
}

/**
 * One request to an admin listener: its status and body; rejects when it
 * cannot be reached, is silent 10 s, or a file of `access` cannot be read.
 */
export async function adminRequest(at: { host: string; port: number }, method: string, path: string, access: AdminAccess = noAdminAccess()): Promise<{ status: number; body: string }> {
  const o = accessOptions(access);
  if (typeof o === 'string') throw new Error(o);
  const transport = o.tls === null ? http : await import('node:https');
  return new Promise((resolve, reject) => {
    const req = transport.request({ host: at.host, port: at.port, method, path, timeout: 10_000, headers: o.headers, ...o.tls }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end();
  });
}
