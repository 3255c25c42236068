// ReadArena and InputBuffer: every socket of a thread reads into the same
// scratch buffer, so what a parser was handed must survive the next read.
// Outbox over a ReplyArena: every client of a thread copies its replies into the
// same slab, so what a socket was handed must survive the other clients' replies.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { findLF, InputBuffer, Outbox, ReadArena, ReplyArena, type Writable } from '../../src/io/buffers.js';

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
    const at = arena.keep(0, n);
    kept.push([arena.kept.subarray(at, at + n), text]);
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

/** A socket that keeps what it is handed by reference, as libuv does with a write it finishes later. */
class KeepingSocket implements Writable {
  readonly handed: Buffer[] = [];
  write(b: Buffer): boolean {
    this.handed.push(b);
    return true;
  }
  writev(chunks: Buffer[]): boolean {
    this.handed.push(...chunks);
    return true;
  }
  text(): string { return this.handed.map((b) => b.toString('latin1')).join(''); }
}

test('Outbox over a shared ReplyArena: interleaved clients each send their own bytes, in order, and bytes handed out are never overwritten', () => {
  const arena = new ReplyArena();
  const clients = Array.from({ length: 5 }, () => ({ out: new Outbox(arena), socket: new KeepingSocket(), expect: '' }));
  const big = 'v'.repeat(5000); // over the copy limit: kept by reference
  for (let turn = 0; turn < 400; turn++) {
    for (let piece = 0; piece < 3; piece++) {
      for (let c = 0; c < clients.length; c++) {
        if ((turn + c) % 3 === 0 && piece === 2) continue;
        const text = (turn * 7 + c) % 50 === 0 ? `VALUE ${big}\r\n` : `VALUE k${turn}.${c}.${piece} 0 3\r\nabc\r\n`;
        clients[c]!.out.addAll(Buffer.from(text, 'latin1'));
        clients[c]!.expect += text;
      }
    }
    for (const c of clients) c.out.flush(c.socket);
  }
  for (const c of clients) {
    // every write is read back only now, after later turns filled (and renewed) the slab
    assert.is(c.socket.text(), c.expect);
    assert.ok(c.socket.handed.length >= 400, 'a write per turn');
  }
});

test('findLF: the first LF within [pos, end), in short and long lines alike, never one at or past end', () => {
  for (const len of [0, 1, 20, 63, 64, 65, 200, 5000]) {
    const line = Buffer.from('x'.repeat(len) + '\nyy\n', 'latin1');
    for (const pos of [0, Math.min(len, 3)]) {
      assert.is(findLF(line, pos, line.length), len, `LF after ${len} bytes, from ${pos}`);
      assert.is(findLF(line, pos, len + 1), len, 'end just past the LF');
      assert.is(findLF(line, pos, len), -1, 'the LF at end is outside');
    }
  }
  assert.is(findLF(Buffer.from('x'.repeat(300), 'latin1'), 0, 300), -1, 'no LF at all');
});

test.run();
