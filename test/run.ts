// Runs the uvu suite folders and prints, last, one line "N passed, N failed"
// summing them all (the line CI reads).
//
//   run.js [suite...]                  every suite on this Node, one uvu process per
//                                      folder, one after another (`npm test`)
//   run.js --node PATH [--node PATH]   also the unit and integration suites on
//                                      each of those Nodes (conformance cuts: FEW_CUTS)
//   run.js --jobs N                    N uvu processes at once, one per test file,
//                                      each file's output printed whole when it ends
//   run.js --portable                  also the integration suite on this Node with
//                                      every proxy in --io portable (MCRELAY_TEST_IO)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const uvu = path.resolve(here, '../../node_modules/uvu/bin.js');
const SUITES = ['unit', 'integration', 'clients', 'fault'];
/** What runs on the Nodes named by --node. */
const OTHER_NODE_SUITES = ['unit', 'integration'];
/**
 * On the other Nodes the differential suites send each stream whole and byte by
 * byte but not cut at every offset (test/helpers/differential.ts): the cuts
 * test mcrelay's own parsers, which no Node API touches, and they ran on this
 * Node in both I/O modes. That pays for part of the recovery scenarios there.
 */
const FEW_CUTS = { MCRELAY_TEST_CUTS: 'few' };
/** A file that runs longer is hung (the slowest takes two minutes); a whole suite in one process gets longer. */
const FILE_TIMEOUT_MS = 6 * 60 * 1000;
const SUITE_TIMEOUT_MS = 30 * 60 * 1000;
/**
 * Files that take a minute or more (measured on Node 22 and 24); with --jobs
 * they start first so that none is left alone at the end. Only the order.
 */
const SLOW_FIRST = ['reload-recovery', 'warm-recovery', 'warm-race', 'idle-recovery', 'limits', 'backup-conformance', 'placement'];

interface Unit { node: string; label: string; suite: string; file?: string; env?: NodeJS.ProcessEnv }
interface Outcome { passed: number; failed: number; detail: string }

/** Lines of a failing unit's output worth repeating at the end (CI keeps only the tail of a log). */
const DETAIL_LINES = 60;
function failureDetail(plain: string): string {
  const at = plain.indexOf('FAIL ');
  const from = at === -1 ? plain : plain.slice(at);
  const lines = from.split('\n').filter((l) => l.trim() !== '').slice(0, DETAIL_LINES);
  // a server or proxy that died on its own (test/helpers/procs.ts), with its last words
  const all = plain.split('\n');
  let deaths = 0;
  for (let i = 0; i < all.length && deaths < 2; i++) {
    if (!all[i]!.includes('exited by itself')) continue;
    deaths++;
    lines.push(all[i]!, ...all.slice(i + 1, i + 31).filter((l) => l.startsWith('      ')));
  }
  return lines.map((l) => `    ${l}\n`).join('');
}

function nodeLabel(node: string): string {
  const r = spawnSync(node, ['-p', 'process.version'], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? `Node ${r.stdout.trim()}` : `${node} (does not run: ${r.error?.message ?? r.stderr.trim()})`;
}

function unitName(u: Unit): string {
  return `${u.suite}${u.file === undefined ? '' : `/${u.file}`} on ${u.label}`;
}

/** One uvu process; its output goes to `write` as it comes. */
function runUnit(u: Unit, lane: number, write: (s: string) => void): Promise<Outcome> {
  return new Promise((resolve) => {
    const pattern = u.file === undefined ? '^.*\\.test\\.js$' : `^${u.file.replace(/\./g, '\\.')}$`;
    // A test that starts `node` by name gets the same Node as the one running it.
    // The lane picks the block of ports its files' servers listen on (freePort in test/helpers/procs.ts).
    const env = { ...process.env, ...u.env, MCRELAY_TEST_LANE: String(lane), PATH: `${path.dirname(u.node)}${path.delimiter}${process.env.PATH ?? ''}` };
    const child = spawn(u.node, [uvu, path.join(here, u.suite), pattern], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    const take = (d: Buffer): void => { out += d.toString(); write(d.toString()); };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const limit = u.file === undefined ? SUITE_TIMEOUT_MS : FILE_TIMEOUT_MS;
    const timer = setTimeout(() => {
      write(`\n[${unitName(u)}] did not finish within ${limit / 60000} minutes; killed\n`);
      child.kill('SIGKILL');
    }, limit);
    const done = (code: number | null): void => {
      clearTimeout(timer);
      // eslint-disable-next-line no-control-regex
      const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
      const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? NaN);
      const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? NaN);
      if (Number.isNaN(total) || Number.isNaN(passed)) {
        // A crash before uvu's summary: count the unit as one failure.
        resolve({ passed: 0, failed: 1, detail: failureDetail(plain.slice(-4000)) });
        return;
      }
      // uvu leaves skipped tests out of Total.
      const failed = total - passed;
      const counted = failed > 0 || code === 0 ? failed : 1;
      resolve({ passed, failed: counted, detail: counted > 0 ? failureDetail(plain) : '' });
    };
    child.on('error', (err) => { write(`\n[${unitName(u)}] ${err.message}\n`); done(null); });
    child.on('close', done);
  });
}

