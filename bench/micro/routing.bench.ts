// Routing micro-benchmark: key hashing and bucket choice, ops/s on one core.
// Each sample routes a batch of keys laid out back to back (at unaligned offsets)
// in one buffer, as keys sit in a received chunk; timing single calls would
// measure the timer, not the hash.
//
//   node dist/bench/micro/routing.bench.js
import { Bench } from 'tinybench';
import xxhashWasm from 'xxhash-wasm';
import { jumpHash } from '../../src/routing/jump.js';
import { Router } from '../../src/routing/router.js';
import { initXxhash, xxh32 } from '../../src/routing/xxhash.js';

const BATCH = 1024;
const MASTERS = ['mc1:11211', 'mc2:11212', 'mc3:11213', 'mc4:11214'];
const BACKUPS = ['mc5:11215', 'mc6:11216'];

interface Keys { buf: Uint8Array; starts: Int32Array; len: number }

function makeKeys(len: number): Keys {
  const buf = new Uint8Array(BATCH * (len + 3) + 1);
  const starts = new Int32Array(BATCH);
  let seed = 0x9e3779b9 ^ len;
  for (let k = 0; k < BATCH; k++) {
    const start = 1 + k * (len + 3);
    for (let i = 0; i < len; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) | 0;
      buf[start + i] = 0x21 + ((seed >>> 16) % 94);
    }
    starts[k] = start;
  }
  return { buf, starts, len };
}

let sink = 0;

function benchXxh32({ buf, starts, len }: Keys): () => void {
  return () => {
    for (let k = 0; k < BATCH; k++) sink ^= xxh32(buf, starts[k]!, starts[k]! + len);
  };
}

function benchWasm(h32Raw: (b: Uint8Array, seed?: number) => number, { buf, starts, len }: Keys): () => void {
  return () => {
    for (let k = 0; k < BATCH; k++) sink ^= h32Raw(buf.subarray(starts[k]!, starts[k]! + len));
  };
}

function benchJump(buckets: number): () => void {
  const hashes = new Uint32Array(BATCH);
  for (let k = 0; k < BATCH; k++) hashes[k] = Math.imul(k + 1, 0x9e3779b1) >>> 0;
  return () => {
    for (let k = 0; k < BATCH; k++) sink ^= jumpHash(hashes[k]!, buckets);
  };
}

function benchRoute(router: Router, { buf, starts, len }: Keys): () => void {
  return () => {
    for (let k = 0; k < BATCH; k++) {
      router.route(buf, starts[k]!, starts[k]! + len);
      sink ^= router.master ^ router.backup;
    }
  };
}

await initXxhash();
const { h32Raw } = await xxhashWasm();
const k16 = makeKeys(16);
const k64 = makeKeys(64);

const bench = new Bench({ time: 1000, warmupTime: 200 });
bench
  .add('xxh32 (pure TS) 16 B', benchXxh32(k16))
  .add('xxh32 (pure TS) 64 B', benchXxh32(k64))
  .add('xxhash-wasm h32Raw(subarray) 16 B', benchWasm(h32Raw, k16))
  .add('xxhash-wasm h32Raw(subarray) 64 B', benchWasm(h32Raw, k64))
  .add('jumpHash, 4 buckets', benchJump(4))
  .add('jumpHash, 64 buckets', benchJump(64))
  .add('Router.route jump 16 B (4 masters + 2 backups)', benchRoute(new Router('jump', MASTERS, BACKUPS), k16))
  .add('Router.route jump 64 B', benchRoute(new Router('jump', MASTERS, BACKUPS), k64))
  .add('Router.route jump 16 B (4 masters, no backups)', benchRoute(new Router('jump', MASTERS, []), k16))
  .add('Router.route magent 16 B', benchRoute(new Router('magent', MASTERS, BACKUPS), k16))
  .add('Router.route magent 64 B', benchRoute(new Router('magent', MASTERS, BACKUPS), k64))
  .add('Router.route ketama 16 B', benchRoute(new Router('ketama', MASTERS, BACKUPS), k16))
  .add('Router.route ketama 64 B', benchRoute(new Router('ketama', MASTERS, BACKUPS), k64));

await bench.run();

const rows = bench.tasks.map((task) => {
  const r = task.result;
  if (r.state !== 'completed') return { task: task.name, 'ops/s': r.state, '± %': '', samples: 0 };
  const opsPerSec = (BATCH * 1000) / r.latency.mean;
  return {
    task: task.name,
    'ops/s': Math.round(opsPerSec).toLocaleString('en-US'),
    '± %': r.latency.rme.toFixed(2),
    samples: r.latency.samplesCount,
  };
});
console.log(`node ${process.version}, ${BATCH} keys per sample`);
console.table(rows);
if (sink === 0x12345678) console.log('');
