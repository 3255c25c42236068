// Child processes of the end-to-end bench: every server it starts is recorded
// here, and stopped when the bench ends, fails or is interrupted. Only PIDs this
// module spawned are ever signalled.
//
// Also the /proc readers the bench measures with: CPU ticks and RSS of a PID.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';

export interface Started {
  name: string;
  pid: number;
  child: ChildProcess;
  logFile: string;
  /** resolves with the exit code (or signal name) when the process ends */
  exited: Promise<number | string>;
}

const live = new Set<Started>();
const onInterrupt = new Set<() => void>();
let hooksInstalled = false;

/** Runs `fn` (synchronous) if the bench is interrupted by a signal; returns the undo. */
export function atInterrupt(fn: () => void): () => void {
  onInterrupt.add(fn);
  return () => { onInterrupt.delete(fn); };
}

/** SIGKILL for every child still running; synchronous, so it works in 'exit'. */
export function killAllNow(): void {
  for (const p of live) {
    try { process.kill(p.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  live.clear();
}

export function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}: stopping the servers it started\n`);
      killAllNow();
      for (const fn of onInterrupt) {
        try { fn(); } catch { /* best effort */ }
      }
      process.exit(130);
    });
  }
}

/** Spawns `cmd args`, stdout and stderr to `logDir/name.log`. */
export function startProcess(name: string, cmd: string, args: readonly string[], logDir: string): Started {
  installHooks();
  const logFile = join(logDir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  let p!: Started;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(p);
      resolve(code ?? signal ?? 'unknown');
    });
    child.once('error', () => {
      live.delete(p);
      resolve('spawn error');
    });
  });
  p = { name, pid: child.pid, child, logFile, exited };
  live.add(p);
  return p;
}

/** SIGTERM, then SIGKILL if still running after graceMs. */
export async function stopProcess(p: Started, graceMs = 3000): Promise<void> {
  if (!live.has(p)) return;
  try { p.child.kill('SIGTERM'); } catch { /* gone */ }
  const timer = setTimeout(() => { try { p.child.kill('SIGKILL'); } catch { /* gone */ } }, graceMs);
  await p.exited;
  clearTimeout(timer);
}

export function logTail(p: Started, lines = 15): string {
  try {
    return readFileSync(p.logFile, 'latin1').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** A loopback port that was free a moment ago (the kernel's choice). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Starts something on a free port, trying again on another one if it fails to
 * start: between freePort() and the server's bind, another process (a client's
 * ephemeral port) may take the port.
 */
export async function onFreePort<T>(start: (port: number) => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    const port = await freePort();
    try {
      return await start(port);
    } catch (err) {
      if (i >= attempts) throw err;
    }
  }
}

/**
 * Sends `request` until `expect` comes back (a server is up and, for a proxy,
 * reaches its backend), or throws after timeoutMs. With `ca` (a PEM file), over
 * TLS to a server whose certificate that CA signed for 127.0.0.1.
 */
export async function waitForReply(port: number, request: string, expect: string, timeoutMs: number, p?: Started, ca?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (p !== undefined && !live.has(p)) {
      throw new Error(`${p.name} exited during start-up:\n${logTail(p)}`);
    }
    try {
      const reply = await exchange(port, request, 1000, undefined, ca);
      if (reply.includes(expect)) return;
      lastError = `unexpected reply ${JSON.stringify(reply.slice(0, 80))}`;
    } catch (err) {
      lastError = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} did not answer ${JSON.stringify(request.trim())} within ${timeoutMs} ms (${lastError})` +
    (p !== undefined ? `\n${logTail(p)}` : ''));
}

/**
 * One request on a fresh connection (over TLS with `ca`, as waitForReply);
 * resolves with what arrived once `complete` says it is all there (by default:
 * it ends in CRLF, a one-line reply), or the server closed.
 */
export function exchange(
  port: number, request: string, timeoutMs: number, complete = (got: string): boolean => got.endsWith('\r\n'), ca?: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = ca === undefined ? net.connect(port, '127.0.0.1') : tls.connect({ port, host: '127.0.0.1', ca: readFileSync(ca) });
    let got = '';
    const timer = setTimeout(() => { s.destroy(); reject(new Error('timeout')); }, timeoutMs);
    s.on(ca === undefined ? 'connect' : 'secureConnect', () => s.write(request));
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (complete(got)) { clearTimeout(timer); s.destroy(); resolve(got); }
    });
    s.on('error', (err) => { clearTimeout(timer); reject(err); });
    s.on('close', () => { clearTimeout(timer); resolve(got); });
  });
}

let clockTicks = 0;

/** Clock ticks per second of /proc/<pid>/stat times (sysconf(_SC_CLK_TCK)). */
export function ticksPerSecond(): number {
  if (clockTicks === 0) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'latin1' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** The fields of a /proc/<pid>/stat text from field 3 (state) on. */
function statFields(stat: string): string[] {
  // The command name (field 2) may hold spaces; fields are counted after its ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** utime + stime of a process (all its threads), or of its thread `tid`, in microseconds. */
export function cpuMicros(pid: number | 'self', tid?: string): number {
  const fields = statFields(readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'latin1'));
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / ticksPerSecond();
}

/** cutime + cstime of a /proc/<pid>/stat text: the CPU of the children it has waited for, in microseconds. */
export function childrenCpuMicros(stat: string): number {
  const fields = statFields(stat);
  return ((Number(fields[13]) + Number(fields[14])) * 1e6) / ticksPerSecond();
}

/** Busy time (all but idle and iowait) of every CPU of the machine, in microseconds. */
export function machineBusyMicros(): number {
  const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!;
  return (busy * 1e6) / ticksPerSecond();
}

/** CPU time of this process and of every process it started that is still running. */
export function ownCpuMicros(): number {
  let total = cpuMicros('self');
  for (const p of live) {
    try { total += cpuMicros(p.pid); } catch { /* exited meanwhile */ }
  }
  return total;
}

/** VmRSS of a process in bytes. */
export function rssBytes(pid: number | 'self'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** The first directory on PATH holding an executable `name`, or null. */
export function which(name: string): string | null {
  try {
    const out = execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'latin1' }).trim();
    return out === '' ? null : out;
  } catch {
    return null;
  }
}
