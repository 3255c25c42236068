import { readFileSync } from 'node:fs';

/**
 * mcrelay's version, from its package.json: the first one up from this file
 * that names mcrelay (dist/src/version.js, or src/version.ts run as source).
 */
export const VERSION: string = packageVersion();

function packageVersion(): string {
  let dir = new URL('./', import.meta.url);
  for (let depth = 0; depth < 5; depth++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'mcrelay' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // no package.json at this level: keep climbing
    }
    dir = new URL('../', dir);
  }
  return 'unknown';
}
