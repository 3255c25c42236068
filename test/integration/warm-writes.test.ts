// Writes that depend on a key's current value, sent while the master warms up
// and the key is on the backup only (issue 25: `add lock` answered STORED and a
// counter restarted at 0). Each command goes through mcrelay and, as the
// reference, to a memcached holding the same keys; the replies and the values
// read afterwards must be the same.
//
//   client --> mcrelay --> master M (restarted empty: warming)
//                     '--> backup B (holds the keys)
//   client --> memcached R (the same keys stored: what memcached answers)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitState } from '../helpers/cluster.js';
import { directSet, roundTrip } from '../helpers/mc.js';
import { startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';

let M: Proc | undefined;
let B: Proc | undefined;
let R: Proc | undefined;
let proxy: Proc | undefined;
let p: WireClient;
let b: WireClient;
let r: WireClient;

test.before(async () => {
  [M, B, R] = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
  proxy = await startProxy(['-s', M.addr, '-b', B.addr, '--workers', '1', '--timeout', '300', '--retry-interval', '100', '--warmup-seconds', '600']);
  [p, b, r] = await Promise.all([WireClient.connect(proxy.port), WireClient.connect(B.port), WireClient.connect(R.port)]);
  // The master dies (a request finds it gone) and comes back empty: warming.
  const port = M.port;
  await M.stop('SIGKILL');
  await roundTrip(p, 'get warm:probe\r\n');
  await waitState([proxy], `127.0.0.1:${port}`, ['down'], 5000);
  M = await startMemcached({ port });
  await waitState([proxy], `127.0.0.1:${port}`, ['warming'], 5000);
});

test.after(async () => {
  for (const c of [p, b, r]) c?.close();
  await Promise.all([proxy?.stop(), M?.stop(), B?.stop(), R?.stop()]);
});

let seq = 0;

/** Stores key = value on the backup and on the reference, and nowhere else. */
async function onBackupOnly(name: string, value: string): Promise<string> {
  const k = `warm:${name}:${++seq}`;
  await directSet(b, k, value, 5, 600);
  await directSet(r, k, value, 5, 600);
  return k;
}

/** The same request through mcrelay and to the reference; then `mn`: both replies. */
async function both(req: string): Promise<{ mcrelay: string; memcached: string }> {
  const ask = async (c: WireClient): Promise<string> => {
    const out = (await c.request(`${req}\r\nmn\r\n`, 'MN\r\n')).toString();
    return out.endsWith('MN\r\n') ? out.slice(0, -4) : `${out}<no MN>`;
  };
  const [mcrelay, memcached] = await Promise.all([ask(p), ask(r)]);
  return { mcrelay, memcached };
}

/** Replies and the value read afterwards (through mcrelay, and on the reference) agree. */
async function same(req: (k: string) => string, k: string, normalize = (s: string): string => s): Promise<void> {
  const got = await both(req(k));
  assert.is(normalize(got.mcrelay), normalize(got.memcached), `${req(k)}: the reply`);
  const after = await both(`mg ${k} v f`);
  assert.is(after.mcrelay, after.memcached, `${k} afterwards`);
}

test('the master is warming: reads of keys on the backup only hit', async () => {
  const k = await onBackupOnly('read', 'v');
  const got = await both(`get ${k}`);
  assert.is(got.mcrelay, got.memcached);
});

test('add of a key the backup holds: NOT_STORED, the value kept', async () => {
  const k = await onBackupOnly('add', 'old');
  await same((x) => `add ${x} 0 0 3\r\nnew`, k);
});

test('ms in mode E, A, P, R: decided on the backup\'s value', async () => {
  for (const mode of ['E', 'A', 'P', 'R']) {
    const k = await onBackupOnly(`ms-${mode}`, 'old');
    await same((x) => `ms ${x} 3 M${mode}\r\nnew`, k);
  }
});

test('ma with N, J and D: counts on from the backup\'s value', async () => {
  const k = await onBackupOnly('ma', '100');
  await same((x) => `ma ${x} N0 J0 v`, k);
  const k2 = await onBackupOnly('ma-D', '100');
  await same((x) => `ma ${x} N0 J7 D5 MD v`, k2);
});

test('mg with N: the backup\'s value, not an empty placeholder', async () => {
  const k = await onBackupOnly('mg-N', 'hello');
  // memcached's W/Z flags and TTL depend on the item's own history: the value and client flags are compared
  await same((x) => `mg ${x} v f N30`, k, (s) => s.replace(/ [WZX]/g, ''));
});

test('cas with the cas id gets gave: stored, as memcached stores it', async () => {
  const k = await onBackupOnly('cas', 'old');
  const casOf = async (c: WireClient): Promise<string> => {
    const got = await roundTrip(c, `gets ${k}\r\n`);
    assert.is(got.values.length, 1, `gets ${k}`);
    return got.values[0]!.cas!;
  };
  const [pc, rc] = [await casOf(p), await casOf(r)];
  const [a, z] = [await p.request(`cas ${k} 0 0 3 ${pc}\r\nnew\r\n`), await r.request(`cas ${k} 0 0 3 ${rc}\r\nnew\r\n`)];
  assert.is(a, z);
  assert.is(a, 'STORED\r\n');
  const after = await both(`mg ${k} v f`);
  assert.is(after.mcrelay, after.memcached);
});

test('incr and decr over an old copy on the master (a warm-up fill that raced a write): counted on from the backup\'s value', async () => {
  // A fill reads the backup, and its add can land on the master after an incr
  // of the key went to both: the master then holds the value from before it.
  const m = await WireClient.connect(M!.port);
  try {
    for (const [cmd, expected] of [['incr', '42'], ['decr', '40']] as const) {
      const k = await onBackupOnly(cmd, '41');
      await directSet(m, k, '17', 5, 600);
      await same((x) => `${cmd} ${x} 1`, k);
      assert.is(await p.request(`${cmd} ${k} 1\r\n`), `${cmd === 'incr' ? Number(expected) + 1 : Number(expected) - 1}\r\n`, 'and the next one');
    }
  } finally {
    m.close();
  }
});

test.run();
