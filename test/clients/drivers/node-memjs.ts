// Matrix driver for the npm `memjs` package (the binary protocol): argv host:port prefix phase.
// Prints one "name result" line per operation (test/clients/matrix.test.ts).
import memjs from 'memjs';

const [addr, p, phase] = process.argv.slice(2) as [string, string, string];
const m = memjs.Client.create(addr, { retries: 0, timeout: 3, conntimeout: 3 });

function out(name: string, v: unknown): void {
  process.stdout.write(`${name} ${v === null || v === undefined ? 'miss' : String(v)}\n`);
}
/** A refusal memjs reports as an error is the result too. */
async function b(f: () => Promise<unknown>): Promise<unknown> {
  try {
    return await f();
  } catch (err) {
    return `err:${(err as Error).message}`;
  }
}
async function get(k: string): Promise<string | null> {
  const { value } = await m.get(k);
  return value === null ? null : value.toString();
}

async function ops(): Promise<void> {
  out('flush', Object.values(await m.flush()).every((x) => x === true));
  out('set_a', await b(() => m.set(`${p}a`, 'alpha', {})));
  out('get_a', await get(`${p}a`));
  out('get_missing', await get(`${p}missing`));
  out('set_b', await b(() => m.set(`${p}b`, 'beta', {})));
  // memjs has no multi-get: its users pipeline gets on the one connection.
  const keys = ['a', 'missing', 'b'];
  const vals = await Promise.all(keys.map((k) => get(`${p}${k}`)));
  out('multi', keys.flatMap((k, i) => vals[i] === null ? [] : [`${k}=${vals[i]}`]).sort().join(','));
  out('add_existing', await b(() => m.add(`${p}a`, 'x', {})));
  out('add_new', await b(() => m.add(`${p}c`, 'gamma', {})));
  out('replace_missing', await b(() => m.replace(`${p}missing`, 'x', {})));
  out('replace', await b(() => m.replace(`${p}c`, 'delta', {})));
  out('append', await b(() => m.append(`${p}c`, '+')));
  out('prepend', await b(() => m.prepend(`${p}c`, '-')));
  out('get_c', await get(`${p}c`));
  out('set_n', await b(() => m.set(`${p}n`, '10', {})));
  out('incr', (await m.increment(`${p}n`, 5, {})).value);
  out('decr', (await m.decrement(`${p}n`, 2, {})).value);
  // memjs asks for the item to be created (initial 0): the binary protocol's own semantics
  const im = await m.increment(`${p}nothing`, 1, {});
  out('incr_missing', im.success ? im.value : 'miss');
  // no cas in memjs: the same end state by a set
  out('cas', 'n/a');
  out('cas_stale', 'n/a');
  await m.set(`${p}a`, 'alpha2', {});
  out('get_a2', await get(`${p}a`));
  out('delete', await b(() => m.delete(`${p}a`)));
  out('delete_missing', await b(() => m.delete(`${p}a`)));
  out('get_deleted', await get(`${p}a`));
  out('touch', await b(() => m.touch(`${p}b`, 100)));
  out('touch_missing', await b(() => m.touch(`${p}missing`, 100)));
  out('version', 'n/a');
  const stats = await new Promise<Record<string, string> | null>((resolve) => m.stats((err, _server, s) => resolve(err ? null : s)));
  out('stats', stats !== null && stats['pid'] !== undefined ? 'ok' : JSON.stringify(stats));
  out('flush_all', Object.values(await m.flush()).every((x) => x === true));
  out('get_flushed', await get(`${p}b`));
}

async function main(): Promise<void> {
  if (phase === 'ops') {
    await ops();
  } else if (phase === 'write') {
    let n = 0;
    for (let i = 0; i < 20; i++) if (await m.set(`${p}p${i}`, `v${i}`, {})) n++;
    out('write', n);
  } else {
    let n = 0;
    for (let i = 0; i < 20; i++) if (await get(`${p}p${i}`) === `v${i}`) n++;
    out('read', n);
    const vals = await Promise.all(Array.from({ length: 20 }, (_, i) => get(`${p}p${i}`)));
    out('read_multi', vals.filter((v, i) => v === `v${i}`).length);
  }
  m.close();
}

await main();
