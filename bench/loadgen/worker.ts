// One load thread (memtier's -t): runs -c connections in its own event loop and
// reports its counters and encoded latency histograms to the main thread once.
import { parentPort, workerData } from 'node:worker_threads';
import { encodeIntoCompressedBase64 } from 'hdr-histogram-js';
import { LoadConnection, ThreadContext, ThreadStats, Wire, WriteSlab } from './connection.js';
import type { FromWorker, ToWorker, WorkerInit } from './messages.js';
import { newLatencyHistogram } from './stats.js';
import { loadSecureContext } from './tls.js';

const READ_BUFFER_BYTES = 256 * 1024;
const SLAB_BYTES = 1024 * 1024;

async function main(): Promise<void> {
  const port = parentPort!;
  const post = (m: FromWorker): void => port.postMessage(m);
  const { options, threadIndex } = workerData as WorkerInit;

  const stats = new ThreadStats(newLatencyHistogram(), newLatencyHistogram());
  const wire = new Wire(options);
  const slab = new WriteSlab(Math.max(SLAB_BYTES, 4 * options.pipeline * wire.maxRequest));
  const ctx = new ThreadContext(options, wire, slab, Buffer.allocUnsafeSlow(READ_BUFFER_BYTES), stats, loadSecureContext(options));

  const conns: LoadConnection[] = [];
  for (let i = 0; i < options.clients; i++) conns.push(new LoadConnection(ctx, threadIndex * options.clients + i));
  try {
    await Promise.all(conns.map((c) => c.ready()));
  } catch (err) {
    for (const c of conns) c.close();
    post({ type: 'error', message: `connect to ${options.server}:${options.port} failed: ${(err as Error).message}` });
    return;
  }

  let started = false;
  let ended = false;
  let startTime = 0;
  const timers: NodeJS.Timeout[] = [];

  const end = (interrupted: boolean): void => {
    if (ended) return;
    ended = true;
    const endTime = performance.timeOrigin + performance.now();
    for (const t of timers) clearTimeout(t);
    for (const c of conns) c.close();
    post({
      type: 'done',
      result: {
        startTime: started ? startTime : endTime,
        endTime,
        setOps: stats.setOps,
        getOps: stats.getOps,
        hits: stats.hits,
        misses: stats.misses,
        setBytes: stats.setBytes,
        getBytes: stats.getBytes,
        errors: stats.errors,
        connectionErrors: stats.connectionErrors,
        interrupted,
        setHistogram: encodeIntoCompressedBase64(stats.setHist),
        getHistogram: encodeIntoCompressedBase64(stats.getHist),
      },
    });
    // the main thread terminates this thread once it has the result
  };

  const go = (): void => {
    if (started) return;
    started = true;
    const now = performance.now();
    startTime = performance.timeOrigin + now;
    ctx.running = conns.length;
    // The last reply arrives inside a socket callback: end the run after it returns.
    ctx.onIdle = () => setImmediate(() => end(false));
    if (options.testTime > 0) {
      timers.push(setTimeout(() => {
        ctx.stopping = true;
        for (const c of conns) c.stopIfIdle();
      }, options.testTime * 1000));
    }
    timers.push(setTimeout(() => end(true), options.safetyCapSeconds * 1000));
    const progress = setInterval(() => {
      post({ type: 'progress', ops: stats.setOps + stats.getOps, bytes: stats.setBytes + stats.getBytes });
    }, 1000);
    timers.push(progress);
    for (const c of conns) c.start(now);
  };

  port.on('message', (m: ToWorker) => {
    if (m.type === 'go') go();
    else if (m.type === 'abort') end(true);
  });
  post({ type: 'ready' });
}

void main().catch((err: unknown) => {
  parentPort?.postMessage({ type: 'error', message: String((err as Error)?.stack ?? err) } satisfies FromWorker);
});
