// What the end-to-end bench measures, and how each is started on free loopback
// ports. All targets of a scenario share one memcached (the "master"); the
// backup-pool variant of mcrelay also writes to a second one.
//
// In the tls scenario the master is memcached -Z with two listeners, TLS and
// plain (notls:); only two targets run:
//
//   load --TLS--> memcached -Z (direct) ..................... the master's TLS listener
//   load --TLS--> mcrelay --workers 1 --tls-cert --plain--> the master's plain listener
//
//   loadgen --> memcached (direct)                     --.
//   loadgen --> mcrelay --workers 1 ------------------->  |
//   loadgen --> mcrelay --workers 2 ------------------->  +--> memcached "master"
//   loadgen --> mcrelay --workers 1 --io portable ----->  |
//   loadgen --> mcrelay --workers 1 -b backup ---------> -+--> memcached "backup"
//   loadgen --> twemproxy (nutcracker) ---------------->  |
//   loadgen --> memcached's proxy -t 1 ---------------->  |
//   loadgen --> memcached's proxy -t 1, backup pool ---> -'   (allsync writes, failover reads)
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchCerts } from './certs.js';
import { freePort, onFreePort, startProcess, stopProcess, waitForReply, which, type Started } from './processes.js';

export type TargetId = 'memcached' | 'mcrelay-w1' | 'mcrelay-portable-w1' | 'mcrelay-w2' | 'mcrelay-w1-backup' | 'twemproxy' | 'mcproxy' | 'mcproxy-backup'
  | `mcrelay-w${number}`;

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
  { id: 'mcproxy', label: 'memcached proxy -t 1' },
  { id: 'mcproxy-backup', label: 'memcached proxy -t 1, backup pool' },
];

/** Targets that speak only the text protocol to clients: left out of the binary scenario. */
export const TEXT_ONLY: readonly TargetId[] = ['twemproxy', 'mcproxy', 'mcproxy-backup'];

/**
 * The targets of the tls scenario: twemproxy and memcached's proxy (as built
 * here) take no TLS from clients; the other mcrelay variants differ from
 * mcrelay --workers 1 in what the plain scenarios already measure.
 */
export const TLS_TARGETS: readonly TargetId[] = ['memcached', 'mcrelay-w1'];

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

let mcproxyGiven: string | null = null;
let mcproxyFound: string | null | undefined;

/** `--mcproxy PATH`: the memcached built with --enable-proxy to measure. */
export function useMcproxy(path: string): void {
  mcproxyGiven = path;
  mcproxyFound = undefined;
}

/**
 * memcached's own proxy: `--mcproxy PATH`, else `memcached-proxy` on PATH; null
 * when neither is a memcached that knows `-o proxy_config` (distributions build
 * memcached without --enable-proxy).
 */
export function mcproxyCommand(): string | null {
  if (mcproxyFound !== undefined) return mcproxyFound;
  const path = mcproxyGiven ?? which('memcached-proxy');
  mcproxyFound = null;
  if (path !== null) {
    const r = spawnSync(path, ['-h'], { encoding: 'latin1', timeout: 10_000 });
    if (`${r.stdout}${r.stderr}`.includes('proxy_config')) mcproxyFound = path;
    else if (mcproxyGiven !== null) throw new Error(`--mcproxy ${path}: not a memcached built with --enable-proxy (its -h does not name proxy_config)`);
  }
  return mcproxyFound;
}

export interface StartedMemcached {
  /** its plain listener */
  port: number;
  /** with certificates: its TLS listener (-Z); else null */
  tlsPort: number | null;
  proc: Started;
}

/**
 * memcached -t 1 on a free port; -u root only when running as root (memcached
 * refuses root otherwise). With `certs`, TLS (-Z) on a second port, the first
 * kept plain (-l notls:).
 */
