// A local process trying to become a worker's handoff pipe: it reads
// /proc/net/unix over and over, connects to every mcrelay socket it lists (the
// name is no secret: that file is world-readable) and sends junk, as an
// attacker would. Started with another uid by the tests (or as root, which the
// socket's mode does not stop, to reach the token check). On SIGTERM it prints
// what it got as one JSON line and exits.
//
//   node dist/test/helpers/handoff-prober.js <seconds at most> <name part, e.g. mcrelay-1234->
import fs from 'node:fs';
import net from 'node:net';

const deadline = Date.now() + Number(process.argv[2] ?? 60) * 1000;
/** only sockets whose name holds this (one proxy's, by its pid) */
const only = process.argv[3] ?? 'mcrelay-';
const result = { rounds: 0, attempts: 0, connected: 0, bytesReceived: 0, errors: {} as Record<string, number>, paths: [] as string[] };
let stopping = false;

function candidates(): string[] {
  const out: string[] = [];
  for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const p = line.trim().split(/\s+/)[7];
    if (p !== undefined && p.includes(only)) out.push(p.startsWith('@') ? `\0${p.slice(1)}` : p);
  }
  return [...new Set(out)];
}

function attempt(p: string): Promise<void> {
  return new Promise((resolve) => {
    result.attempts++;
    const s = net.connect(p);
    const t = setTimeout(() => s.destroy(), 3000);
    s.on('connect', () => { result.connected++; s.write('0123456789abcdef0123456789abcdef'); });
    s.on('data', (d: Buffer) => { result.bytesReceived += d.length; });
    s.on('error', (err: NodeJS.ErrnoException) => { const c = err.code ?? 'other'; result.errors[c] = (result.errors[c] ?? 0) + 1; });
    s.on('close', () => { clearTimeout(t); resolve(); });
  });
}

process.on('SIGTERM', () => { stopping = true; });
while (!stopping && Date.now() < deadline) {
  result.rounds++;
  const ps = candidates();
  for (const p of ps) if (!result.paths.includes(p.replace('\0', '@'))) result.paths.push(p.replace('\0', '@'));
  await Promise.all(ps.map(attempt));
  await new Promise((r) => setImmediate(r));
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
