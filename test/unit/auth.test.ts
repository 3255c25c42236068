// Password files (config/auth-file.ts): tables of literal file texts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadAuthFile, parseAuthText, type AuthFile } from '../../src/config/auth-file.js';

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

test.run();