function slowRank(u: Unit): number {
  const i = SLOW_FIRST.findIndex((s) => `${u.suite}/${u.file ?? ''}`.includes(s));
  return i === -1 ? SLOW_FIRST.length : i;
}

const args = process.argv.slice(2);
const others: string[] = [];
let jobs = 1;
let portable = false;
const named: string[] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (a === '--node') others.push(path.resolve(args[++i] ?? ''));
  else if (a === '--jobs') jobs = Math.max(1, Number(args[++i]) || 1);
  else if (a === '--portable') portable = true;
  else named.push(a);
}
const suites = named.length > 0 ? named : SUITES;

const plan: Unit[] = [];
const nodes: Array<{ node: string; suites: string[]; io?: string; env?: NodeJS.ProcessEnv }> = [
  { node: process.execPath, suites },
  ...others.map((node) => ({ node, suites: suites.filter((s) => OTHER_NODE_SUITES.includes(s)), env: FEW_CUTS })),
];
if (portable) nodes.push({ node: process.execPath, suites: suites.filter((s) => s === 'integration'), io: 'portable' });
for (const { node, suites: its, io, env: nodeEnv } of nodes) {
  const label = io === undefined ? nodeLabel(node) : `${nodeLabel(node)}, --io ${io}`;
  const env = io === undefined ? nodeEnv : { MCRELAY_TEST_IO: io };
  for (const suite of its) {
    const dir = path.join(here, suite);
    if (!existsSync(dir)) {
      process.stdout.write(`no suite folder ${suite}/\n`);
      continue;
    }
    if (jobs === 1) plan.push({ node, label, suite, env });
    else {
      const files = readdirSync(dir).filter((f) => f.endsWith('.test.js'));
      for (const file of files.sort()) plan.push({ node, label, suite, file, env });
    }
  }
}
// Stable: within a rank, the order above (suite by suite, Node by Node).
if (jobs > 1) plan.sort((a, b) => slowRank(a) - slowRank(b));

let passed = 0;
let failed = 0;
const failures: string[] = [];
let next = 0;
async function lane(id: number): Promise<void> {
  while (next < plan.length) {
    const u = plan[next++]!;
    let r: Outcome;
    if (jobs === 1) {
      process.stdout.write(`\n== ${unitName(u)}\n`);
      r = await runUnit(u, id, (s) => process.stdout.write(s));
    } else {
      let buf = '';
      const started = Date.now();
      r = await runUnit(u, id, (s) => { buf += s; });
      process.stdout.write(`\n== ${unitName(u)} (${((Date.now() - started) / 1000).toFixed(1)} s)\n${buf}`);
    }
    passed += r.passed;
    failed += r.failed;
    if (r.failed > 0) failures.push(`${unitName(u)}: ${r.failed} failed\n${r.detail}`);
  }
}
await Promise.all(Array.from({ length: Math.min(jobs, plan.length) }, (_, id) => lane(id)));
if (failures.length > 0) process.stdout.write(`\nfailed:\n${failures.map((f) => `  ${f}`).join('')}`);
process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
process.exitCode = failed === 0 ? 0 : 1;
