// Limits: what mcrelay does at the edges of the protocol and of its resources.
//
//   client --> mcrelay --workers 1 --> memcached M      (all clients on one worker)
//   client --> memcached R                              (the reference, same input)
//
// Where memcached defines the answer, the same bytes go to R directly and
// through mcrelay, and the replies must be equal (after the request, a sentinel
// request marks the end, or the connection closes). Where it is about the
// proxy's own resources (a client that never reads, too many connections,
// junk), the test asserts what every other client sees and reads the proxy's
// resident memory from /proc/<pid>/status.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { eventually, readReplies, roundTrip, setMany } from '../helpers/mc.js';
import { sleep, startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';

let M: Proc;
let R: Proc;
let proxy: Proc;

test.before(async () => {
  [M, R] = await Promise.all([startMemcached({ memoryMb: 256 }), startMemcached({ memoryMb: 256 })]);
  proxy = await startProxy(['-s', M.addr, '--workers', '1', '--max-item-size', '1m']);
});

test.after(async () => {
  await Promise.all([proxy?.stop(), M?.stop(), R?.stop()]);
});

const SENTINEL = 'set __end 0 0 10\r\n<sentinel>\r\nget __end\r\n';
const SENTINEL_REPLY = 'STORED\r\nVALUE __end 0 10\r\n<sentinel>\r\nEND\r\n';

/**
 * Sends `pieces` (each a separate write, a pause between) and then the
 * sentinel; returns the replies before the sentinel's, or what came before the
 * connection closed, marked "<closed>".
 */
async function send(port: number, pieces: Array<string | Buffer>, pauseMs = 30): Promise<string> {
  const c = await WireClient.connect(port);
  try {
    for (const p of pieces) {
      c.write(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
      await sleep(pauseMs);
    }
    if (!c.closed) c.write(SENTINEL);
    const out = (await c.readUntil((b) => b.toString('latin1').endsWith(SENTINEL_REPLY), 5000)).toString('latin1');
    if (out.endsWith(SENTINEL_REPLY)) return out.slice(0, -SENTINEL_REPLY.length);
    return `${out}${c.closed ? '<closed>' : '<no sentinel reply>'}`;
  } finally {
    c.close();
  }
}

/** The same pieces to memcached and through mcrelay, from the same state; both replies. */
async function both(pieces: Array<string | Buffer>, setup = ''): Promise<{ memcached: string; mcrelay: string }> {
  for (const port of [M.port, R.port]) {
    const c = await WireClient.connect(port);
    await c.request(`flush_all\r\n${setup}mn\r\n`, 'MN\r\n');
    c.close();
  }
  const [memcached, mcrelay] = await Promise.all([send(R.port, pieces), send(proxy.port, pieces)]);
  return { memcached, mcrelay };
}

async function sameAsMemcached(pieces: Array<string | Buffer>, setup = '', want?: string): Promise<void> {
  const r = await both(pieces, setup);
  if (want !== undefined) assert.is(r.memcached, want, 'memcached\'s reply (the reference) is the one this test expects');
  assert.is(r.mcrelay, r.memcached, 'mcrelay answers as memcached does');
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? NaN : Number(m[1]) / 1024;
}

const K250 = 'k'.repeat(250);
const K251 = 'k'.repeat(251);
const FORMAT = 'CLIENT_ERROR bad command line format\r\n';

test('key over 250 bytes: refused with memcached\'s error on every command, the connection kept', async () => {
  await sameAsMemcached([`get ${K251}\r\n`], '', FORMAT);
  await sameAsMemcached([`get a ${K251} b\r\n`], '', FORMAT);
  // the data line of a refused set is read as a command (ERROR), as memcached does
  await sameAsMemcached([`set ${K251} 0 0 1\r\na\r\n`], '', `${FORMAT}ERROR\r\n`);
  await sameAsMemcached([`delete ${K251}\r\nincr ${K251} 1\r\ntouch ${K251} 1\r\n`], '', FORMAT.repeat(3));
  // 250 bytes is a key
  await sameAsMemcached([`set ${K250} 0 0 1\r\na\r\nget ${K250}\r\n`], '', `STORED\r\nVALUE ${K250} 0 1\r\na\r\nEND\r\n`);
});

test('command line over 2048 bytes without an end: an error line, a debug log line, then the connection is closed (memcached closes without a word); get lines excepted', async () => {
  // memcached looks at an unterminated line once it holds more than 2048 bytes
  const long = `set ${'x'.repeat(2100)}`;
  const TOO_LONG = 'CLIENT_ERROR request too long\r\n';
  let r = await both(['get a\r\n', long, ' 0 0 1\r\na\r\n']);
  assert.is(r.memcached, 'END\r\n<closed>');
  assert.is(r.mcrelay, `END\r\n${TOO_LONG}<closed>`);
  r = await both(['z'.repeat(5000)]);
  assert.is(r.memcached, '<closed>');
  assert.is(r.mcrelay, `${TOO_LONG}<closed>`);
  // with -v, the proxy says why it closed the connection
  const verbose = await startProxy(['-s', M.addr, '--workers', '1', '-v']);
  try {
    assert.is(await send(verbose.port, ['z'.repeat(5000)]), `${TOO_LONG}<closed>`);
    const logged = await eventually(async () => verbose.output.includes('request line too long'), 3000);
    assert.ok(logged, `no debug line in: ${verbose.output.slice(-500)}`);
  } finally {
    await verbose.stop();
  }
  // a get line may be long: 3,000 keys, 20 KB, sent in pieces
  const keys = Array.from({ length: 3000 }, (_, i) => `key:${i}`);
  const line = `get ${keys.join(' ')}\r\n`;
  await sameAsMemcached([line.slice(0, 3000), line.slice(3000, 11000), line.slice(11000)], 'set key:7 0 0 1\r\n7\r\n', 'VALUE key:7 0 1\r\n7\r\nEND\r\n');
  // a long line that arrives whole is read (memcached only judges what it has not got the end of)
  await sameAsMemcached([`delete ${'d'.repeat(3000)}\r\n`], '', FORMAT);
});

test('data block shorter or longer than announced: memcached\'s replies, in step afterwards', async () => {
  // shorter: the next request is read as the rest of the value ("abc\r\nget k" is 10 bytes)
  await sameAsMemcached(['set k 0 0 10\r\nabc\r\n', 'get k\r\n'], '', 'STORED\r\n');
  await sameAsMemcached(['set k 0 0 10\r\nabc\r\nget k\r\n\r\nget k\r\n'], '', 'STORED\r\nERROR\r\nVALUE k 0 10\r\nabc\r\nget k\r\nEND\r\n');
  // longer: bad data chunk, and the rest of the line is read as a command
  await sameAsMemcached(['set k 0 0 3\r\nabcdef\r\nget k\r\n'], 'set k 0 0 3\r\nold\r\n', 'CLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE k 0 3\r\nold\r\nEND\r\n');
  // the block ends without its \r\n
  await sameAsMemcached(['set k 0 0 3\r\nabc\n\nget k\r\n'], '', 'CLIENT_ERROR bad data chunk\r\nEND\r\n');
  // split anywhere, it is the same
  await sameAsMemcached(['set k 0 0 3\r', '\nab', 'c', '\r', '\nget k\r\n'], '', 'STORED\r\nVALUE k 0 3\r\nabc\r\nEND\r\n');
});

test('negative and huge byte counts: refused as memcached refuses them; a huge valid one is swallowed', async () => {
  await sameAsMemcached(['set k 0 0 -1\r\nget k\r\n'], '', `${FORMAT}END\r\n`);
  await sameAsMemcached(['set k 0 0 2147483647\r\nget k\r\n'], '', `${FORMAT}END\r\n`);
  await sameAsMemcached(['set k 0 0 2147483648\r\nget k\r\n'], '', `${FORMAT}END\r\n`); // int32 truncation: negative
  await sameAsMemcached(['set k 0 0 99999999999999999999\r\nget k\r\n'], '', `${FORMAT}END\r\n`); // ERANGE
  await sameAsMemcached(['set k 0 0 4294967297\r\na\r\nget k\r\n'], '', 'STORED\r\nVALUE k 0 1\r\na\r\nEND\r\n'); // truncated to 1
  await sameAsMemcached(['cas k 0 0 -5 1\r\n'], '', FORMAT);
  // A count that is valid but far over the item size: refused, and that many bytes are swallowed
  // (the get and the sentinel are swallowed too). memcached sends its refusal only once the
  // swallowing is over; mcrelay sends it at once, which no client can tell from a slow network.
  const r = await both(['set k 0 0 2000000000\r\n', 'get k\r\n']);
  assert.is(r.memcached, '<no sentinel reply>');
  assert.is(r.mcrelay, 'SERVER_ERROR object too large for cache\r\n<no sentinel reply>');
});

test('value over the max item size: SERVER_ERROR object too large for cache, the block swallowed, the connection kept, the old value gone', async () => {
  const c = await WireClient.connect(proxy.port);
  assert.is(await c.request('set big 0 0 3\r\nold\r\n'), 'STORED\r\n');
  const size = 1024 * 1024 + 1;
  c.write(`set big 0 0 ${size}\r\n`);
  // the block arrives in pieces after the refusal
  const block = Buffer.alloc(size, 0x76);
  for (let i = 0; i < size; i += 256 * 1024) c.write(block.subarray(i, Math.min(size, i + 256 * 1024)));
  c.write('\r\nget big\r\nset small 0 0 1\r\ns\r\nget small\r\n');
  const replies = await readReplies(c, 4, 10_000);
  assert.equal(replies.map((r) => r.line), ['SERVER_ERROR object too large for cache', 'END', 'STORED', 'END']);
  assert.is(replies[3]!.values[0]?.data.toString(), 's');
  // the largest accepted value goes through
  const max = 1024 * 1024 - 512; // memcached's own limit counts its item header (about 50 bytes) too
  c.write(`set big 0 0 ${max}\r\n`);
  c.write(Buffer.alloc(max, 0x77));
  c.write('\r\nget big\r\n');
  const r2 = await readReplies(c, 2, 10_000);
  assert.is(r2[0]!.line, 'STORED');
  assert.is(r2[1]!.values[0]?.data.length, max);
  c.close();
});

test('max_pending_bytes: a set whose value would go past it while others arrive is refused as memcached refuses one it has no memory for; the bytes come back when those values are in', async () => {
  const capped = await startProxy(['-s', M.addr, '--workers', '1', '--max-pending-bytes', '1m']);
  const [a, b, c] = await Promise.all([1, 2, 3].map(() => WireClient.connect(capped.port)));
  try {
    const big = 900 * 1024;
    const more = 200 * 1024;
    assert.is(await b.request('set b 0 0 3\r\nold\r\nset m 0 0 3\r\nold\r\n', 'STORED\r\nSTORED\r\n'), 'STORED\r\nSTORED\r\n');
    // a: 900 KiB announced, 1 KiB sent: held while the rest comes
    a.write(`set a 0 0 ${big}\r\n`);
    a.write(Buffer.alloc(1024, 0x61));
    await sleep(100);
    // b: 200 KiB more would pass 1 MiB: refused at once, its block swallowed, the connection kept, the old value gone
    b.write(`set b 0 0 ${more}\r\n`);
    b.write(Buffer.alloc(1024, 0x62));
    assert.is((await readReplies(b, 1)).map((r) => r.line).join(), 'SERVER_ERROR out of memory storing object');
    b.write(Buffer.alloc(more - 1024, 0x62));
    b.write('\r\nget b\r\n');
    assert.is((await readReplies(b, 1)).map((r) => r.line).join(), 'END');
    // ms too (the error shows through q); noreply silences it, as memcached's errors
    b.write(`ms m ${more} q T0\r\n`);
    b.write(Buffer.alloc(more, 0x62));
    b.write(`\r\nset n 0 0 ${more} noreply\r\n`);
    b.write(Buffer.alloc(more, 0x62));
    b.write('\r\nmn\r\n');
    assert.is(await b.readUntil((x) => x.toString('latin1').endsWith('MN\r\n')).then((x) => x.toString('latin1')), 'SERVER_ERROR out of memory storing object\r\nMN\r\n');
    assert.is((await roundTrip(b, 'get m n\r\n')).values.length, 0, 'neither m nor n stored');
    // a small value that is all there in one read is never held: it goes through
    assert.is(await c.request('set s 0 0 1\r\ns\r\n'), 'STORED\r\n');
    // a finishes: its bytes are given back, and a second large value goes through
    a.write(Buffer.alloc(big - 1024, 0x61));
    a.write('\r\n');
    assert.is((await readReplies(a, 1)).map((r) => r.line).join(), 'STORED');
    c.write(`set c 0 0 ${more}\r\n`);
    c.write(Buffer.alloc(1024, 0x63));
    await sleep(50);
    c.write(Buffer.alloc(more - 1024, 0x63));
    c.write('\r\n');
    assert.is((await readReplies(c, 1)).map((r) => r.line).join(), 'STORED');
    const got = await roundTrip(c, 'get a c\r\n');
    assert.equal(got.values.map((v) => [v.key, v.data.length]), [['a', big], ['c', more]]);
  } finally {
    for (const x of [a, b, c]) x.close();
    await capped.stop();
  }
});

test('one giant get: the memory it took is returned afterwards (RSS back within 20% once the heap settles)', async () => {
  const fresh = await startProxy(['-s', M.addr, '--workers', '1']);
  const c = await WireClient.connect(fresh.port);
  try {
    const value = 'v'.repeat(100 * 1024);
    assert.is(await c.request(`set giant:v 0 0 ${value.length}\r\n${value}\r\n`), 'STORED\r\n');
    for (let i = 0; i < 20; i++) assert.is((await roundTrip(c, 'get giant:v\r\n')).values.length, 1);
    await sleep(1000);
    const before = rssMb(fresh.pid);
    // 100,000 keys that miss and one 100 KiB value asked 300 times: a 1.3 MB line, a 30 MB reply
    const keys = Array.from({ length: 100_000 }, (_, i) => `giant:miss:${i}`);
    for (let i = 0; i < 300; i++) keys.push('giant:v');
    let peak = before;
    const sampler = setInterval(() => { peak = Math.max(peak, rssMb(fresh.pid)); }, 20);
    let reply;
    try {
      reply = await roundTrip(c, `get ${keys.join(' ')}\r\n`, 30_000);
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, rssMb(fresh.pid));
    assert.is(reply.line, 'END');
    assert.is(reply.values.length, 300);
    assert.ok(peak > before * 1.2, `the get did not take memory to give back: RSS ${before.toFixed(0)} MB, peak ${peak.toFixed(0)} MB`);
    let after = peak;
    const settled = await eventually(async () => { after = rssMb(fresh.pid); return after <= before * 1.2; }, 10_000, 250);
    console.log(`    giant get: proxy RSS ${before.toFixed(0)} MB before, peak ${peak.toFixed(0)} MB, ${after.toFixed(0)} MB after`);
    assert.ok(settled, `RSS ${after.toFixed(0)} MB after, ${before.toFixed(0)} MB before (peak ${peak.toFixed(0)} MB)`);
    assert.is((await roundTrip(c, 'get giant:v\r\n')).values.length, 1, 'and the proxy goes on');
  } finally {
    c.close();
    await fresh.stop();
  }
});

test('10,000 keys in one get: every value, in order, in one reply', async () => {
  const c = await WireClient.connect(proxy.port);
  const keys = Array.from({ length: 10_000 }, (_, i) => `many:${i}`);
  const bad = await setMany(c, keys.filter((_, i) => i % 3 !== 0).map((k) => [k, `v-${k}`] as const));
  assert.equal(bad, []);
  const t0 = Date.now();
  const r = await roundTrip(c, `get ${keys.join(' ')}\r\n`, 15_000);
  assert.is(r.line, 'END');
  const want = keys.filter((_, i) => i % 3 !== 0);
  assert.is(r.values.length, want.length);
  assert.ok(r.values.every((v, i) => v.key === want[i] && v.data.toString() === `v-${want[i]}`), 'values in the order asked');
  console.log(`    10,000-key get (${(Buffer.byteLength(keys.join(' ')) / 1024).toFixed(0)} KB line): ${Date.now() - t0} ms`);
  c.close();
});

test('binary junk: answered with errors or closed, never a crash; other clients are not affected', async () => {
  const good = await WireClient.connect(proxy.port);
  let stop = false;
  let served = 0;
  const errors: string[] = [];
  const loop = (async () => {
    for (let i = 0; !stop; i++) {
      const r = await good.request(`set good:${i % 50} 0 0 6\r\nv${String(i).padStart(5, '0')}\r\nget good:${i % 50}\r\n`, 'END\r\n', 2000);
      if (r !== `STORED\r\nVALUE good:${i % 50} 0 6\r\nv${String(i).padStart(5, '0')}\r\nEND\r\n`) errors.push(r);
      served++;
    }
  })();
  const junk = await Promise.all(Array.from({ length: 8 }, async (_, j) => {
    const s = net.connect(proxy.port, '127.0.0.1');
    let got = '';
    let closed = false;
    s.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    s.on('error', () => {});
    s.on('close', () => { closed = true; });
    await new Promise((r) => s.once('connect', r));
    for (let i = 0; i < 64 && !closed; i++) {
      // half uniformly random, half random lines of printable junk
      const b = j % 2 === 0 ? randomBytes(16 * 1024) : Buffer.from(Array.from({ length: 512 }, () => randomBytes(24).toString('base64') + '\r\n').join(''));
      // A first byte 0x80 makes the connection a binary-protocol one, as in
      // memcached, whose errors are binary (the fuzz harness covers those): keep this one text.
      if (i === 0 && b[0] === 0x80) b[0] = 0x00;
      s.write(b);
      await sleep(2);
    }
    await sleep(300);
    s.destroy();
    return { got, closed };
  }));
  stop = true;
  await loop;
  assert.ok(proxy.alive, 'mcrelay is still running');
  assert.equal(errors, [], 'the well-behaved client got its own replies');
  assert.ok(served > 20, `the well-behaved client was served (${served} round trips)`);
  for (const j of junk) {
    const lines = j.got.split('\r\n').filter((l) => l !== '');
    const odd = lines.filter((l) => !/^(ERROR|CLIENT_ERROR .*|SERVER_ERROR .*|END|STORED|NOT_STORED|EXISTS|NOT_FOUND|DELETED|TOUCHED|OK|\d+|VALUE .*|VERSION .*|STAT .*|EN|HD|NF|NS|EX|MN|VA .*|ME .*)$/.test(l));
    assert.ok(j.closed || lines.length > 0, 'a junk connection is answered or closed');
    assert.equal(odd.slice(0, 3), [], 'junk gets memcached replies only');
  }
  const after = await WireClient.connect(proxy.port);
  assert.is(await after.request('get good:1\r\n', 'END\r\n'), `VALUE good:1 0 6\r\n${(await roundTrip(await WireClient.connect(M.port), 'get good:1\r\n')).values[0]!.data.toString()}\r\nEND\r\n`);
  after.close();
  good.close();
});

test('a client that sends 64 MiB of pipelined requests and reads nothing: mcrelay stops reading it, memory stays bounded, others are served promptly', async () => {
  // Every 10-byte request asks for a 64 KiB value: 64 MiB of them would be 400 GiB of
  // replies. What mcrelay holds for the client must stay bounded, and a client on the
  // same worker (and the same backend connection) must not wait behind it.
  const VALUE = 64 * 1024;
  const setup = await WireClient.connect(proxy.port);
  assert.is(await setup.request(`set flood 0 0 ${VALUE}\r\n${'f'.repeat(VALUE)}\r\n`), 'STORED\r\n');
  setup.close();
  const rss0 = rssMb(proxy.pid);
  const chunk = Buffer.concat(Array.from({ length: 6000 }, () => Buffer.from('get flood\r\n')));
  const flood = net.connect(proxy.port, '127.0.0.1');
  flood.on('error', () => {});
  await new Promise((r) => flood.once('connect', r));
  flood.pause(); // never reads
  let queued = 0;
  while (queued < 64 * 1024 * 1024) { flood.write(chunk); queued += chunk.length; }
  const other = await WireClient.connect(proxy.port);
  let peak = rss0;
  const times: number[] = [];
  const wrong: string[] = [];
  const deadline = Date.now() + 5000;
  for (let i = 0; Date.now() < deadline; i++) {
    const t0 = performance.now();
    const r = await other.request(`set o:${i} 0 0 2\r\nok\r\nget o:${i}\r\n`, 'END\r\n', 3000);
    times.push(performance.now() - t0);
    if (r !== `STORED\r\nVALUE o:${i} 0 2\r\nok\r\nEND\r\n`) wrong.push(`#${i}: ${JSON.stringify(r)}`);
    peak = Math.max(peak, rssMb(proxy.pid));
    await sleep(50);
  }
  // how much of the 64 MiB left the flooding client (kernel buffers included): the rest waits in its own buffers
  const accepted = flood.bytesWritten - flood.writableLength;
  flood.destroy();
  other.close();
  await sleep(500);
  const after = rssMb(proxy.pid);
  console.log(`    flood of 64 KiB gets: proxy RSS ${rss0.toFixed(0)} MB before, peak ${peak.toFixed(0)} MB, ${after.toFixed(0)} MB after the client left; ` +
    `it took ${(accepted / 1048576).toFixed(1)} of 64 MiB; other client: ${times.length} round trips, first ${times[0]?.toFixed(0)} ms, worst ${Math.max(...times).toFixed(0)} ms, ${wrong.length} not its own replies`);
  assert.ok(proxy.alive, 'mcrelay is running');
  assert.ok(accepted < 16 * 1024 * 1024, `mcrelay kept reading: ${(accepted / 1048576).toFixed(1)} MiB left the client`);
  assert.equal(wrong, [], 'the other client gets its own replies');
  // Behind the flood it would wait seconds (64 MiB of 64 KiB gets); the bound leaves
  // room for a loaded machine (2 cores, two test files at once: 300-400 ms seen).
  assert.ok(Math.max(...times) < 1000, `the other client waited up to ${Math.max(...times).toFixed(0)} ms`);
  assert.ok(peak < 400, `proxy RSS peaked at ${peak.toFixed(0)} MB`);
});

test('a client that stops reading, then reads: every reply arrives, whole and in order, and the connection goes on', async () => {
  // 600 gets of a 64 KiB value: 38 MiB of replies, far past what mcrelay keeps for
  // a client before it stops reading it; once the client reads, mcrelay writes the
  // rest and takes up its requests again.
  const VALUE = 64 * 1024;
  const N = 600;
  const value = randomBytes(VALUE / 2).toString('hex');
  const setup = await WireClient.connect(proxy.port);
  assert.is(await setup.request(`set slowread 0 0 ${VALUE}\r\n${value}\r\n`), 'STORED\r\n');
  setup.close();
  const c = net.connect(proxy.port, '127.0.0.1');
  c.on('error', () => {});
  await new Promise((r) => c.once('connect', r));
  try {
    c.pause();
    c.write(`${'get slowread\r\n'.repeat(N)}get __end\r\n`);
    await sleep(1000);
    const chunks: Buffer[] = [];
    let got = 0;
    c.on('data', (d: Buffer) => { chunks.push(d); got += d.length; });
    c.resume();
    const reply = `VALUE slowread 0 ${VALUE}\r\n${value}\r\nEND\r\n`;
    const want = N * reply.length + 5;
    const deadline = Date.now() + 20_000;
    while (got < want && Date.now() < deadline) await sleep(20);
    await sleep(100); // anything more would be a reply too many
    const all = Buffer.concat(chunks);
    assert.is(all.length, want, 'bytes of replies');
    let bad = 0;
    for (let i = 0; i < N; i++) if (all.toString('latin1', i * reply.length, (i + 1) * reply.length) !== reply) bad++;
    assert.is(bad, 0, 'replies that are not the value, whole');
    assert.is(all.toString('latin1', N * reply.length), 'END\r\n', 'the last request is answered last');
    chunks.length = 0;
    got = 0;
    c.write('get __end\r\n');
    const t0 = Date.now();
    while (got < 5 && Date.now() - t0 < 3000) await sleep(10);
    assert.is(Buffer.concat(chunks).toString('latin1'), 'END\r\n', 'the connection goes on');
  } finally {
    c.destroy();
  }
});

test('-n exceeded: the extra connection gets "ERROR Too many open connections" and is closed; the others keep working', async () => {
  const small = await startProxy(['-s', M.addr, '--workers', '2', '-n', '3']);
  try {
    // startProxy's own probe connection counts until its worker has seen it close
    await sleep(300);
    const held = await Promise.all([0, 1, 2].map(() => WireClient.connect(small.port)));
    for (const [i, c] of held.entries()) assert.is(await c.request(`set n:${i} 0 0 1\r\n${i}\r\n`), 'STORED\r\n');
    const extra = await WireClient.connect(small.port);
    const got = await extra.readUntil(() => false, 1000);
    assert.is(got.toString('latin1'), 'ERROR Too many open connections\r\n');
    assert.ok(extra.closed, 'the extra connection is closed');
    for (const [i, c] of held.entries()) assert.is(await c.request(`get n:${i}\r\n`, 'END\r\n'), `VALUE n:${i} 0 1\r\n${i}\r\nEND\r\n`);
    // a slot freed is a slot to take
    held[0]!.close();
    let ok = false;
    for (let t = 0; t < 50 && !ok; t++) {
      await sleep(20);
      const again = await WireClient.connect(small.port);
      const r = await again.request('get n:1\r\n', 'END\r\n', 500);
      ok = r === 'VALUE n:1 0 1\r\n1\r\nEND\r\n';
      again.close();
    }
    assert.ok(ok, 'a new connection is accepted once one has closed');
    for (const c of held) c.close();
  } finally {
    await small.stop();
  }
});

test.run();
