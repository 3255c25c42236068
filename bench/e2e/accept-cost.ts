// What one client connection costs each thread of mcrelay: the main thread
// accepts and hands the socket to a worker (the fast path), or does nothing
// (--io portable: each worker accepts on its own reusePort listener). Clients
// connect, send `version`, read the answer and close, 50 at a time; each
// thread's CPU comes from /proc/<pid>/task/<tid>/stat (10 ms ticks, so the
// figures move in steps of 10,000 / connections µs). bench/README.md "Scaling".
//   node dist/bench/e2e/accept-cost.js [workers=2] [connections=5000] [rounds=3]
import net from 'node:net';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuMicros, installHooks, stopProcess } from './processes.js';
import { startMcrelay, startMemcached } from './targets.js';

const workers = Number(process.argv[2] ?? 2);
const connections = Number(process.argv[3] ?? 5000);
const rounds = Number(process.argv[4] ?? 3);

/** CPU µs of each thread of `pid`, by "tid name". */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'latin1').trim();
      out.set(`${tid} ${name}`, cpuMicros(pid, tid));
    } catch {
      // a thread that ended
    }
  }
  return out;
}

function cycle(port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('version\r\n'));
    s.once('data', () => { s.destroy(); resolve(); });
    s.on('error', () => resolve());
  });
}

async function measure(port: number, pid: number): Promise<{ perSecond: number; main: number; workers: number }> {
  const before = threadCpu(pid);
  const t0 = performance.now();
  let left = connections;
  await Promise.all(Array.from({ length: 50 }, async () => { while (left-- > 0) await cycle(port); }));
  const seconds = (performance.now() - t0) / 1000;
  let main = 0;
  let work = 0;
  for (const [thread, us] of threadCpu(pid)) {
    const d = us - (before.get(thread) ?? 0);
    if (thread.endsWith(' MainThread') || thread.startsWith(`${pid} `)) main += d;
    else if (thread.endsWith(' WorkerThread')) work += d;
  }
  return { perSecond: connections / seconds, main: main / connections, workers: work / connections };
}

installHooks();
const logDir = mkdtempSync(join(tmpdir(), 'mcrelay-accept-'));
const backend = await startMemcached('memcached', logDir);
try {
  for (const [label, flags] of [['handoff (default)', []], ['--io portable', ['--io', 'portable']]] as const) {
    const relay = await startMcrelay(`mcrelay-${label}`, backend.port, null, workers, logDir, [], flags);
    try {
      await measure(relay.port, relay.proc.pid); // warm-up
      for (let r = 1; r <= rounds; r++) {
        const m = await measure(relay.port, relay.proc.pid);
        console.log(`${label.padEnd(18)} round ${r}: ${m.perSecond.toFixed(0)} connections/s; CPU per connection: main thread ${m.main.toFixed(1)} µs, workers ${m.workers.toFixed(1)} µs (${workers} workers together)`);
      }
    } finally {
      await stopProcess(relay.proc);
    }
  }
} finally {
  await stopProcess(backend.proc);
}
