// The client listener on a unix socket path (-f, or a path in `listen:`).
//
//   check the path: missing dir -> error; not a socket -> error, left alone;
//                   a socket someone answers on -> error; a stale socket -> replaced
//   bind a new socket under a random name in the same directory (mode set by the
//   umask at bind, owner set before anyone can know the name), then link it to
//   the path; at stop, unlink the path only if it is still that socket (inode).
//
// Why a second name: libuv unlinks the path a pipe was bound to when the
// listener closes, whatever is there by then; that is how a proxy stopping
// deleted the socket of another that had taken over the path. Bound under the
// random name, that is all libuv removes.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { codeOf, ListenError } from '../errors.js';
import { log } from '../log.js';
import { MAX_SOCKET_PATH } from '../io/handoff.js';
const PROBE_MS = 1000;

export interface BoundSocket {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
}

/** How the path is, before binding: free, a stale socket to replace, or an error. */
async function check(p: string): Promise<'free' | 'stale'> {
  if (Buffer.byteLength(p) > MAX_SOCKET_PATH) throw new ListenError(`unix socket ${p}: longer than ${MAX_SOCKET_PATH} bytes`);
  const dir = path.dirname(p);
  let d: fs.Stats;
  try {
    d = fs.statSync(dir);
  } catch (err) {
    throw new ListenError(`unix socket ${p}: directory ${dir} ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `cannot be read (${(err as Error).message})`}`, { cause: err });
  }
  if (!d.isDirectory()) throw new ListenError(`unix socket ${p}: ${dir} is not a directory`);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'free';
    throw new ListenError(`unix socket ${p}: ${(err as Error).message}`, { cause: err });
  }
  if (!st.isSocket()) throw new ListenError(`unix socket ${p}: the path exists and is not a socket; not removed`);
  const answer = await probe(p);
  if (answer === 'ECONNREFUSED') return 'stale';
  if (answer === 'ENOENT') return 'free';
  if (answer === null) throw new ListenError(`unix socket ${p}: another process is listening on it`);
  throw new ListenError(`unix socket ${p}: exists, and connecting to it to see whether it is in use failed (${answer})`);
}

/** null if something accepts a connection on the socket, else the error code. */
function probe(p: string): Promise<string | null> {
  return new Promise((resolve) => {
    const s = net.connect(p);
    const done = (r: string | null): void => { clearTimeout(t); s.destroy(); resolve(r); };
    // A listener whose backlog is full does not answer at once, but it is alive.
    const t = setTimeout(() => done(null), PROBE_MS);
    s.once('connect', () => done(null));
    s.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'EAGAIN' ? null : err.code ?? err.message));
  });
}

/**
 * Has `server` listen on the unix socket `p` with `mode`, owned by `owner` when
 * given (the -u user, as root only). Rejects with a message naming the path.
 */
export async function listenUnix(server: net.Server, p: string, mode: number, backlog: number, owner: { uid: number; gid: number } | null): Promise<BoundSocket> {
  const state = await check(p);
  const temp = path.join(path.dirname(p), `.mcrelay-${randomBytes(6).toString('hex')}`);
  if (Buffer.byteLength(temp) > MAX_SOCKET_PATH) throw new ListenError(`unix socket ${p}: its directory's path is too long to bind in`);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // memcached's -a: the umask gives the socket its mode as bind() creates it,
    // so it never exists with a wider one. listen() binds synchronously.
    const umask = process.umask(0o777 & ~mode);
    try {
      server.listen({ path: temp, backlog }, () => { server.off('error', reject); resolve(); });
    } finally {
      process.umask(umask);
    }
  }).catch((err: Error) => { throw new ListenError(`unix socket ${p}: ${err.message}`, { cause: err }); });
  try {
    if (owner !== null) fs.chownSync(temp, owner.uid, owner.gid);
    if (state === 'stale') {
      log.info('replacing a stale unix socket (nothing answered on it)', { path: p });
      fs.unlinkSync(p);
    }
    // link(), not rename(): it fails if anything took the path since the check.
    fs.linkSync(temp, p);
  } catch (err) {
    await new Promise((r) => server.close(r));
    throw new ListenError(`unix socket ${p}: ${(err as Error).message}`, { cause: err });
  } finally {
    try { fs.unlinkSync(temp); } catch { /* gone with the close */ }
  }
  const st = fs.lstatSync(p);
  return { path: p, dev: st.dev, ino: st.ino };
}

/** At stop: removes the path if it is still the socket mcrelay bound there. */
export function removeUnix(s: BoundSocket): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(s.path);
  } catch {
    return;
  }
  if (!st.isSocket() || st.dev !== s.dev || st.ino !== s.ino) {
    log.info('unix socket path now holds something else; left alone', { path: s.path });
    return;
  }
  try {
    fs.unlinkSync(s.path);
  } catch (err) {
    // Typically a directory the -u user may not write to.
    log.warn('unix socket not removed', { path: s.path, code: codeOf(err), error: (err as Error).message });
  }
}
