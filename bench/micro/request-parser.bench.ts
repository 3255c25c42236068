// Request parser micro-benchmark: RequestParser.parse driven the way a client
// connection's receive() drives it (InputBuffer.push, parse until NEED_MORE,
// consume), without dispatching.
//
// Whole requests: BATCH requests back to back in one chunk, as a pipelining
// client sends them; ns/op is per request. The 10 KB set arrives in three chunks,
// so it exercises the NEED_MORE path and InputBuffer's one-allocation collect.
//
//   node dist/bench/micro/request-parser.bench.js
import { InputBuffer } from '../../src/io/buffers.js';
import { RequestParser } from '../../src/protocol/request-parser.js';
import { Parse } from '../../src/protocol/request-rules.js';
import { DEFAULT_MICRO, formatMicroTable, isMain, runSuite, sink, type MicroOptions, type MicroRow, type MicroTask } from './suite.js';

const BATCH = 1024;
const MAX_ITEM_SIZE = 1024 * 1024;

function key(i: number): string {
  return `memtier-${1_000_000 + i}`;
}

function repeated(make: (i: number) => string | Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < BATCH; i++) {
    const p = make(i);
    parts.push(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
  }
  return Buffer.concat(parts);
}

/** Parses every request of `chunk`; throws if one is not a plain REQUEST. */
function parseChunk(parser: RequestParser, input: InputBuffer, chunk: Buffer, expect: number): () => void {
  return () => {
    input.push(chunk, 0);
    const buf = input.buf;
    const end = input.end;
    let pos = input.pos;
    let n = 0;
    while (pos < end) {
      const r = parser.parse(buf, pos, end);
      if (r !== Parse.REQUEST) throw new Error(`unexpected parse outcome ${r}`);
      pos = parser.next;
      n += parser.keyCount;
    }
    input.consume(pos);
    if (n !== expect) throw new Error(`parsed ${n} keys, expected ${expect}`);
    sink.value ^= n;
  };
}

/** Sets arriving as three chunks each, pushed as three socket reads would be. */
const CHUNKED_BATCH = 64;

function parseChunked(parser: RequestParser, input: InputBuffer, chunks: readonly Buffer[]): () => void {
  let need = 0;
  return () => {
    let requests = 0;
    for (let c = 0; c < CHUNKED_BATCH * chunks.length; c++) {
      input.push(chunks[c % chunks.length]!, need);
      need = 0;
      const buf = input.buf;
      const end = input.end;
      let pos = input.pos;
      while (pos < end) {
        const r = parser.parse(buf, pos, end);
        if (r === Parse.NEED_MORE) { need = parser.need; break; }
        if (r !== Parse.REQUEST) throw new Error(`unexpected parse outcome ${r}`);
        pos = parser.next;
        requests++;
      }
      input.consume(pos);
    }
    if (requests !== CHUNKED_BATCH) throw new Error(`parsed ${requests} requests from the chunks, expected ${CHUNKED_BATCH}`);
    sink.value ^= parser.bytes;
  };
}

export function requestParserTasks(): MicroTask[] {
  const parser = new RequestParser(MAX_ITEM_SIZE);
  const input = new InputBuffer();
  const get1 = repeated((i) => `get ${key(i)}\r\n`);
  const get10 = repeated((i) => `get ${Array.from({ length: 10 }, (_, k) => key(i * 10 + k)).join(' ')}\r\n`);
  const value100 = 'x'.repeat(100);
  const set100 = repeated((i) => `set ${key(i)} 0 0 100\r\n${value100}\r\n`);
  const big = Buffer.concat([Buffer.from(`set ${key(0)} 0 0 10240\r\n`, 'latin1'), Buffer.alloc(10240, 0x78), Buffer.from('\r\n')]);
  const third = Math.ceil(big.length / 3);
  const chunks = [big.subarray(0, third), big.subarray(third, 2 * third), big.subarray(2 * third)];
  return [
    { name: 'get, 1 key', batch: BATCH, fn: parseChunk(parser, input, get1, BATCH) },
    { name: 'get, 10 keys', batch: BATCH, fn: parseChunk(parser, input, get10, BATCH * 10) },
    { name: 'set, 100 B value', batch: BATCH, fn: parseChunk(parser, input, set100, BATCH) },
    { name: 'set, 10 KB value in 3 chunks', batch: CHUNKED_BATCH, fn: parseChunked(parser, input, chunks) },
  ];
}

export async function requestParserBench(options: MicroOptions = DEFAULT_MICRO): Promise<MicroRow[]> {
  return runSuite('request parser', requestParserTasks(), options);
}

if (isMain(import.meta.url)) {
  process.stdout.write(`node ${process.version}; ns/op is per request\n`);
  process.stdout.write(formatMicroTable(await requestParserBench()));
}
