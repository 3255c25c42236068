// Password files (config/auth-file.ts) and a client's auth `set` as the worker
// reads it (worker/auth.ts): tables of literal file texts and wire strings, each
// auth request fed whole and cut at every offset.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadAuthFile, parseAuthText, type AuthFile } from '../../src/config/auth-file.js';
import { authAnswer, authRefusal, authRequest } from '../../src/backend/auth.js';
import { Auth, PasswordGate } from '../../src/worker/auth.js';

const parse = (text: string): AuthFile | string => {
  const r = parseAuthText(text, 'users.txt', 'auth_file');
  return 'error' in r ? r.error : r.file;
};

test('auth file: user:password lines as memcached -Y reads them', () => {
  const cases: Array<[string, Array<[string, string]>]> = [
    ['alice:secret\n', [['alice', 'secret']]],
    ['alice:secret', [['alice', 'secret']]],
    ['alice:secret\r\nbob:pw\r\n', [['alice', 'secret'], ['bob', 'pw']]],
    // the user ends at the first ':', the password goes to the end of the line
    ['alice:se:cr et\n', [['alice', 'se:cr et']]],
    ['alice:\n', [['alice', '']]],
    ['\nalice:a\n\n  \nbob:b\n', [['alice', 'a'], ['bob', 'b']]],
  ];
  for (const [text, users] of cases) {
    const f = parse(text);
    assert.type(f, 'object', `${JSON.stringify(text)}: ${String(f)}`);
    assert.equal((f as AuthFile).users.map((u) => [u.user, u.password]), users, JSON.stringify(text));
  }
});

test('auth file: a bad line is refused naming the file and the line, not what it holds', () => {
  const cases: Array<[string, string]> = [
    ['alice:a\nbobsecret\n', 'users.txt:2: auth_file: expected user:password'],
    [':nouser\n', 'users.txt:1: auth_file: expected a user name without spaces before \':\''],
    ['al ice:pw\n', 'users.txt:1: auth_file: expected a user name without spaces before \':\''],
    ['', 'users.txt: auth_file: expected at least one user:password line'],
    ['\n\n', 'users.txt: auth_file: expected at least one user:password line'],
  ];
  for (const [text, message] of cases) {
    const f = parse(text);
    assert.is(f, message, JSON.stringify(text));
    assert.not.ok(message.includes('secret') || message.includes('nouser'));
  }
});

test('auth file: an unreadable file is one line naming it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcrelay-auth-unit-'));
  const missing = path.join(dir, 'missing.txt');
  assert.equal(loadAuthFile(missing, 'auth_file'), { error: `${missing}: cannot read the auth_file: no such file` });
  assert.equal(loadAuthFile(dir, 'backend_auth_file'), { error: `${dir}: cannot read the backend_auth_file: is a directory` });
  const good = path.join(dir, 'users.txt');
  fs.writeFileSync(good, 'alice:secret\n');
  assert.equal(loadAuthFile(good, 'auth_file'), { file: { path: good, users: [{ user: 'alice', password: 'secret' }] } });
});

const auth = new PasswordGate({ path: 'users.txt', users: [{ user: 'alice', password: 'secret' }, { user: 'bob', password: 'pw two' }] });

/** What the reader does with `wire`: the outcome, the reply, and where the input goes on. */
function read(wire: string): [number, string | null, number] {
  const buf = Buffer.from(wire, 'latin1');
  const r = auth.read(buf, 0, buf.length);
  return [r, auth.reply === null ? null : auth.reply.toString('latin1'), r === Auth.OK ? auth.next : -1];
}

