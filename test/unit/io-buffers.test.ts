// ReadArena and InputBuffer: every socket of a thread reads into the same
// scratch buffer, so what a parser was handed must survive the next read.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InputBuffer, ReadArena } from '../../src/protocol/io-buffers.js';

/** Simulates one socket read of `text` into the arena's scratch; returns its length. */
function read(arena: ReadArena, text: string): number {
  return arena.scratch.write(text, 0, 'latin1');
}

test('bytes kept from a read do not change when the next reads overwrite the scratch buffer', () => {
  const arena = new ReadArena();
  const kept: Array<[Buffer, string]> = [];
  // small reads share slabs, large ones get their own buffer; enough of both to roll over slabs
  for (let i = 0; i < 3000; i++) {
    const text = i % 100 === 7 ? `big-${i}-${'x'.repeat(20_000)}` : `get key:${i}\r\n`;
    const n = read(arena, text);
    kept.push([arena.keep(0, n), text]);
  }
  for (const [b, text] of kept) assert.is(b.toString('latin1'), text);
});

test('InputBuffer: a read taken while bytes are pending is appended; the pending bytes survive later reads', () => {
  const arena = new ReadArena();
  const input = new InputBuffer();
  input.pushRead(arena, 0, read(arena, 'set k 0 0 10\r\n01234'), 0);
  input.consume(14); // the command line was parsed; the data block is not complete
  input.pushRead(arena, 0, read(arena, '56789\r\nget a\r\n'), 17);
  assert.is(input.buf.toString('latin1', input.pos, input.end), '0123456789\r\nget a\r\n');
  read(arena, 'OVERWRITTEN-OVERWRITTEN-OVERWRITTEN');
  assert.is(input.buf.toString('latin1', input.pos, input.end), '0123456789\r\nget a\r\n');
});

test('InputBuffer: pushRead skips bytes before start (a data block being swallowed)', () => {
  const arena = new ReadArena();
  const input = new InputBuffer();
  input.pushRead(arena, 4, read(arena, 'xxx\nget b\r\n'), 0);
  assert.is(input.buf.toString('latin1', input.pos, input.end), 'get b\r\n');
});

test('InputBuffer: detach moves a partial command into a buffer of its own with room for what is needed', () => {
  const arena = new ReadArena();
  const input = new InputBuffer();
  input.pushRead(arena, 0, read(arena, 'get a\r\nset k 0 0 4\r\nab'), 0);
  const parsed = input.buf; // what a request parsed from the read holds on to
  input.consume(7);
  input.detach(19); // the whole request: 13 bytes of line, 4 of data, CRLF
  assert.is.not(input.buf, parsed);
  assert.ok(input.buf.length >= 19, 'room for the rest of the data block');
  assert.is(input.buf.toString('latin1', input.pos, input.end), 'set k 0 0 4\r\nab');
  assert.is(parsed.toString('latin1', 0, 7), 'get a\r\n', 'the bytes already parsed are untouched');
  input.pushRead(arena, 0, read(arena, 'cd\r\n'), 0);
  assert.is(input.buf.toString('latin1', input.pos, input.end), 'set k 0 0 4\r\nabcd\r\n');
});

test.run();
