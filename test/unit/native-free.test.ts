// The native-free check: it passes for mcrelay's own runtime dependencies, and it
// can fail (a fake installed tree with an addon at several depths).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findNativeAddons } from '../../native-free/check.js';

// compiled to dist/test/unit/
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** Writes a file tree: { 'a/b.json': '...' } under dir. */
function write(dir: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    const full = path.join(dir, rel);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    fs.writeFileSync(full, content);
  }
}

function pkg(name: string, deps: Record<string, string> = {}, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ name, version: '1.0.0', dependencies: deps, ...extra });
}

function withTree(files: Record<string, string>, f: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'native-free-'));
  try {
    write(dir, files);
    f(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('mcrelay\'s installed runtime dependency tree has no native addon', () => {
  assert.equal(findNativeAddons(ROOT), []);
});

test('a fake tree: addons found through dependencies, hoisted and nested; dev-only packages ignored', () => {
  withTree({
    'package.json': pkg('app', { a: '^1', clean: '^1' }, { devDependencies: { devonly: '^1' } }),
    'node_modules/a/package.json': pkg('a', { b: '^1', d: '^1' }),
    'node_modules/a/index.js': '',
    // hoisted dependency of a, with a compiled addon deep inside
    'node_modules/b/package.json': pkg('b'),
    'node_modules/b/build/Release/addon.node': 'ELF',
    // nested dependency of a, shipping only the sources of a node-gyp build
    'node_modules/a/node_modules/d/package.json': pkg('d'),
    'node_modules/a/node_modules/d/binding.gyp': '{}',
    'node_modules/clean/package.json': pkg('clean'),
    'node_modules/clean/lib/x.js': '',
    // installed but not a runtime dependency of anything
    'node_modules/devonly/package.json': pkg('devonly'),
    'node_modules/devonly/x.node': 'ELF',
    'node_modules/stray/package.json': pkg('stray'),
    'node_modules/stray/binding.gyp': '{}',
  }, (dir) => {
    assert.equal(findNativeAddons(dir), [
      'b@1.0.0: node_modules/b/build/Release/addon.node',
      'd@1.0.0: node_modules/a/node_modules/d/binding.gyp',
    ]);
  });
});

test('a fake tree: installed optional dependency counted; cycles terminate', () => {
  withTree({
    'package.json': pkg('app', { a: '^1' }, { optionalDependencies: { opt: '^1', absent: '^1' } }),
    'node_modules/a/package.json': pkg('a', { b: '^1' }),
    'node_modules/b/package.json': pkg('b', { a: '^1' }),
    'node_modules/opt/package.json': pkg('opt'),
    'node_modules/opt/prebuilds/linux-x64/opt.node': 'ELF',
  }, (dir) => {
    assert.equal(findNativeAddons(dir), ['opt@1.0.0: node_modules/opt/prebuilds/linux-x64/opt.node']);
  });
});

test('a missing required dependency is an error, not a pass', () => {
  withTree({ 'package.json': pkg('app', { ghost: '^1' }) }, (dir) => {
    assert.throws(() => findNativeAddons(dir), /ghost/);
  });
});

test.run();
