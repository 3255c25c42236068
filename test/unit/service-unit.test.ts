// contrib/mcrelay.service: the settings the README relies on, and systemd's own
// rating of its hardening (systemd-analyze reads the file; systemd does not run).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT } from '../helpers/procs.js';

const UNIT = path.join(ROOT, 'contrib/mcrelay.service');
const text = fs.readFileSync(UNIT, 'utf8');

test('the unit sets the umask, the socket directory, and does not retry a configuration error', () => {
  for (const line of ['UMask=0077', 'RuntimeDirectory=mcrelay', 'RuntimeDirectoryMode=0750', 'RestartPreventExitStatus=2',
    'NoNewPrivileges=true', 'ExecStart=/usr/local/bin/mcrelay --config /etc/mcrelay/mcrelay.yml']) {
    assert.match(text, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'), line);
  }
  // V8 needs writable-then-executable memory for its JIT.
  assert.not.match(text, /^MemoryDenyWriteExecute=true/m);
});

test('systemd-analyze security rates it 2.0 or less', () => {
  const r = spawnSync('systemd-analyze', ['security', '--offline=true', UNIT], { encoding: 'utf8', timeout: 30_000 });
  if (r.error !== undefined) { console.log('    skipped: no systemd-analyze (apt-get install systemd)'); return; }
  const level = Number(/Overall exposure level for mcrelay\.service: ([0-9.]+)/.exec(r.stdout)?.[1]);
  assert.ok(level <= 2, `exposure ${level}: ${r.stdout.split('\n').filter((l) => l.startsWith('✗')).join('\n')}`);
});

test.run();
