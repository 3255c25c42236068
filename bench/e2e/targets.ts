// What the end-to-end bench measures, and how each is started on free loopback
// ports. All targets of a scenario share one memcached (the "master"); the
// backup-pool variant of mcrelay also writes to a second one.
//
//   loadgen --> memcached (direct)                     --.
//   loadgen --> mcrelay --workers 1 ------------------->  |
//   loadgen --> mcrelay --workers 2 ------------------->  +--> memcached "master"
//   loadgen --> mcrelay --workers 1 --io portable ----->  |
//   loadgen --> mcrelay --workers 1 -b backup ---------> -+--> memcached "backup"
//   loadgen --> twemproxy (nutcracker) ---------------->  |
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, onFreePort, startProcess, stopProcess, waitForReply, which, type Started } from './processes.js';

export type TargetId = 'memcached' | 'mcrelay-w1' | 'mcrelay-portable-w1' | 'mcrelay-w2' | 'mcrelay-w1-backup' | 'twemproxy';

export interface TargetSpec {
  id: TargetId;
  label: string;
}

export const TARGETS: readonly TargetSpec[] = [
  { id: 'memcached', label: 'memcached direct' },
  { id: 'mcrelay-w1', label: 'mcrelay --workers 1' },
  { id: 'mcrelay-portable-w1', label: 'mcrelay --workers 1 --io portable' },
  { id: 'mcrelay-w2', label: 'mcrelay --workers 2' },
  { id: 'mcrelay-w1-backup', label: 'mcrelay --workers 1, backup pool' },
  { id: 'twemproxy', label: 'twemproxy' },
];

export interface Running {
  spec: TargetSpec;
  port: number;
  /** the proxy process measured for CPU and RSS; null for memcached direct */
  proxy: Started | null;
}

const READY_MS = 10_000;
const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

export function memcachedCommand(): string {
  const path = which('memcached');
  if (path === null) throw new Error('memcached is not on PATH: the end-to-end bench needs it (apt-get install memcached)');
  return path;
}

export function nutcrackerCommand(): string | null {
  return which('nutcracker');
}

/** memcached -t 1 on a free port; -u root only when running as root (memcached refuses root otherwise). */
export function startMemcached(name: string, logDir: string): Promise<{ port: number; proc: Started }> {
  return onFreePort(async (port) => {
    const args = ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-t', '1', '-m', '1024', '-c', '4096'];
    if (process.getuid?.() === 0) args.push('-u', 'root');
    const proc = startProcess(name, memcachedCommand(), args, logDir);
    await waitForReply(port, 'version\r\n', 'VERSION', READY_MS, proc);
    return { port, proc };
  });
}

/** mcrelay from this build (dist/src/cli.js), under this Node; nodeFlags go before the script, flags after it. */
export function startMcrelay(
  name: string, masterPort: number, backupPort: number | null, workers: number, logDir: string, nodeFlags: readonly string[] = [],
  flags: readonly string[] = [],
): Promise<{ port: number; proc: Started }> {
  return onFreePort(async (port) => {
    const args = [...nodeFlags, CLI, '-l', '127.0.0.1', '-p', String(port), '-s', `127.0.0.1:${masterPort}`, '--workers', String(workers), '--admin', 'off', ...flags];
    if (backupPort !== null) args.push('-b', `127.0.0.1:${backupPort}`);
    const proc = startProcess(name, process.execPath, args, logDir);
    // A get reaches the backend, so this also waits for the worker and its backend connection.
    await waitForReply(port, 'get bench:ready\r\n', 'END\r\n', READY_MS, proc);
    return { port, proc };
  });
}

export function startTwemproxy(path: string, masterPort: number, logDir: string): Promise<{ port: number; proc: Started }> {
  return onFreePort(async (port) => {
    let statsPort = await freePort();
    while (statsPort === port) statsPort = await freePort();
    const conf = join(logDir, `twemproxy-${port}.yml`);
    writeFileSync(conf, [
      'bench:',
      `  listen: 127.0.0.1:${port}`,
      '  hash: fnv1a_64',
      '  distribution: ketama',
      '  timeout: 5000',
      '  backlog: 1024',
      '  preconnect: true',
      '  auto_eject_hosts: false',
      '  servers:',
      `    - 127.0.0.1:${masterPort}:1`,
      '',
    ].join('\n'));
    const args = ['-c', conf, '-s', String(statsPort), '-a', '127.0.0.1', '-v', '4', '-o', join(logDir, `twemproxy-${port}.log`)];
    const proc = startProcess('twemproxy', path, args, logDir);
    await waitForReply(port, 'get bench:ready\r\n', 'END\r\n', READY_MS, proc);
    return { port, proc };
  });
}

export interface Backends {
  master: { port: number; proc: Started };
  backup: { port: number; proc: Started };
}

export async function startBackends(logDir: string): Promise<Backends> {
  const master = await startMemcached('memcached-master', logDir);
  const backup = await startMemcached('memcached-backup', logDir);
  return { master, backup };
}

/** Starts every target in `ids` (twemproxy only if nutcracker is installed). */
export async function startTargets(ids: readonly TargetId[], b: Backends, logDir: string): Promise<Running[]> {
  const twem = nutcrackerCommand();
  const running: Running[] = [];
  for (const spec of TARGETS) {
    if (!ids.includes(spec.id)) continue;
    switch (spec.id) {
      case 'memcached':
        running.push({ spec, port: b.master.port, proxy: null });
        break;
      case 'mcrelay-w1': {
        const r = await startMcrelay('mcrelay-w1', b.master.port, null, 1, logDir);
        running.push({ spec, port: r.port, proxy: r.proc });
        break;
      }
      case 'mcrelay-portable-w1': {
        const r = await startMcrelay('mcrelay-portable-w1', b.master.port, null, 1, logDir, [], ['--io', 'portable']);
        running.push({ spec, port: r.port, proxy: r.proc });
        break;
      }
      case 'mcrelay-w2': {
        const r = await startMcrelay('mcrelay-w2', b.master.port, null, 2, logDir);
        running.push({ spec, port: r.port, proxy: r.proc });
        break;
      }
      case 'mcrelay-w1-backup': {
        const r = await startMcrelay('mcrelay-w1-backup', b.master.port, b.backup.port, 1, logDir);
        running.push({ spec, port: r.port, proxy: r.proc });
        break;
      }
      case 'twemproxy': {
        if (twem === null) break;
        const r = await startTwemproxy(twem, b.master.port, logDir);
        running.push({ spec, port: r.port, proxy: r.proc });
        break;
      }
    }
  }
  return running;
}

export async function stopAll(targets: readonly Running[], b: Backends | null): Promise<void> {
  await Promise.all(targets.map((t) => (t.proxy !== null ? stopProcess(t.proxy) : Promise.resolve())));
  if (b !== null) await Promise.all([stopProcess(b.master.proc), stopProcess(b.backup.proc)]);
}
