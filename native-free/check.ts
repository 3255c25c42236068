// The runtime dependency tree holds no native addon.
//
//   package.json "dependencies" (+ installed optional and peer dependencies)
//     --resolve like Node (node_modules, walking up)--> package directory
//     --scan its files (not its node_modules: those are packages of their own)-->
//   a hit: a compiled addon (*.node) or a node-gyp build (binding.gyp)
//
// Run directly: `node dist/native-free/check.js [projectDir]` prints the hits and
// exits 1 if there are any (2 if the tree cannot be walked).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface PackageJson {
  name?: string;
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

function readPackageJson(dir: string): PackageJson {
  return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageJson;
}

/** Where Node would find package `name` required from `fromDir`, or null. */
function resolvePackage(name: string, fromDir: string): string | null {
  let dir = fromDir;
  for (;;) {
    const candidate = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(candidate, 'package.json'))) return fs.realpathSync(candidate);
    const parent = path.dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/** Files in a package that make it native; nested node_modules are skipped, symlinked directories not followed. */
function nativeFiles(pkgDir: string): string[] {
  const hits: string[] = [];
  const stack = [pkgDir];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules') stack.push(full);
      } else if (entry.name.endsWith('.node') || entry.name === 'binding.gyp') {
        hits.push(full);
      }
    }
  }
  return hits;
}

/**
 * Every native addon shipped by a package in the runtime dependency tree of the
 * project at rootDir, as "name@version: path" (path relative to rootDir), sorted.
 * Throws if a required dependency is not installed: the tree cannot be vouched for.
 */
export function findNativeAddons(rootDir: string): string[] {
  const root = fs.realpathSync(rootDir);
  const seen = new Set<string>();
  const hits: string[] = [];
  const queue: string[] = [root];
  while (queue.length > 0) {
    const dir = queue.shift()!;
    const pkg = readPackageJson(dir);
    const wants: Array<[string, boolean]> = [
      ...Object.keys(pkg.dependencies ?? {}).map((n): [string, boolean] => [n, true]),
      ...Object.keys(pkg.optionalDependencies ?? {}).map((n): [string, boolean] => [n, false]),
      ...Object.keys(pkg.peerDependencies ?? {}).map((n): [string, boolean] => [n, false]),
    ];
    for (const [name, required] of wants) {
      const found = resolvePackage(name, dir);
      if (found === null) {
        if (required) throw new Error(`${pkg.name ?? dir} depends on ${name}, which is not installed`);
        continue;
      }
      if (seen.has(found)) continue;
      seen.add(found);
      const dep = readPackageJson(found);
      for (const file of nativeFiles(found)) {
        hits.push(`${dep.name ?? name}@${dep.version ?? '?'}: ${path.relative(root, file)}`);
      }
      queue.push(found);
    }
  }
  return hits.sort();
}

const invokedAs = process.argv[1];
if (invokedAs !== undefined && pathToFileURL(path.resolve(invokedAs)).href === import.meta.url) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // compiled to dist/native-free/: the project is two levels up
  const rootDir = path.resolve(process.argv[2] ?? path.join(here, '../..'));
  try {
    const hits = findNativeAddons(rootDir);
    if (hits.length === 0) {
      process.stdout.write(`native-free: no native addon in the runtime dependencies of ${rootDir}\n`);
    } else {
      process.stdout.write(`native-free: native addons found:\n${hits.map((h) => `  ${h}\n`).join('')}`);
      process.exitCode = 1;
    }
  } catch (err) {
    process.stderr.write(`native-free: ${(err as Error).message}\n`);
    process.exitCode = 2;
  }
}
