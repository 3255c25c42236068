// Measures the two ways of spreading client sockets over worker threads that
// docs/decisions/socket-handoff.md compares: the kernel's SO_REUSEPORT hashing
// (each worker listens itself) against mcrelay's handoff (main thread accepts,
// gives each socket to the least loaded worker). Reports clients per worker for
// 64 connections and connect+version+close cycles per second.
//   node dist/bench/e2e/accept-spread.js [workers=4] [cycles=5000]
import net from 'node:net';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { parseArgv } from '../../src/config/argv.js';
import { start } from '../../src/main/start.js';

const workers = Number(process.argv[2] ?? 4);
const cycles = Number(process.argv[3] ?? 5000);

if (!isMainThread) {
  // reusePort listener: counts clients, answers one line per request.
  const { port } = workerData as { port: number };
  let clients = 0;
  const server = net.createServer((s) => {
    clients++;
    s.on('data', () => s.write('VERSION x\r\n'));
    s.on('error', () => {});
  });
  server.listen({ port, host: '127.0.0.1', reusePort: true } as net.ListenOptions, () => parentPort!.postMessage('up'));
  parentPort!.on('message', () => parentPort!.postMessage(clients));
} else {
  const connectMany = async (port: number, n: number): Promise<net.Socket[]> =>
    Promise.all(Array.from({ length: n }, () => new Promise<net.Socket>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s));
    })));
  const cycle = async (port: number, n: number): Promise<number> => {
    const t0 = performance.now();
    let left = n;
    const one = (): Promise<void> => new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('version\r\n'));
      s.once('data', () => { s.destroy(); resolve(); });
      s.on('error', () => resolve());
    });
    await Promise.all(Array.from({ length: 50 }, async () => { while (left-- > 0) await one(); }));
    return n / ((performance.now() - t0) / 1000);
  };

  // SO_REUSEPORT
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  probe.close();
  const ws = Array.from({ length: workers }, () => new Worker(new URL(import.meta.url), { workerData: { port } }));
  await Promise.all(ws.map((w) => new Promise((r) => w.once('message', r))));
  const socks = await connectMany(port, 64);
  await new Promise((r) => setTimeout(r, 200));
  const counts = await Promise.all(ws.map((w) => new Promise<number>((r) => { w.once('message', r); w.postMessage('count'); })));
  socks.forEach((s) => s.destroy());
  const rpRate = await cycle(port, cycles);
  await Promise.all(ws.map((w) => w.terminate()));
  console.log(`reusePort: 64 clients over ${workers} workers: [${counts.join(', ')}]; ${rpRate.toFixed(0)} connect+version+close/s`);

  // mcrelay handoff (no backend needed for `version`)
  const parsed = parseArgv(['-l', '127.0.0.1', '-p', '1', '-s', '127.0.0.1:1', '--workers', String(workers), '--admin', 'off']);
  if (parsed.kind !== 'run') throw new Error('bad flags');
  const { config } = parsed;
  const running = await start({ ...config, listen: { ...config.listen, port: 0 } });
  const hport = (running.addresses[0] as net.AddressInfo).port;
  const hs = await connectMany(hport, 64);
  await new Promise((r) => setTimeout(r, 200));
  const load = running.supervisor.load();
  hs.forEach((s) => s.destroy());
  await new Promise((r) => setTimeout(r, 200));
  const hRate = await cycle(hport, cycles);
  console.log(`handoff:   64 clients over ${workers} workers: [${load.join(', ')}]; ${hRate.toFixed(0)} connect+version+close/s`);
  await running.stop();
}
