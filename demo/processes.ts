// The demo's child processes (memcached servers and mcrelay proxies). Every one is
// registered here and stopped by its own PID, never by name: at the end, on
// Ctrl-C, and when the demo throws. stopAll() waits until each child has exited,
// so none is left behind, not even as a zombie.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const HOST = '127.0.0.1';

/** When set, each child's output is also appended to <logDir>/<name>.log. */
let logDir: string | null = null;
export function setLogDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  logDir = dir;
}

export class Child {
  /** The last output of the process (stdout and stderr), for when it dies unexpectedly. */
  private tail = '';
  /** Told each whole line of stderr (mcrelay's JSON log lines), see onLogLine(). */
  private readonly logListeners: Array<(line: string) => void> = [];
  private partialLine = '';
  readonly exited: Promise<void>;
  /** Set when the demo stops the process on purpose. */
  expectedExit = false;

  constructor(readonly name: string, readonly child: ChildProcess, readonly port: number) {
    const file = logDir === null ? null : fs.createWriteStream(path.join(logDir, `${name.replace(/ /g, '-')}.log`), { flags: 'a' });
    const keep = (d: Buffer): void => {
      this.tail = (this.tail + d.toString()).slice(-4000);
      file?.write(d);
    };
    child.once('exit', () => file?.end());
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.stderr?.on('data', (d: Buffer) => {
      if (this.logListeners.length === 0) return;
      const lines = (this.partialLine + d.toString()).split('\n');
      this.partialLine = lines.pop()!;
      for (const line of lines) for (const fn of this.logListeners) fn(line);
    });
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
  }

  get pid(): number { return this.child.pid ?? -1; }
  get addr(): string { return `${HOST}:${this.port}`; }
  get alive(): boolean { return this.child.exitCode === null && this.child.signalCode === null; }
  get output(): string { return this.tail; }

  /** Calls fn with each line the process writes to stderr from now on (mcrelay logs there). */
  onLogLine(fn: (line: string) => void): void {
    this.logListeners.push(fn);
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.alive) return;
    try { process.kill(this.pid, sig); } catch { /* exited meanwhile */ }
  }
}

const children = new Set<Child>();
/** The PID of every process the demo started, in order (also those that exited). */
export const startedPids: number[] = [];

/** Calls fn(child, code, signal) when a child the demo did not stop exits. */
let onUnexpectedExit: ((c: Child, code: number | null, signal: NodeJS.Signals | null) => void) | null = null;
export function watchUnexpectedExits(fn: typeof onUnexpectedExit): void { onUnexpectedExit = fn; }

function register(c: Child): Child {
  children.add(c);
  if (c.child.pid !== undefined) startedPids.push(c.child.pid);
  c.child.once('exit', (code, signal) => {
    if (!c.expectedExit && onUnexpectedExit !== null) onUnexpectedExit(c, code, signal);
  });
  // A spawn failure (ENOENT, EACCES) arrives as an error event; the exit promise
  // resolves through 'exit', which Node emits after it too.
  c.child.once('error', () => { /* reported by the exit handler or the port wait */ });
  return c;
}

/** SIGKILLs whatever is still running; synchronous, for process 'exit'. */
export function killAllNow(): void {
  for (const c of children) c.signal('SIGKILL');
}

/** Stops every child: SIGTERM, then SIGKILL after graceMs; resolves once all have exited. */
export async function stopAll(graceMs = 3000): Promise<void> {
  const all = [...children];
  for (const c of all) { c.expectedExit = true; c.signal('SIGTERM'); }
  const timer = setTimeout(() => { for (const c of all) c.signal('SIGKILL'); }, graceMs);
  await Promise.all(all.map((c) => c.exited));
  clearTimeout(timer);
  children.clear();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A loopback port that was free a moment ago (not one of `taken`). */
export async function freePort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = net.createServer();
      s.unref();
      s.on('error', reject);
      s.listen(0, HOST, () => {
        const { port: p } = s.address() as net.AddressInfo;
        s.close(() => resolve(p));
      });
    });
    if (!taken.has(port)) { taken.add(port); return port; }
  }
}

/** Resolves once something accepts TCP connections on the port; rejects if the child exits first. */
export async function waitForPort(c: Child, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!c.alive) throw new Error(`${c.name} exited before listening on ${c.addr}:\n${c.output}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(c.port, HOST);
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${c.name} does not listen on ${c.addr} after ${timeoutMs} ms:\n${c.output}`);
    await sleep(25);
  }
}

/** Whether `bin` runs (memcached -V); false when it is not installed. */
export function memcachedAvailable(bin: string): boolean {
  const r = spawnSync(bin, ['-V'], { stdio: 'ignore', timeout: 5000 });
  return r.error === undefined && r.status === 0;
}

export function startMemcached(bin: string, name: string, port: number): Child {
  const args = ['-l', HOST, '-p', String(port), '-U', '0', '-m', '64', '-c', '1024', '-t', '1'];
  // memcached refuses to run as root unless told which user to stay.
  if (process.getuid?.() === 0) args.push('-u', 'root');
  return register(new Child(name, spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] }), port));
}

export function startProxy(cli: string, name: string, port: number, flags: string[]): Child {
  const child = spawn(process.execPath, [cli, '-l', HOST, '-p', String(port), ...flags], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return register(new Child(name, child, port));
}
