// sameMeaning against a table of reply pairs as a master and a backup send them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sameMeaning } from '../../src/protocol/reply-meaning.js';

const ROWS: Array<[string, string, string, boolean]> = [
  ['cas values differ', 'HD c7\r\n', 'HD c1007\r\n', true],
  ['cas with key, base64 and opaque', 'HD c1 kaw== b O123\r\n', 'HD c99 kaw== b O123\r\n', true],
  ['EX c0 on both', 'EX c0\r\n', 'EX c0\r\n', true],
  ['status differs', 'HD c7\r\n', 'NS c0\r\n', false],
  ['key differs', 'HD kab\r\n', 'HD kac\r\n', false],
  ['a flag missing', 'HD c7 kab\r\n', 'HD c7\r\n', false],
  ['ttl a second apart', 'HD t99 c3\r\n', 'HD t100 c9\r\n', true],
  ['ttl two seconds apart', 'HD t98 c3\r\n', 'HD t100 c9\r\n', false],
  ['no expiry on one only', 'HD t-1\r\n', 'HD t0\r\n', false],
  ['no expiry on both', 'VA 1 c7 t-1\r\n5\r\n', 'VA 1 c8 t-1\r\n5\r\n', true],
  ['ma values differ', 'VA 1 c7\r\n5\r\n', 'VA 1 c8\r\n6\r\n', false],
  ['ma value lengths differ', 'VA 1 c7\r\n5\r\n', 'VA 2 c7\r\n15\r\n', false],
  ['opaque ignored', 'HD O1\r\n', 'HD O2\r\n', true],
  ['plain HD', 'HD\r\n', 'HD\r\n', true],
  ['HD against NF', 'HD\r\n', 'NF\r\n', false],
];

for (const [name, a, b, same] of ROWS) {
  test(`meta: ${name}`, () => {
    assert.is(sameMeaning(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'), true), same);
    assert.is(sameMeaning(Buffer.from(b, 'latin1'), Buffer.from(a, 'latin1'), true), same, 'either way round');
  });
}

test('text replies are compared byte for byte', () => {
  assert.ok(sameMeaning(Buffer.from('STORED\r\n'), Buffer.from('STORED\r\n'), false));
  assert.not.ok(sameMeaning(Buffer.from('11\r\n'), Buffer.from('12\r\n'), false));
  // a text reply is never read as meta flags
  assert.not.ok(sameMeaning(Buffer.from('HD c1\r\n'), Buffer.from('HD c2\r\n'), false));
});

test.run();
