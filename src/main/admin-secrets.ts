// The admin listener's secrets (issue 18): the bearer token and the TLS files,
// read at start and again on SIGHUP.
//
//   admin_token_file --read, checked--> sha256(token) --> authorize(Authorization header)
//   admin_tls cert/key/ca --read, parsed, key matched to cert--> TlsFiles --> https / setSecureContext
//
// At start a file that cannot be used stops mcrelay before anything binds: a
// UsageError (exit status 2) whose one line names the setting and the file. On
// SIGHUP the caller keeps what it had and logs the same line. No message holds
// the token: only the file's path and what is wrong with it.
//
// Loaded only when a token or TLS is configured (node:crypto and node:tls then
// come with it; docs/decisions/memory.md).

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

import type { AdminTlsSettings, Config } from '../config/config.js';
import { readTlsFiles, type TlsFiles } from '../config/tls.js';
import { UsageError, unreadable } from '../errors.js';

/** Shorter tokens are refused: a guessable token is no lock. */
export const MIN_TOKEN_LENGTH = 16;

export interface AdminSecrets {
  /** Whether an Authorization header carries the token; null: no token configured, every request passes. */
  readonly authorize: ((authorization: string | undefined) => boolean) | null;
  readonly tls: TlsFiles | null;
}

/** Reads the token file and the TLS files the configuration names; throws a UsageError naming the file when one cannot be used. */
export function readAdminSecrets(config: Pick<Config, 'adminTokenFile' | 'adminTls'>): AdminSecrets {
  return {
    authorize: config.adminTokenFile === null ? null : authorizer(readToken(config.adminTokenFile)),
    tls: config.adminTls === null ? null : readAdminTls(config.adminTls),
  };
}

/** The token's digest is compared, not the token: equal lengths for timingSafeEqual whatever was sent. */
function authorizer(token: string): (authorization: string | undefined) => boolean {
  const want = createHash('sha256').update(token).digest();
  return (authorization) => {
    const m = authorization === undefined ? null : BEARER.exec(authorization);
    const got = createHash('sha256').update(m === null ? '' : m[1]!).digest();
    // Compared even without a match, so a missing header takes as long as a wrong one.
    return timingSafeEqual(got, want) && m !== null;
  };
}

/** RFC 6750's header: the scheme is case-insensitive, the token visible ASCII. */
const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;

function readToken(path: string): string {
  const where = `admin_token_file ${path}`;
  const text = readFile(where, path).toString('utf8');
  const mode = statSync(path).mode;
  if ((mode & 0o007) !== 0) {
    throw new UsageError(`${where}: readable or writable by others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); chmod 600 or 640 it`);
  }
  const token = text.replace(/\r?\n$/, '');
  if (token === '') throw new UsageError(`${where}: empty; put a token in it (e.g. openssl rand -hex 32 > FILE)`);
  if (!/^[\x21-\x7e]+$/.test(token)) throw new UsageError(`${where}: the token holds a space, a control character or a second line; it must be one word of printable ASCII`);
  if (token.length < MIN_TOKEN_LENGTH) throw new UsageError(`${where}: the token is shorter than ${MIN_TOKEN_LENGTH} characters (e.g. openssl rand -hex 32 > FILE)`);
  return token;
}

function readAdminTls(t: AdminTlsSettings): TlsFiles {
  const files = readTlsFiles({ cert: t.cert, key: t.key, ca: t.ca }, 'admin_tls');
  if (typeof files === 'string') throw new UsageError(files);
  return files;
}

function readFile(where: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`${where}: cannot read it: ${unreadable(err)}`);
  }
}
