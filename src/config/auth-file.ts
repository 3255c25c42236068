// Password files, in memcached's -Y format: one `user:password` per line.
//
//   file text --parseAuthText--> AuthFile { path, users }
//     auth_file:          every user a client may authenticate as (worker/auth.ts)
//     backend_auth_file:  its first line is what mcrelay sends to the servers (backend/auth.ts)
//
// As memcached reads it (authfile.c): the user ends at the first ':', the
// password at the end of the line (a trailing CR is not part of it), and a
// line without ':' makes the whole file bad. Beyond memcached: blank lines are
// skipped (memcached refuses one), a file of no user is refused (memcached
// would start and let nobody in), and so is a user with a space (the auth
// `set` splits user from password at the first space: no client could log in
// as one). memcached keeps the first 8 users only; mcrelay keeps all.
//
// Messages name the file and the line, never what the line holds.

import { readFileSync } from 'node:fs';
import { unreadable } from '../errors.js';

export interface Credential {
  readonly user: string;
  readonly password: string;
}

export interface AuthFile {
  /** the path as given (what the messages name and SIGHUP reads again) */
  readonly path: string;
  readonly users: readonly Credential[];
}

export type AuthFileResult = { file: AuthFile } | { error: string };

/** Reads and checks the file; `setting` (auth_file...) labels the messages. */
export function loadAuthFile(path: string, setting: string): AuthFileResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { error: `${path}: cannot read the ${setting}: ${unreadable(err)}` };
  }
  return parseAuthText(text, path, setting);
}

/** The same checks on text already read. */
export function parseAuthText(text: string, path: string, setting: string): AuthFileResult {
  const users: Credential[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.endsWith('\r') ? lines[i]!.slice(0, -1) : lines[i]!;
    if (line.trim() === '') continue;
    const colon = line.indexOf(':');
    const where = `${path}:${i + 1}: ${setting}`;
    if (colon < 0) return { error: `${where}: expected user:password` };
    const user = line.slice(0, colon);
    if (user === '' || /\s/.test(user)) return { error: `${where}: expected a user name without spaces before ':'` };
    users.push(Object.freeze({ user, password: line.slice(colon + 1) }));
  }
  if (users.length === 0) return { error: `${path}: ${setting}: expected at least one user:password line` };
  return { file: Object.freeze({ path, users: Object.freeze(users) }) };
}
