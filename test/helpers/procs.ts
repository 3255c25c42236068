// Child processes started by tests: real memcached servers and mcrelay itself.
// Every process is registered so that it is killed (by its own PID) when the
// test process exits, also when a test fails or throws.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import './hooks.js';

const live = new Set<ChildProcess>();
function killAll(): void {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
  live.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => { killAll(); process.exit(130); });
}

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI = path.join(ROOT, 'dist/src/cli.js');
/** mcrelay with a hook to replace a worker on SIGUSR2 (test/helpers/harness.ts) */
export const HARNESS = path.join(ROOT, 'dist/test/helpers/harness.js');

/**
 * Ports for the servers a test starts. Under test/run.ts --jobs N each lane
 * (MCRELAY_TEST_LANE) takes ports from its own block below the kernel's
 * ephemeral range (32768-60999 on Linux): a port the kernel hands out with
 * listen(0) is free only until the server is up, and in that gap another test
 * file, or any outgoing connection, could be given it too (a server that then
 * cannot listen, or a test that talks to someone else's server). Alone, a
 * file takes what listen(0) gives.
 */
const LANE = process.env.MCRELAY_TEST_LANE;
const LANE_PORTS = 3000;
const LANE_BASE = 20000 + (Number(LANE ?? 0) % 4) * LANE_PORTS;
/** where the next search starts: the files of one lane run one after another */
let laneOffset = Math.floor(Math.random() * LANE_PORTS);

function listenable(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(port, '127.0.0.1', () => {
      const got = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(got));
    });
  });
}