test('auth set: the answers of memcached -Y (proto_text.c), for each first request', () => {
  const OK = Auth.OK;
  const NO = Auth.REFUSED;
  const cases: Array<[string, number, string | null, number]> = [
    ['set x 0 0 12\r\nalice secret\r\n', OK, 'STORED\r\n', 28],
    ['set x 0 0 12\r\nalice secret\r\nget k\r\n', OK, 'STORED\r\n', 28],
    ['set x 0 0 10\r\nbob pw two\r\n', OK, 'STORED\r\n', 26],
    // key, flags, exptime and a noreply are not looked at
    ['set anykey 7 -1 12 noreply\r\nalice secret\r\n', OK, 'STORED\r\n', 42],
    ['set  x 0 0 12\nalice secret\r\n', OK, 'STORED\r\n', 28],
    ['set x 0 0 12\r\nalice secreT\r\n', NO, 'CLIENT_ERROR authentication failure\r\n', -1],
    ['set x 0 0 11\r\nalice secre\r\n', NO, 'CLIENT_ERROR authentication failure\r\n', -1],
    ['set x 0 0 13\r\nalice secrets\r\n', NO, 'CLIENT_ERROR authentication failure\r\n', -1],
    ['set x 0 0 10\r\nbob secret\r\n', NO, 'CLIENT_ERROR authentication failure\r\n', -1],
    ['set x 0 0 11\r\nalicesecret\r\n', NO, 'CLIENT_ERROR bad authentication token format\r\n', -1],
    ['set x 0 0 12\r\nalice secretXY', NO, 'CLIENT_ERROR bad command line termination\r\n', -1],
    ['set x 0 0 99999\r\n', NO, 'CLIENT_ERROR auth token too long\r\n', -1],
    ['get k\r\n', NO, 'CLIENT_ERROR unauthenticated\r\n', -1],
    ['mg k v\r\n', NO, 'CLIENT_ERROR unauthenticated\r\n', -1],
    ['version\r\n', NO, 'CLIENT_ERROR unauthenticated\r\n', -1],
    ['settle x 0 0 12\r\nalice secret\r\n', NO, 'CLIENT_ERROR unauthenticated\r\n', -1],
    ['set x 0 12\r\nalice secret\r\n', NO, 'CLIENT_ERROR unauthenticated\r\n', -1],
    ['set x 0 0 abc\r\n', NO, 'CLIENT_ERROR unauthenticated\r\n', -1],
    ['\r\n', NO, 'CLIENT_ERROR unauthenticated\r\n', -1],
    // no newline within 2048 bytes: closed without a word
    [`set x 0 0 1${' '.repeat(2100)}`, NO, null, -1],
  ];
  for (const [wire, outcome, reply, next] of cases) assert.equal(read(wire), [outcome, reply, next], JSON.stringify(wire));
});

test('auth set: cut at every offset, it waits for the rest and then answers the same', () => {
  for (const wire of ['set x 0 0 12\r\nalice secret\r\n', 'set x 0 0 12\r\nalice wrong!\r\n', 'get k\r\n']) {
    const whole = read(wire);
    for (let cut = 0; cut < wire.length; cut++) {
      const [outcome] = read(wire.slice(0, cut));
      assert.is(outcome, Auth.NEED_MORE, `${JSON.stringify(wire)} cut at ${cut}`);
    }
    assert.equal(read(wire), whole);
  }
});

test('backend auth set: one line memcached -Y takes, expired at once on a server without -Y', () => {
  const req = authRequest({ path: 'b.txt', users: [{ user: 'svc', password: 'p w' }, { user: 'other', password: 'x' }] });
  assert.is(req.toString('latin1'), 'set mcrelay:auth 0 -1 7\r\nsvc p w\r\n');
  assert.is(authAnswer('STORED\r\nVERSION 1.6.18\r\n'), 8);
  assert.is(authAnswer('STOR'), 0);
  assert.is(authAnswer('CLIENT_ERROR authentication failure\r\n'), -1);
  assert.is(authRefusal('CLIENT_ERROR authentication failure\r\nCLIENT_ERROR unauthenticated\r\n'), 'backend authentication refused: CLIENT_ERROR authentication failure');
});

test.run();
