// Health table micro-benchmark: HealthTable.isUp, the shared-memory read every
// routed request makes (an Atomics.load from a SharedArrayBuffer).
//
//   node dist/bench/micro/health.bench.js
import { DOWN, HealthTable } from '../../src/shared/health.js';
import { DEFAULT_MICRO, formatMicroTable, isMain, runSuite, sink, type MicroOptions, type MicroRow, type MicroTask } from './suite.js';

const BATCH = 4096;
const SERVERS = 6;

export function healthTasks(): MicroTask[] {
  const table = new HealthTable(SERVERS);
  table.setState(3, DOWN);
  const servers = new Int32Array(BATCH);
  for (let i = 0; i < BATCH; i++) servers[i] = (Math.imul(i + 1, 0x9e3779b1) >>> 0) % SERVERS;
  return [{
    name: 'HealthTable.isUp (6 servers, 1 down)',
    batch: BATCH,
    fn: () => {
      let up = 0;
      for (let i = 0; i < BATCH; i++) if (table.isUp(servers[i]!)) up++;
      sink.value ^= up;
    },
  }];
}

export async function healthBench(options: MicroOptions = DEFAULT_MICRO): Promise<MicroRow[]> {
  return runSuite('health table', healthTasks(), options);
}

if (isMain(import.meta.url)) {
  process.stdout.write(`node ${process.version}\n`);
  process.stdout.write(formatMicroTable(await healthBench()));
}
