// Routing micro-benchmark: key hashing and bucket choice, ops/s on one core.
// Router.route (one hash, then a master and a backup bucket) is what a request
// pays; the hash and bucket rows below it compare the pieces and the
// alternatives (xxhash-wasm, see docs/decisions/xxhash.md).
// Each sample routes a batch of keys laid out back to back (at unaligned offsets)
// in one buffer, as keys sit in a received chunk; timing single calls would
// measure the timer, not the hash.
//
//   node dist/bench/micro/routing.bench.js
import xxhashWasm from 'xxhash-wasm';
import { jumpHash } from '../../src/routing/jump.js';
import { Router } from '../../src/routing/router.js';
import { xxh32 } from '../../src/routing/xxhash.js';
import { DEFAULT_MICRO, formatMicroTable, isMain, runSuite, sink, type MicroOptions, type MicroRow, type MicroTask } from './suite.js';

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

function benchXxh32({ buf, starts, len }: Keys): () => void {
  return () => {
    for (let k = 0; k < BATCH; k++) sink.value ^= xxh32(buf, starts[k]!, starts[k]! + len);
  };
}

function benchWasm(h32Raw: (b: Uint8Array, seed?: number) => number, { buf, starts, len }: Keys): () => void {
  return () => {
    for (let k = 0; k < BATCH; k++) sink.value ^= h32Raw(buf.subarray(starts[k]!, starts[k]! + len));
  };
}

function benchJump(buckets: number): () => void {
  const hashes = new Uint32Array(BATCH);
  for (let k = 0; k < BATCH; k++) hashes[k] = Math.imul(k + 1, 0x9e3779b1) >>> 0;
  return () => {
    for (let k = 0; k < BATCH; k++) sink.value ^= jumpHash(hashes[k]!, buckets);
  };
}

function benchRoute(router: Router, { buf, starts, len }: Keys): () => void {
  return () => {
    for (let k = 0; k < BATCH; k++) {
      router.route(buf, starts[k]!, starts[k]! + len);
      sink.value ^= router.master ^ router.backup;
    }
  };
}

export async function routingTasks(): Promise<MicroTask[]> {
  const { h32Raw } = await xxhashWasm();
  const k16 = makeKeys(16);
  const k64 = makeKeys(64);
  const task = (name: string, fn: () => void): MicroTask => ({ name, batch: BATCH, fn });
  return [
    task('Router.route jump 16 B (4 masters + 2 backups)', benchRoute(new Router('jump', MASTERS, BACKUPS), k16)),
    task('Router.route jump 64 B', benchRoute(new Router('jump', MASTERS, BACKUPS), k64)),
    task('Router.route jump 16 B (4 masters, no backups)', benchRoute(new Router('jump', MASTERS, []), k16)),
    task('Router.route magent 16 B', benchRoute(new Router('magent', MASTERS, BACKUPS), k16)),
    task('Router.route magent 64 B', benchRoute(new Router('magent', MASTERS, BACKUPS), k64)),
    task('Router.route ketama 16 B', benchRoute(new Router('ketama', MASTERS, BACKUPS), k16)),
    task('Router.route ketama 64 B', benchRoute(new Router('ketama', MASTERS, BACKUPS), k64)),
    task('xxh32 (pure TS) 16 B', benchXxh32(k16)),
    task('xxh32 (pure TS) 64 B', benchXxh32(k64)),
    task('xxhash-wasm h32Raw(subarray) 16 B', benchWasm(h32Raw, k16)),
    task('xxhash-wasm h32Raw(subarray) 64 B', benchWasm(h32Raw, k64)),
    task('jumpHash, 4 buckets', benchJump(4)),
    task('jumpHash, 64 buckets', benchJump(64)),
  ];
}

export async function routingBench(options: MicroOptions = DEFAULT_MICRO): Promise<MicroRow[]> {
  return runSuite('hash + route', await routingTasks(), options);
}

if (isMain(import.meta.url)) {
  process.stdout.write(`node ${process.version}; ${BATCH} keys per sample, ns/op is per key\n`);
  process.stdout.write(formatMicroTable(await routingBench()));
}
