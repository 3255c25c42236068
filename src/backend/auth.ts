// Authentication toward servers started with memcached -Y (backend_auth_file,
// masters_auth_file, backups_auth_file): the auth `set` that goes first on
// every connection mcrelay opens to such a server, in the workers
// (backend/connection.ts) and in the main thread (backend/server-request.ts,
// backend/metadump.ts, main/meta-client.ts).
//
//   set mcrelay:auth 0 -1 <n>\r\n<user> <password>\r\n  -->  STORED: go on
//                                                      -->  anything else: refused, the server is down
//
// memcached -Y ignores the key, flags and exptime of the auth set. A server
// given credentials that does not ask for them (no -Y) stores the set as an
// ordinary one: exptime -1 makes that item expired at once, so the password
// is never readable there, and the key is in mcrelay's own namespace.
//
// One table per thread, replaced at start and at each reload; what a server
// answers is logged, never what was sent.

import { serverKey, type Config, type ServerAddress } from '../config/config.js';
import type { AuthFile } from '../config/auth-file.js';

const STORED = 'STORED\r\n';

/** the auth set per server (serverKey), for the servers of a pool with credentials */
let requests = new Map<string, Buffer>();

type Pools = Pick<Config, 'masters' | 'backups' | 'mastersAuth' | 'backupsAuth'>;

/**
 * Takes these configurations' credentials for every connection opened from
 * now on, a later one's over an earlier one's for a server both list (a
 * reload: the running pools' and the new ones', while both are in use).
 */
export function setBackendAuth(...configs: Pools[]): void {
  requests = new Map<string, Buffer>();
  for (const c of configs) addBackendAuth(c);
}

/** Adds one configuration's credentials to those taken (`mcrelay plan` reads two files). */
export function addBackendAuth(config: Pools): void {
  const add = (servers: readonly ServerAddress[], file: AuthFile | null): void => {
    if (file === null) return;
    const request = authRequest(file);
    for (const s of servers) requests.set(serverKey(s), request);
  };
  add(config.masters, config.mastersAuth);
  add(config.backups, config.backupsAuth);
}

/** The auth set for the first user of the file. */
export function authRequest(file: AuthFile): Buffer {
  const { user, password } = file.users[0]!;
  const data = Buffer.from(`${user} ${password}`, 'utf8');
  return Buffer.concat([Buffer.from(`set mcrelay:auth 0 -1 ${data.length}\r\n`), data, Buffer.from('\r\n')]);
}

/** What to send first on a new connection to this server; null: nothing. */
export function backendAuth(address: ServerAddress): Buffer | null {
  return requests.size === 0 ? null : requests.get(serverKey(address)) ?? null;
}

/**
 * The server's answer to the auth set at the start of `text` (latin1): the
 * length of an acceptance (STORED) to skip, 0 while no whole line has come, or
 * -1 when it refused (its line is then the reason, see authRefusal).
 */
export function authAnswer(text: string): number {
  const nl = text.indexOf('\n');
  if (nl < 0) return 0;
  return text.startsWith(STORED) ? STORED.length : -1;
}

/** The reason a refusal gives, for a log line: the server's first line (it holds nothing of ours). */
export function authRefusal(text: string): string {
  const nl = text.indexOf('\n');
  const line = (nl < 0 ? text : text.slice(0, nl)).replace(/\r$/, '');
  return `backend authentication refused: ${line.slice(0, 100)}`;
}