export function startMemcached(name: string, logDir: string, certs: BenchCerts | null = null): Promise<StartedMemcached> {
  return onFreePort(async (port) => {
    let tlsPort: number | null = null;
    const args = ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-t', '1', '-m', '1024', '-c', '4096'];
    if (certs !== null) {
      tlsPort = await freePort();
      while (tlsPort === port) tlsPort = await freePort();
      args.splice(0, 2, '-l', `notls:127.0.0.1:${port},127.0.0.1:${tlsPort}`, '-Z', '-o', `ssl_chain_cert=${certs.cert},ssl_key=${certs.key}`);
    }
    if (process.getuid?.() === 0) args.push('-u', 'root');
    const proc = startProcess(name, memcachedCommand(), args, logDir);
    await waitForReply(port, 'version\r\n', 'VERSION', READY_MS, proc);
    if (tlsPort !== null) await waitForReply(tlsPort, 'version\r\n', 'VERSION', READY_MS, proc, certs!.ca);
    return { port, tlsPort, proc };
  });
}

/** mcrelay from this build (dist/src/cli.js), under this Node; nodeFlags go before the script, flags after it. */
export function startMcrelay(
  name: string, masterPort: number, backupPort: number | null, workers: number, logDir: string, nodeFlags: readonly string[] = [],
  flags: readonly string[] = [],
): Promise<{ port: number; proc: Started }> {
  const servers = ['-s', `127.0.0.1:${masterPort}`, ...(backupPort !== null ? ['-b', `127.0.0.1:${backupPort}`] : [])];
  return launchMcrelay(name, () => [...servers, '--workers', String(workers), ...flags], logDir, nodeFlags);
}

/** mcrelay --workers 1 serving its clients over TLS (every TCP listener: --tls-cert without --tls-listen), plain to the master. */
export function startMcrelayTls(name: string, masterPort: number, certs: BenchCerts, logDir: string): Promise<{ port: number; proc: Started }> {
  const flags = ['-s', `127.0.0.1:${masterPort}`, '--workers', '1', '--tls-cert', certs.cert, '--tls-key', certs.key];
  return launchMcrelay(name, () => flags, logDir, [], certs.ca);
}

/**
 * mcrelay --workers `workers` --config FILE, the file written by `config(port)`
 * for the port it listens on (given as -l/-p too). SIGHUP re-reads the file.
 */
export function startMcrelayWithConfig(
  name: string, file: string, config: (port: number) => string, workers: number, logDir: string,
): Promise<{ port: number; proc: Started }> {
  return launchMcrelay(name, (port) => {
    writeFileSync(file, config(port));
    return ['--config', file, '--workers', String(workers)];
  }, logDir);
}

/**
 * mcrelay on a free loopback port, admin listener off, `flags(port)` after those; resolves once a get
 * reaches a backend (asked over TLS with `ca`, the CA of its certificate).
 */
