// -u / -g: who mcrelay runs as once its listeners are bound.
//
//   start: resolveIdentity (names -> ids; an unknown name ends the start, exit 2,
//          before anything binds) ... bind ... dropPrivileges:
//          setgroups([]) -> setgid(gid) -> setuid(uid), memcached's order
//
// The supplementary groups go first and the uid last because each step needs
// the privileges the next one gives up. glibc applies setgroups, setgid and
// setuid to every thread of the process (its setxid broadcast), so the worker
// threads already running change with the main thread.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';
import { log } from '../log.js';

export interface Identity {
  /** the -u user, or null to keep the uid */
  readonly uid: number | null;
  /** -g, else the -u user's primary group; null to keep the gid */
  readonly gid: number | null;
  readonly user: string | null;
  readonly group: string | null;
}

/**
 * Looks up -u and -g (names or numeric ids) in the system's user and group
 * databases. Throws UsageError naming what is unknown.
 */
export function resolveIdentity(user: string | null, group: string | null): Identity {
  let uid: number | null = null;
  let gid: number | null = null;
  if (user !== null) {
    const entry = lookup('passwd', user);
    if (entry !== null) {
      uid = Number(entry[2]);
      gid = Number(entry[3]);
    } else if (/^[0-9]+$/.test(user) && group !== null) {
      // An id without a passwd entry is usable once a group is given for it.
      uid = Number(user);
    } else {
      throw new UsageError(`unknown user '${user}' (-u / user:)${/^[0-9]+$/.test(user) ? '; give its group with -g' : ''}`);
    }
  }
  if (group !== null) {
    const entry = lookup('group', group);
    if (entry !== null) gid = Number(entry[2]);
    else if (/^[0-9]+$/.test(group)) gid = Number(group);
    else throw new UsageError(`unknown group '${group}' (-g / group:)`);
  }
  return { uid, gid, user, group };
}

/** One database entry split at ':', by name or by numeric id; null if there is none. */
function lookup(db: 'passwd' | 'group', key: string): string[] | null {
  try {
    // getent asks NSS, as setuid() by name would: LDAP and sssd users too.
    const out = execFileSync('getent', [db, key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    const line = out.split('\n')[0] ?? '';
    return line === '' ? null : line.split(':');
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { status?: number };
    // getent answers 2 for "no such entry"; without getent, read the files.
    if (e.code !== 'ENOENT') return null;
  }
  const byId = /^[0-9]+$/.test(key);
  for (const line of readFileSync(`/etc/${db}`, 'utf8').split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && (byId ? f[2] === key : f[0] === key)) return f;
  }
  return null;
}

/** Whether dropPrivileges will change anything (started as root with -u or -g). */
export function willDrop(id: Identity): boolean {
  return process.getuid?.() === 0 && (id.uid !== null || id.gid !== null);
}

/** Becomes the resolved user and group, in memcached's order. */
export function dropPrivileges(id: Identity): void {
  if (id.uid === null && id.gid === null) return;
  if (process.getuid?.() !== 0) {
    log.warn('not started as root: -u/-g ignored');
    return;
  }
  process.setgroups!([]);
  if (id.gid !== null) process.setgid!(id.gid);
  if (id.uid !== null) process.setuid!(id.uid);
  log.info('dropped privileges', { user: id.user, group: id.group, uid: process.getuid!(), gid: process.getgid!() });
}
