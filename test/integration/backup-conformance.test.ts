// The text and meta conformance rows through mcrelay with a backup pool: what
// a client sees must be what one memcached with the same keys answers (issue 25
// item 3), with the master up, and with it warming after a restart.
//
//   client --row--> memcached A                    (the reference; setup on A)
//   client --row--> mcrelay --> master B          (up: setup on B; warming: empty)
//                           \-> backup C          (setup on C)
//
// Up, every write goes to B and C and a client's later request must not
// overtake one that waits for the backup (a delete goes to C first; a write
// waits for its key's stripe). Warming, B is held in warm-up for the whole
// suite (a restart, then a warm-up of an hour that no hit ratio ends): every
// key the row finds, mcrelay finds on the backup and fills into B as it goes,
// including for writes whose result depends on the old value (append, incr,
// cas, add...). Before each send A, B and C are flushed and their cas counters
// levelled. Each row goes whole and byte by byte, not cut at every offset:
// conformance.test and meta-conformance.test make every cut of the same rows
// without a backup, and a cut changes only what the parser sees (with every
// cut this file took 160 s per run in CI, now 46 s). Rows that assert mcrelay
// alone (its stats, its version, its deliberate differences) are not
// differential and stay in the other suites.
import { suite } from 'uvu';
import { startMemcached, startProxy, sleep, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { loudHooks } from '../helpers/hooks.js';
import { Differential, type Row } from '../helpers/differential.js';
import { textRows } from '../helpers/text-rows.js';
import { META_ROWS } from '../helpers/meta-rows.js';
import { serverStats, waitState } from '../helpers/cluster.js';

/**
 * Cas ids numbered by first appearance (c#1, c#2...). A warm fill is a store on
 * the master, which gives the item the master's next cas (memcached 1.6.18 has
 * no E flag to set it), so mcrelay's ids run one store ahead of the reference's:
 * what must hold is that the same item shows the same id wherever it appears.
 */
function casByOrder(reply: string): string {
  const seen = new Map<string, string>();
  const id = (n: string): string => {
    let v = seen.get(n);
    if (v === undefined) { v = `#${seen.size + 1}`; seen.set(n, v); }
    return v;
  };
  return reply
    .replace(/^(VALUE \S+ \d+ \d+ )(\d+)\r$/gm, (_m, head: string, cas: string) => `${head}${id(cas)}\r`)
    .replace(/^(?:VA \d+|HD|EN|NF|NS|EX)(?: [^\r]*)?\r$/gm, (line) => line.replace(/ c(\d+)/g, (_m, cas: string) => ` c${id(cas)}`))
    .replace(/ cas=(\d+)/g, (_m, cas: string) => ` cas=${id(cas)}`);
}

const notMine = (): void => { throw new Error('an mcrelay-only row'); };
const ROWS: Row[] = [...textRows(notMine), ...META_ROWS].filter((row) => row.expect === undefined);

function backupSuite(name: string, warm: boolean): void {
  const t = suite(name);
  loudHooks(t);
  let A: Proc | undefined;
  let B: Proc | undefined;
  let C: Proc | undefined;
  let proxy: Proc | undefined;
  const admins: WireClient[] = [];
  let diff: Differential;
  const state = async (): Promise<string | undefined> => (await serverStats(proxy!.port)).table.get(B!.addr)?.get('state');

  t.before(async () => {
    [A, B, C] = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
    proxy = await startProxy(['-s', B.addr, '-b', C.addr, '--workers', '1', '--max-item-size', '1m',
      '--timeout', '300', '--retry-interval', '200', '--warmup-seconds', '3600', '--warmup-done-ratio', '0']);
    await sleep(500); // the prober has B's identity
    if (warm) {
      const port = B.port;
      await B.stop();
      // A request finds B gone (the prober would, within an interval, too).
      const c = await WireClient.connect(proxy.port);
      await c.request('get x\r\n', 'END\r\n', 2000).catch(() => '');
      c.close();
      await waitState([proxy], B.addr, ['down'], 5000);
      B = await startMemcached({ port });
      await waitState([proxy], B.addr, ['warming'], 5000);
      let restore: string | undefined;
      for (let i = 0; i < 100 && restore !== 'done'; i++) { await sleep(50); restore = (await serverStats(proxy.port)).table.get(B.addr)?.get('restore_state'); }
    }
    const [a, b, cc] = await Promise.all([WireClient.connect(A.port), WireClient.connect(B.port), WireClient.connect(C.port)]);
    admins.push(a, b, cc);
    diff = new Differential(A.port, proxy.port, a, b, warm ? { backup: cc, masterEmpty: true, normalize: casByOrder, fewCuts: true } : { backup: cc, fewCuts: true });
  });

  t.after(async () => {
    for (const c of admins) c.close();
    await Promise.all([proxy?.stop(), A?.stop(), B?.stop(), C?.stop()]);
  });

  const expected = warm ? 'warming' : 'up';
  for (const row of ROWS) {
    t(row.name, async () => {
      await diff.runRow(row);
      // A row that moved the master out of its state would leave the rest untested.
      const s = await state();
      if (s !== expected) throw new Error(`the master is ${s ?? 'gone'}, not ${expected}`);
    });
  }
  t.run();
}

backupSuite('master up, with a backup', false);
backupSuite('master warming', true);
