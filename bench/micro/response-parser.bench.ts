// Backend response parser micro-benchmark: ResponseParser.read over BATCH
// replies back to back in one chunk, as a backend connection's receive() reads a
// pipelined stream. ns/op is per reply (a hit is a VALUE block and END; a
// 10-value multi-get is ten VALUE blocks and END).
//
//   node dist/bench/micro/response-parser.bench.js
import { Expect, Reply, ResponseParser } from '../../src/protocol/response-parser.js';
import { DEFAULT_MICRO, formatMicroTable, isMain, runSuite, sink, type MicroOptions, type MicroRow, type MicroTask } from './suite.js';

const BATCH = 1024;

function valueBlock(i: number, size: number): string {
  return `VALUE memtier-${1_000_000 + i} 0 ${size}\r\n${'x'.repeat(size)}\r\n`;
}

function repeated(make: (i: number) => string): Buffer {
  let s = '';
  for (let i = 0; i < BATCH; i++) s += make(i);
  return Buffer.from(s, 'latin1');
}

/** Reads every reply of a retrieval stream; counts END lines (one per reply). */
function readAll(parser: ResponseParser, stream: Buffer, valuesPerReply: number): () => void {
  const end = stream.length;
  return () => {
    let pos = 0;
    let replies = 0;
    let values = 0;
    while (pos < end) {
      const r = parser.read(stream, pos, end, Expect.RETRIEVAL);
      if (r === Reply.VALUE) values++;
      else if (r === Reply.END) replies++;
      else throw new Error(`unexpected reply outcome ${r}`);
      pos = parser.next;
    }
    if (replies !== BATCH || values !== BATCH * valuesPerReply) throw new Error(`read ${replies} replies / ${values} values`);
    sink.value ^= values;
  };
}

export function responseParserTasks(): MicroTask[] {
  const parser = new ResponseParser();
  const hit = repeated((i) => `${valueBlock(i, 100)}END\r\n`);
  const miss = repeated(() => 'END\r\n');
  const multi = repeated((i) => {
    let s = '';
    for (let k = 0; k < 10; k++) s += valueBlock(i * 10 + k, 100);
    return `${s}END\r\n`;
  });
  return [
    { name: 'get hit, 100 B value', batch: BATCH, fn: readAll(parser, hit, 1) },
    { name: 'get miss', batch: BATCH, fn: readAll(parser, miss, 0) },
    { name: 'multi-get, 10 values of 100 B', batch: BATCH, fn: readAll(parser, multi, 10) },
  ];
}

export async function responseParserBench(options: MicroOptions = DEFAULT_MICRO): Promise<MicroRow[]> {
  return runSuite('response parser', responseParserTasks(), options);
}

if (isMain(import.meta.url)) {
  process.stdout.write(`node ${process.version}; ns/op is per reply\n`);
  process.stdout.write(formatMicroTable(await responseParserBench()));
}