/** A loopback port that was free a moment ago (and, under test/run.ts, is this lane's). */
export async function freePort(): Promise<number> {
  if (LANE === undefined) return listenable(0);
  for (let tries = 0; tries < LANE_PORTS; tries++) {
    const port = LANE_BASE + laneOffset++ % LANE_PORTS;
    try {
      return await listenable(port);
    } catch { /* taken: the next one */ }
  }
  throw new Error(`no free port in ${LANE_BASE}-${LANE_BASE + LANE_PORTS - 1}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves once something accepts connections on the port of 127.0.0.1, or on the unix socket path. */
export async function waitForPort(port: number | string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = typeof port === 'number' ? net.connect(port, '127.0.0.1') : net.connect(port);
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${typeof port === 'number' ? `127.0.0.1:${port}` : port} after ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Every thread of `pid` is stopped (state T or t); true when /proc cannot tell. */
function allStopped(pid: number): boolean {
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
      const state = stat[stat.lastIndexOf(')') + 2];
      if (state !== 'T' && state !== 't') return false;
    }
    return true;
  } catch {
    return true;
  }
}

/** signals after which a process goes on */
const PAUSES = new Set<NodeJS.Signals>(['SIGSTOP', 'SIGCONT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2']);

export class Proc {
  readonly child: ChildProcess;
  readonly port: number;
  output = '';
  private exited: Promise<number | null>;

  /** set once the test signals or stops the process: an exit after that is no news */
  private ending = false;

  /**
   * `name` set: an exit the test did not cause (no signal(), stop() or
   * expectExit()) is reported on stderr with the process's last output, in the
   * form test/run.ts repeats at the end of a failing file's log, so that a
   * test that fails later with ECONNREFUSED says why.
   */
  constructor(child: ChildProcess, port: number, name?: string) {
    this.child = child;
    this.port = port;
    live.add(child);
    child.stdout?.on('data', (d: Buffer) => { this.output += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { this.output += d.toString(); });
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      live.delete(child);
      if (name !== undefined && !this.ending) {
        const tail = this.output.trimEnd().split('\n').slice(-30).map((l) => `      ${l}`).join('\n');
        process.stderr.write(`\n${name} on 127.0.0.1:${port} (pid ${child.pid}) exited by itself (code ${code}, signal ${signal}); its last output:\n${tail}\n`);
      }
      resolve(code);
    }));
  }

  get pid(): number { return this.child.pid!; }
  get addr(): string { return `127.0.0.1:${this.port}`; }
  get alive(): boolean { return this.child.exitCode === null && this.child.signalCode === null; }

  signal(sig: NodeJS.Signals): void {
    if (!PAUSES.has(sig)) this.ending = true;
    if (this.alive) this.child.kill(sig);
  }

  /**
   * SIGSTOP, then waits until every thread of the process has stopped: kill()
   * returns before a process running on another core has, and what is sent to
   * it meanwhile is answered (a write the test meant to time out succeeds).
   */
  async pause(): Promise<void> {
    this.signal('SIGSTOP');
    const pid = this.child.pid;
    const deadline = Date.now() + 2000;
    while (pid !== undefined && Date.now() < deadline && !allStopped(pid)) await sleep(2);
  }

  async stop(sig: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    this.ending = true;
    if (this.alive) this.child.kill(sig);
    return this.exited;
  }

  /** The test makes the process end by other means (a command, a bad reload): not news. */
  expectExit(): void { this.ending = true; }

  wait(): Promise<number | null> { return this.exited; }

  /** Resolves true once the output holds `text`, false after timeoutMs or if the process ended. */
  async waitForOutput(text: string, timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.output.includes(text)) {
      if (!this.alive || Date.now() > deadline) return false;
      await sleep(10);
    }
    return true;
  }
}

export interface MemcachedOptions {
  port?: number;
  /** listen on this unix socket path instead of a TCP port (the Proc's port is then 0) */
  socketPath?: string;
  memoryMb?: number;
  extraArgs?: string[];
}

/** Starts a real memcached on 127.0.0.1 (or a unix socket) and waits until it accepts connections. */
export async function startMemcached(opts: MemcachedOptions = {}): Promise<Proc> {
  const sock = opts.socketPath;
  const port = sock !== undefined ? 0 : opts.port ?? await freePort();
  const listen = sock !== undefined ? ['-s', sock] : ['-l', '127.0.0.1', '-p', String(port), '-U', '0'];
  const args = [...listen, '-m', String(opts.memoryMb ?? 64), '-c', '4096', '-t', '1'];
  if (process.getuid?.() === 0) args.push('-u', 'root');
  args.push(...(opts.extraArgs ?? []));
  const child = spawn('memcached', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const p = new Proc(child, port, 'memcached');
  await Promise.race([
    waitForPort(sock ?? port),
    p.wait().then((code) => { throw new Error(`memcached exited with ${code}: ${p.output}`); }),
  ]);
  return p;
}

/**
 * The suite's run in portable mode: files about what only the fast path has
 * (the handoff pipe, -u/-g, unix sockets; portable mode refuses the last two,
 * as io.test shows) register their tests only outside it.
 */
export const PORTABLE_RUN = process.env.MCRELAY_TEST_IO === 'portable';

/**
 * --io portable when MCRELAY_TEST_IO=portable, for the suite's run in portable
 * mode; a test that sets --io itself keeps its own.
 */
export function ioFlags(flags: readonly string[]): string[] {
  const mode = process.env.MCRELAY_TEST_IO;
  if (mode === undefined || mode === '' || flags.some((f) => f === '--io' || f.startsWith('--io='))) return [];
  return ['--io', mode];
}

/**
 * Starts mcrelay (the built CLI, or `entry` such as HARNESS) with the given
 * flags plus -l/-p (and --io from MCRELAY_TEST_IO), waits until it has said
 * "mcrelay started". Its signal handlers are set a moment later: before a
 * signal, HARNESS users wait for its "ready".
 */
export async function startProxy(flags: string[], opts: { port?: number; env?: NodeJS.ProcessEnv; entry?: string; onSpawn?: (p: Proc) => void } = {}): Promise<Proc> {
  const port = opts.port ?? await freePort();
  // Tests run many proxies at once: no admin listener unless a test asks for one.
  const admin = flags.some((f) => f.startsWith('--admin')) ? [] : ['--admin', 'off'];
  const child = spawn(process.execPath, [opts.entry ?? CLI, '-l', '127.0.0.1', '-p', String(port), ...admin, ...ioFlags(flags), ...flags], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  const p = new Proc(child, port, 'mcrelay');
  opts.onSpawn?.(p);
  // Ready is its "mcrelay started" line, logged once every listener is up. The
  // data port answering is not enough: the admin listener starts after it, and
  // in --io portable the port answers for a moment before the workers listen
  // (the main thread's claim on it, io/portable.ts claimPort), then refuses.
  const started = async (): Promise<void> => {
    if (!await p.waitForOutput('mcrelay started', 10_000) && p.alive) throw new Error(`mcrelay did not start within 10 s: ${p.output}`);
    await waitForPort(port, 10_000);
  };
  await Promise.race([
    started(),
    p.wait().then((code) => { throw new Error(`mcrelay exited with ${code}: ${p.output}`); }),
  ]);
  return p;
}