function launchMcrelay(
  name: string, flags: (port: number) => string[], logDir: string, nodeFlags: readonly string[] = [], ca?: string,
): Promise<{ port: number; proc: Started }> {
  return onFreePort(async (port) => {
    const args = [...nodeFlags, CLI, '-l', '127.0.0.1', '-p', String(port), '--admin', 'off', ...flags(port)];
    const proc = startProcess(name, process.execPath, args, logDir);
    // A get reaches the backend, so this also waits for the worker and its backend connection.
    await waitForReply(port, 'get bench:ready\r\n', 'END\r\n', READY_MS, proc, ca);
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

/**
 * memcached's proxy with one worker thread and a routelib configuration the
 * bench writes: the master alone (route_direct), or with the backup as its
 * route library offers it to a user who wants one: every command to both and
 * the first answer back (route_allsync), reads from the master and from the
 * backup on a failure (route_failover).
 */
export function startMcproxy(path: string, masterPort: number, backupPort: number | null, logDir: string): Promise<{ port: number; proc: Started }> {
  return onFreePort(async (port) => {
    const conf = join(logDir, `mcproxy-${port}.lua`);
    const pools = [`    main = { backends = { "127.0.0.1:${masterPort}" } },`];
    if (backupPort !== null) pools.push(`    backup = { backends = { "127.0.0.1:${backupPort}" } },`);
    const reads = ['get', 'gets', 'mg'].map((c) => `        ${c} = route_failover{ children = { "main", "backup" } },`);
    const routes = backupPort === null
      ? ['    default = route_direct{ child = "main" },']
      : ['    cmap = {', ...reads, '    },', '    default = route_allsync{ children = { "main", "backup" } },'];
    writeFileSync(conf, ['pools{', ...pools, '}', 'routes{', ...routes, '}', ''].join('\n'));
    const args = ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-t', '1', '-c', '4096', '-o', `proxy_config=routelib,proxy_arg=${conf}`];
    if (process.getuid?.() === 0) args.push('-u', 'root');
    const proc = startProcess(backupPort === null ? 'mcproxy' : 'mcproxy-backup', path, args, logDir);
    await waitForReply(port, 'get bench:ready\r\n', 'END\r\n', READY_MS, proc);
    return { port, proc };
  });
}

export interface Backends {
  master: StartedMemcached;
  backup: StartedMemcached;
}

/** The master and the backup; with `certs` the master also serves TLS (its tlsPort). */
export async function startBackends(logDir: string, certs: BenchCerts | null = null): Promise<Backends> {
  const master = await startMemcached('memcached-master', logDir, certs);
  const backup = await startMemcached('memcached-backup', logDir);
  return { master, backup };
}

/**
 * Starts every target in `ids` (twemproxy only if nutcracker is installed, memcached's proxy only if found).
 * With `certs`, the TLS ones of TLS_TARGETS only, each labelled ", TLS": memcached direct is the
 * master's TLS listener, mcrelay takes TLS from clients and speaks plain to the master.
 */
export async function startTargets(ids: readonly TargetId[], b: Backends, logDir: string, certs: BenchCerts | null = null): Promise<Running[]> {
  if (certs !== null) return startTlsTargets(ids, b, certs, logDir);
  const twem = nutcrackerCommand();
  const mcproxy = ids.includes('mcproxy') || ids.includes('mcproxy-backup') ? mcproxyCommand() : null;
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
      case 'mcproxy':
      case 'mcproxy-backup': {
        if (mcproxy === null) break;
        const r = await startMcproxy(mcproxy, b.master.port, spec.id === 'mcproxy' ? null : b.backup.port, logDir);
        running.push({ spec, port: r.port, proxy: r.proc });
        break;
      }
    }
  }
  return running;
}

async function startTlsTargets(ids: readonly TargetId[], b: Backends, certs: BenchCerts, logDir: string): Promise<Running[]> {
  const running: Running[] = [];
  for (const spec of TARGETS) {
    if (!ids.includes(spec.id) || !TLS_TARGETS.includes(spec.id)) continue;
    const label = { ...spec, label: `${spec.label}, TLS` };
    if (spec.id === 'memcached') {
      running.push({ spec: label, port: b.master.tlsPort!, proxy: null });
    } else if (spec.id === 'mcrelay-w1') {
      const r = await startMcrelayTls(`${spec.id}-tls`, b.master.port, certs, logDir);
      running.push({ spec: label, port: r.port, proxy: r.proc });
    }
  }
  return running;
}

/** The scaling scenario's targets: mcrelay --workers 1..n on the same master. */
export async function startWorkersSweep(n: number, b: Backends, logDir: string): Promise<Running[]> {
  const running: Running[] = [];
  for (let k = 1; k <= n; k++) {
    const spec: TargetSpec = { id: `mcrelay-w${k}`, label: `mcrelay --workers ${k}` };
    const r = await startMcrelay(spec.id, b.master.port, null, k, logDir);
    running.push({ spec, port: r.port, proxy: r.proc });
  }
  return running;
}

export async function stopAll(targets: readonly Running[], b: Backends | null): Promise<void> {
  await Promise.all(targets.map((t) => (t.proxy !== null ? stopProcess(t.proxy) : Promise.resolve())));
  if (b !== null) await Promise.all([stopProcess(b.master.proc), stopProcess(b.backup.proc)]);
}
