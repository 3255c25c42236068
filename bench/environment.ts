// What a result was measured on: commit, machine, and the versions of the
// programs compared.
import { spawnSync } from 'node:child_process';
import { cpus, availableParallelism, release } from 'node:os';
import { fileURLToPath } from 'node:url';

export interface Environment {
  date: string;
  commit: string;
  nproc: number;
  cpuModel: string;
  kernel: string;
  node: string;
  memcached: string;
  twemproxy: string;
}

// dist/bench/environment.js -> the repository root
const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** stdout and stderr of a command (nutcracker -V prints to stderr), '' if it cannot run. */
function run(cmd: string, args: readonly string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error !== undefined) return '';
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
}

/** Short commit of the work tree, with "+dirty" when it has uncommitted changes. */
export function commitId(): string {
  const head = run('git', ['rev-parse', '--short', 'HEAD'], REPO);
  if (!/^[0-9a-f]+$/.test(head)) return 'unknown';
  const dirty = run('git', ['status', '--porcelain', '--untracked-files=no'], REPO) !== '';
  return dirty ? `${head}+dirty` : head;
}

export function environment(): Environment {
  const firstLine = (s: string): string => s.split('\n')[0] ?? '';
  return {
    date: new Date().toISOString(),
    commit: commitId(),
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    kernel: release(),
    node: process.version,
    memcached: firstLine(run('memcached', ['-V'])) || 'absent',
    twemproxy: firstLine(run('nutcracker', ['-V'])).replace(/^This is /, '') || 'absent',
  };
}

export function repoRoot(): string {
  return REPO;
}
