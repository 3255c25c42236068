// Server entries written differently that reach one server (issue 23, part 4):
// refused before anything starts, with both names in the message, exit 2.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { parseServerAddress, type ServerAddress } from '../../src/config/config.js';
import { findSameServer, type Resolver } from '../../src/config/same-server.js';
import { CLI } from '../helpers/procs.js';

const dir = mkdtempSync(path.join(tmpdir(), 'mcrelay-same-'));

function addrs(...names: string[]): ServerAddress[] {
  return names.map((n) => parseServerAddress(n) as ServerAddress);
}

/** A resolver from a table: no DNS, so the cases do not depend on the host's resolver. */
function table(t: Record<string, string[]>): Resolver {
  return async (host) => t[host] ?? [];
}

const HOSTS = table({
  '127.0.0.1': ['127.0.0.1'],
  '127.0.0.2': ['127.0.0.2'],
  localhost: ['127.0.0.1', '::1'],
  'mc-a': ['10.0.0.5'],
  'mc-a.example': ['10.0.0.5'],
  'mc-b': ['10.0.0.6'],
  '::1': ['::1'],
  '0:0::1': ['0:0::1'],
  '::ffff:10.0.0.6': ['::ffff:10.0.0.6'],
});

const CASES: Array<[string[], string[], string | null]> = [
  [['127.0.0.1:7000'], ['localhost:7000'],
    "backup server 'localhost:7000' is also master server '127.0.0.1:7000' (both reach 127.0.0.1:7000): a backup must be another server"],
  [['127.0.0.1:7000', 'localhost:7000'], [], "master servers '127.0.0.1:7000' and 'localhost:7000' are one server (both reach 127.0.0.1:7000)"],
  [['x:1'], ['mc-a:11211', 'mc-a.example:11211'], "backup servers 'mc-a:11211' and 'mc-a.example:11211' are one server (both reach 10.0.0.5:11211)"],
  [['[::1]:7000'], ['[0:0::1]:7000'],
    "backup server '[0:0::1]:7000' is also master server '[::1]:7000' (both reach [::1]:7000): a backup must be another server"],
  [['mc-b:1'], ['[::ffff:10.0.0.6]:1'],
    "backup server '[::ffff:10.0.0.6]:1' is also master server 'mc-b:1' (both reach 10.0.0.6:1): a backup must be another server"],
  // Same host, other port; other host, same port; an unresolvable name: all fine.
  [['127.0.0.1:7000', 'localhost:7001'], ['127.0.0.2:7000', 'nowhere:7000'], null],
];

test('entries that resolve to one address and port are found, naming both', async () => {
  for (const [masters, backups, message] of CASES) {
    assert.is(await findSameServer(addrs(...masters), addrs(...backups), HOSTS), message, `${masters} / ${backups}`);
  }
});

test('a socket path and a symlink to it are one server', async () => {
  const real = path.join(dir, 'mc.sock');
  writeFileSync(real, '');
  symlinkSync(real, path.join(dir, 'link.sock'));
  const found = await findSameServer(addrs(real), addrs(path.join(dir, 'link.sock')), HOSTS);
  assert.is(found, `backup server '${path.join(dir, 'link.sock')}' is also master server '${real}' (both reach ${real}): a backup must be another server`);
});

test('the CLI refuses a backup that is a master under another name: exit 2, both names, nothing started', () => {
  // localhost resolves to 127.0.0.1 on every host the suite runs on (it is in /etc/hosts).
  const r = spawnSync(process.execPath, [CLI, '-p', '0', '-f', path.join(dir, 'never.sock'), '--admin', 'off',
    '-s', '127.0.0.1:7', '-b', 'localhost:7'], { encoding: 'utf8', timeout: 10_000 });
  assert.is(r.status, 2);
  assert.is(r.stderr, "mcrelay: backup server 'localhost:7' is also master server '127.0.0.1:7' (both reach 127.0.0.1:7): a backup must be another server\n");
  assert.is(r.stdout, '');
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
