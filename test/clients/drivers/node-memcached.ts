// Matrix driver for the npm `memcached` package: argv host:port prefix phase.
// Prints one "name result" line per operation (test/clients/matrix.test.ts).
import Memcached from 'memcached';

const [addr, p, phase] = process.argv.slice(2) as [string, string, string];
const m = new Memcached(addr, { retries: 0, timeout: 3000, poolSize: 1, idle: 1000 });

/** The callback's result, a library error as its message (memcached's refusals come as errors). */
function call(f: (cb: (err: unknown, result: unknown) => void) => void): Promise<unknown> {
  return new Promise((resolve) => {
    f((err, result) => resolve(err ? `err:${err instanceof Error ? err.message : String(err)}` : result));
  });
}
function out(name: string, v: unknown): void {
  process.stdout.write(`${name} ${v === undefined || v === false && name.startsWith('get') ? 'miss' : String(v)}\n`);
}

async function ops(): Promise<void> {
  out('flush', (await call((cb) => m.flush(cb)) as boolean[]).every(Boolean));
  out('set_a', await call((cb) => m.set(`${p}a`, 'alpha', 0, cb)));
  out('get_a', await call((cb) => m.get(`${p}a`, cb)));
  out('get_missing', await call((cb) => m.get(`${p}missing`, cb)));
  out('set_b', await call((cb) => m.set(`${p}b`, 'beta', 0, cb)));
  const r = await call((cb) => m.getMulti([`${p}a`, `${p}missing`, `${p}b`], cb)) as Record<string, string>;
  out('multi', Object.entries(r).map(([k, v]) => `${k.slice(p.length)}=${v}`).sort().join(','));
  out('add_existing', await call((cb) => m.add(`${p}a`, 'x', 0, cb)));
  out('add_new', await call((cb) => m.add(`${p}c`, 'gamma', 0, cb)));
  out('replace_missing', await call((cb) => m.replace(`${p}missing`, 'x', 0, cb)));
  out('replace', await call((cb) => m.replace(`${p}c`, 'delta', 0, cb)));
  out('append', await call((cb) => m.append(`${p}c`, '+', cb)));
  out('prepend', await call((cb) => m.prepend(`${p}c`, '-', cb)));
  out('get_c', await call((cb) => m.get(`${p}c`, cb)));
  out('set_n', await call((cb) => m.set(`${p}n`, '10', 0, cb)));
  out('incr', await call((cb) => m.incr(`${p}n`, 5, cb)));
  out('decr', await call((cb) => m.decr(`${p}n`, 2, cb)));
  const im = await call((cb) => m.incr(`${p}nothing`, 1, cb));
  out('incr_missing', im === false ? 'miss' : im);
  const g = await call((cb) => m.gets(`${p}a`, cb)) as { cas: string };
  out('cas', await call((cb) => m.cas(`${p}a`, 'alpha2', g.cas, 0, cb)));
  out('cas_stale', await call((cb) => m.cas(`${p}a`, 'alpha3', g.cas, 0, cb)));
  out('get_a2', await call((cb) => m.get(`${p}a`, cb)));
  out('delete', await call((cb) => m.del(`${p}a`, cb)));
  out('delete_missing', await call((cb) => m.del(`${p}a`, cb)));
  out('get_deleted', await call((cb) => m.get(`${p}a`, cb)));
  out('touch', await call((cb) => m.touch(`${p}b`, 100, (err: unknown) => cb(err, true))));
  out('touch_missing', await call((cb) => m.touch(`${p}missing`, 100, (err: unknown) => cb(err, true))));
  const v = await call((cb) => m.version(cb)) as Array<{ version: string }>;
  out('version', v.map((x) => x.version).join(','));
  const s = await call((cb) => m.stats(cb)) as Array<Record<string, unknown>>;
  out('stats', s.length === 1 && s[0]!['pid'] !== undefined ? 'ok' : JSON.stringify(s));
  out('flush_all', (await call((cb) => m.flush(cb)) as boolean[]).every(Boolean));
  out('get_flushed', await call((cb) => m.get(`${p}b`, cb)));
}

async function main(): Promise<void> {
  if (phase === 'ops') {
    await ops();
  } else if (phase === 'write') {
    let n = 0;
    for (let i = 0; i < 20; i++) if (await call((cb) => m.set(`${p}p${i}`, `v${i}`, 0, cb)) === true) n++;
    out('write', n);
  } else {
    let n = 0;
    const keys: string[] = [];
    for (let i = 0; i < 20; i++) {
      keys.push(`${p}p${i}`);
      if (await call((cb) => m.get(`${p}p${i}`, cb)) === `v${i}`) n++;
    }
    out('read', n);
    const r = await call((cb) => m.getMulti(keys, cb)) as Record<string, string>;
    out('read_multi', keys.filter((k, i) => r[k] === `v${i}`).length);
  }
  m.end();
}

await main();
