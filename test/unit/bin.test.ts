// The installed command (bin/mcrelay.js) checks the Node running it against
// package.json's engines before it loads anything.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT } from '../helpers/procs.js';

const BIN = path.join(ROOT, 'bin/mcrelay.js');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; engines: { node: string } };

test('on a supported Node it runs the CLI', () => {
  const r = spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8', timeout: 10_000 });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, `mcrelay ${pkg.version}\n\n`);
});

test('engines is a range the check reads (^X.Y.Z or >=X.Y.Z, joined by ||)', () => {
  for (const part of pkg.engines.node.split('||')) assert.match(part.trim(), /^(>=|\^)\s*\d+(\.\d+){0,2}$/);
});

/** The lowest version engines names, [major, minor]: what the check refuses below. */
function floor(): [number, number] {
  const versions = pkg.engines.node.split('||').map((p) => p.trim().replace(/^(>=|\^)\s*/, '').split('.').map(Number));
  const [major, minor] = versions.sort((a, b) => a[0]! - b[0]! || (a[1] ?? 0) - (b[1] ?? 0))[0]!;
  return [major!, minor ?? 0];
}

test('on a Node below engines: one line naming both versions, exit 2', () => {
  // The system's node, when it is older (Debian 12 has 18, this machine 20).
  const old = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => {
    if (!fs.existsSync(p)) return false;
    const v = spawnSync(p, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
    const [major, minor] = v.split('.').map(Number) as [number, number];
    const [needMajor, needMinor] = floor();
    return major < needMajor || (major === needMajor && minor < needMinor);
  });
  if (old === undefined) { console.log('    skipped: no Node older than engines on this machine'); return; }
  const r = spawnSync(old, [BIN, '--version'], { encoding: 'utf8', timeout: 10_000 });
  const version = spawnSync(old, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
  assert.is(r.status, 2);
  assert.is(r.stdout, '');
  assert.is(r.stderr, `mcrelay: needs Node ${pkg.engines.node}; ${old} is Node ${version}. Install a supported Node, or run mcrelay with one: /path/to/node ${BIN} ...\n`);
});

test.run();
