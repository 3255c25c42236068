// npm run bench: the micro-benchmarks, then the end-to-end comparison of
// memcached direct, mcrelay (1 worker, 2 workers, with a backup pool),
// twemproxy and memcached's own proxy. Writes bench/results/<timestamp>.json; a full run (every scenario,
// not --quick) also writes bench/results/latest.md.
//
//   node dist/bench/run.js [--quick] [--scenario NAME]... [--rounds N] [--seconds N]
//                          [--warmup N] [--targets id,id] [--mcproxy PATH] [--only micro|e2e|restore|placement] [--report FILE]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ALL_TARGETS, compare, type CompareResult } from './e2e/compare.js';
import { percent, placementBench, troubleNote, type PlacementResult } from './e2e/placement.js';
import { restoreBench, type RestoreResult } from './e2e/restore.js';
import { COLUMNS_NOTE, formatGoals, formatScenario, goals } from './e2e/report.js';
import { BINARY, defaultRounds, DEFAULT_ROUNDS, findScenario, GOAL_ROUNDS, GOAL_SCENARIOS, HEADLINE, SCENARIOS, TLS, type Scenario } from './e2e/scenarios.js';
import { useMcproxy, type TargetId } from './e2e/targets.js';
import { environment, repoRoot, type Environment } from './environment.js';
import { healthBench } from './micro/health.bench.js';
import { requestParserBench } from './micro/request-parser.bench.js';
import { responseParserBench } from './micro/response-parser.bench.js';
import { routingBench } from './micro/routing.bench.js';
import { DEFAULT_MICRO, formatMicroTable, markdownMicroTable, type MicroOptions, type MicroRow } from './micro/suite.js';

const ONLY = ['micro', 'e2e', 'restore', 'placement'] as const;
type Only = typeof ONLY[number];

interface Args {
  quick: boolean;
  scenarios: string[];
  /** 0: each scenario's default (defaultRounds) */
  rounds: number;
  seconds: number;
  warmup: number;
  targets: TargetId[];
  only: Only | null;
  /** re-render latest.md from this results JSON instead of running */
  report: string | null;
}

const USAGE = `usage: npm run bench -- [options]
  --quick            the headline scenario only, short rounds (${DEFAULT_ROUNDS} x 2 s), short micro runs
  --scenario NAME    run only this scenario (repeatable); one of: ${SCENARIOS.map((s) => s.name).join(', ')}
  --rounds N         rounds per scenario (default ${DEFAULT_ROUNDS}, ${GOAL_ROUNDS} for ${[...GOAL_SCENARIOS, BINARY, TLS].join(', ')}, which the goals read;
                     at least 3 for a median and spread)
  --seconds N        seconds per target per round (default 5)
  --warmup N         seconds of unrecorded load per target before the rounds (default 1)
  --targets LIST     comma-separated subset of: ${ALL_TARGETS.join(', ')}
  --mcproxy PATH     the memcached built with --enable-proxy for the mcproxy targets
                     (default: memcached-proxy on PATH; without one they are skipped)
  --only micro|e2e|restore|placement
                     run only the micro-benchmarks, the end-to-end comparison, the restore line
                     or the placement line (magent -> jump on 4 masters)
  --report FILE      write latest.md from a stored full run (bench/results/<timestamp>.json), run nothing
`;

function parse(argv: readonly string[]): Args {
  const a: Args = { quick: false, scenarios: [], rounds: 0, seconds: 0, warmup: -1, targets: [...ALL_TARGETS], only: null, report: null };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.includes('=') ? argv[i]!.split(/=(.*)/s, 2) as [string, string] : [argv[i]!, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const count = (min: number): number => {
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new Error(`${flag} must be an integer >= ${min}, not '${v}'`);
      return n;
    };
    switch (flag) {
      case '--quick': a.quick = true; break;
      case '--scenario': a.scenarios.push(...value().split(',')); break;
      case '--rounds': a.rounds = count(1); break;
      case '--seconds': a.seconds = count(1); break;
      case '--warmup': a.warmup = count(0); break;
      case '--targets': {
        const ids = value().split(',');
        for (const id of ids) if (!ALL_TARGETS.includes(id as TargetId)) throw new Error(`unknown target '${id}' (known: ${ALL_TARGETS.join(', ')})`);
        a.targets = ids as TargetId[];
        break;
      }
      case '--only': {
        const v = value();
        if (!ONLY.includes(v as Only)) throw new Error(`--only takes ${ONLY.join(', ')}, not '${v}'`);
        a.only = v as Only;
        break;
      }
      case '--report': a.report = value(); break;
      case '--mcproxy': useMcproxy(value()); break;
      case '-h': case '--help': process.stdout.write(USAGE); process.exit(0); break;
      default: throw new Error(`unknown option '${flag}'\n${USAGE}`);
    }
  }
  if (a.quick && a.scenarios.length === 0) a.scenarios = [HEADLINE];
  if (a.quick && a.rounds === 0) a.rounds = DEFAULT_ROUNDS;
  if (a.seconds === 0) a.seconds = a.quick ? 2 : 5;
  if (a.warmup < 0) a.warmup = 1;
  return a;
}

async function micro(options: MicroOptions): Promise<MicroRow[]> {
  const rows: MicroRow[] = [];
  for (const suite of [requestParserBench, responseParserBench, routingBench, healthBench]) {
    const r = await suite(options);
    rows.push(...r);
    process.stdout.write(formatMicroTable(r) + '\n');
  }
  return rows;
}

function loadToolNote(c: CompareResult): string {
  if (c.loadgenCheck === null) {
    return `Load generator: ${c.loadTool}. memtier_benchmark was not on PATH, so the load generator could not be ` +
      'compared against it (issue 3 asks for >= 90 % of memtier\'s ops/s against memcached direct); its own CPU use per run is in the "load CPU %" column.';
  }
  if (c.loadgenCheck.length === 0) return `Load generator: ${c.loadTool} (no memcached direct target in this run, so loadgen was not compared with it).`;
  const lines = c.loadgenCheck.map((k) => `${k.scenario}: loadgen ${Math.round(k.loadgenOpsPerSec)} ops/s vs memtier ${Math.round(k.memtierOpsPerSec)} ops/s = ${(100 * k.ratio).toFixed(0)} %`);
  return `Load generator: ${c.loadTool}. Our loadgen against memtier_benchmark on memcached direct, same settings: ${lines.join('; ')}.`;
}

/** "7 rounds for headline, pipeline16; 3 for the others" */
function roundsNote(c: CompareResult): string {
  const byCount = new Map<number, string[]>();
  for (const s of c.scenarios) byCount.set(s.rounds, [...(byCount.get(s.rounds) ?? []), s.scenario.name]);
  const counts = [...byCount.keys()].sort((x, y) => y - x);
  if (counts.length === 1) return `${counts[0]} rounds per scenario`;
  return counts.map((n, i) => i === counts.length - 1 ? `${n} for the others` : `${n} rounds for ${byCount.get(n)!.join(', ')}`).join('; ');
}

function latestMarkdown(
  env: Environment, a: Args, c: CompareResult, microRows: MicroRow[] | null, restore: RestoreResult | null = null, placement: PlacementResult | null = null,
): string {
  const out: string[] = [];
  out.push('# mcrelay benchmark: latest full run', '');
  out.push(`- date: ${env.date}`);
  out.push(`- commit: ${env.commit}`);
  out.push(`- machine: ${env.nproc} CPUs (${env.cpuModel}), Linux ${env.kernel}`);
  out.push(`- node ${env.node}, ${env.memcached} (\`-t 1\`), twemproxy: ${c.twemproxy === 'measured' ? env.twemproxy : c.twemproxy}, memcached's proxy: ${c.mcproxy ?? 'not in this run'}`);
  out.push(`- ${loadToolNote(c)}`);
  out.push(`- ${roundsNote(c)}, ${a.seconds} s per target per round, targets alternating within each round, ${a.warmup} s warm-up per target; servers restarted and filled with every key (1..100,000) per scenario.`);
  out.push(`- regenerate: \`npm run bench\` (this file is written by full runs only).`, '');
  out.push('Columns:', '', ...COLUMNS_NOTE.split('\n').map((l) => `- ${l}`), '');
  out.push('## Goals', '', formatGoals(goals(c, microRows), 'markdown'));
  out.push('## End to end', '');
  for (const s of c.scenarios) {
    out.push(`### ${s.scenario.name}: ${s.scenario.description}`, '', `\`${s.loadArgs}\``, '', formatScenario(s, 'markdown'));
  }
  if (restore !== null) {
    out.push('## Restore of a returning master', '',
      `100,000 keys, the master killed and restarted empty, mcrelay --workers 1 with a backup: ${restore.keysCopied} keys copied back in ` +
      `${restore.seconds.toFixed(1)} s (${Math.round(restore.keysPerSecond)} keys/s); the headline load ran at ${Math.round(restore.opsDuring)} ops/s ` +
      `during it, ${(100 * restore.share).toFixed(0)} % of the ${Math.round(restore.opsBefore)} ops/s before.`, '');
  }
  if (placement !== null) out.push('## A placement change: magent -> jump on 4 masters', '', placementSentence(placement), '');
  if (microRows !== null) {
    out.push('## Micro-benchmarks', '', `ns/op is per request (parser), per reply (response parser), per key (routing) or per read (health table); ops/s and ns/op are the median of ${DEFAULT_MICRO.rounds} rounds (each task sampled ${DEFAULT_MICRO.time / 1000} s per round, the tasks of a suite alternating); ± % is half the range of the rounds, in % of the median.`, '');
    out.push(markdownMicroTable(microRows));
  }
  return out.join('\n');
}

function placementSentence(p: PlacementResult): string {
  return `${p.keys.toLocaleString('en-US')} keys on ${p.masters} masters and a backup, mcrelay --workers 1 reloaded (SIGHUP) from \`distribution: magent\` ` +
    `to \`jump\` (\`switch_delay_seconds: 0\`, restore at its default ${p.restoreKeysPerSecondSetting} keys/s per server): ${p.keysMoved} keys moved ` +
    `to another master; ${p.keysCopied} were restored from the backup (${p.keysSkipped} skipped: already there, written by the load or filled by warm-up), every restore over ` +
    `${p.seconds.toFixed(1)} s after the SIGHUP (${Math.round(p.keysPerSecond)} keys/s; the longest restore ${p.longestRestoreSeconds.toFixed(1)} s). ` +
    `The headline load ran at ${Math.round(p.opsDuring)} ops/s during it, ${(100 * p.share).toFixed(0)} % of the ${Math.round(p.opsBefore)} ops/s before; ` +
    `hits ${percent(p.hitRatioDuring)} of the keys it read (before: ${percent(p.hitRatioBefore)}).` +
    (troubleNote(p) !== '' ? ` **${troubleNote(p)}.**` : '');
}

/**
 * JSON.stringify replacer: a NaN (not measured, e.g. memcached direct's proxy
 * RSS) is left out rather than written as null, so that --report reads it back
 * as undefined and prints '-' (null / 1048576 would print 0.0).
 */
function notMeasured(_key: string, v: unknown): unknown {
  return typeof v === 'number' && Number.isNaN(v) ? undefined : v;
}

interface Stored {
  environment: Environment; options: Args; micro: MicroRow[] | null; e2e: CompareResult | null;
  /** absent in runs from before the line */
  restore?: RestoreResult | null; placement?: PlacementResult | null;
}

function rerender(file: string): void {
  const stored = JSON.parse(readFileSync(file, 'utf8')) as Stored;
  if (stored.e2e === null || stored.micro === null) throw new Error(`${file} is not a full run (it lacks the micro or the end-to-end part)`);
  // Runs from before per-scenario rounds stored one count in the options.
  for (const r of stored.e2e.scenarios) r.rounds ??= stored.options.rounds;
  const md = join(repoRoot(), 'bench', 'results', 'latest.md');
  writeFileSync(md, latestMarkdown(stored.environment, stored.options, stored.e2e, stored.micro, stored.restore ?? null, stored.placement ?? null));
  process.stdout.write(`latest: ${md} (from ${file})\n`);
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  if (a.report !== null) return rerender(a.report);
  const env = environment();
  process.stdout.write(`mcrelay bench: commit ${env.commit}, ${env.nproc} CPUs (${env.cpuModel}), node ${env.node}\n\n`);

  const microRows = a.only !== null && a.only !== 'micro' ? null : await micro(a.quick ? { time: 300, warmupTime: 100, rounds: 1 } : DEFAULT_MICRO);

  let c: CompareResult | null = null;
  if (a.only === null || a.only === 'e2e') {
    const scenarios: Scenario[] = a.scenarios.length > 0 ? a.scenarios.map(findScenario) : [...SCENARIOS];
    c = await compare({
      scenarios, rounds: (s) => a.rounds > 0 ? a.rounds : defaultRounds(s), seconds: a.seconds, warmupSeconds: a.warmup, targets: a.targets,
      log: (line) => process.stdout.write(`${line}\n`),
    });
    process.stdout.write(`${loadToolNote(c)}\n\n${COLUMNS_NOTE}\n\n`);
  }
  if (a.only !== 'restore' && a.only !== 'placement') process.stdout.write(formatGoals(goals(c, microRows), 'text'));
  const line = (l: string): void => { process.stdout.write(`${l}\n`); };
  const restore = (a.only === null && !a.quick) || a.only === 'restore' ? await restoreBench(line) : null;
  const placement = (a.only === null && !a.quick) || a.only === 'placement' ? await placementBench(line) : null;

  const dir = join(repoRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const stamp = env.date.replace(/[:.]/g, '-');
  const jsonFile = join(dir, `${stamp}.json`);
  writeFileSync(jsonFile, JSON.stringify({ environment: env, options: a, micro: microRows, e2e: c, restore, placement }, notMeasured, 2) + '\n');
  process.stdout.write(`\nresults: ${jsonFile}\n`);
  const full = c !== null && microRows !== null && !a.quick && a.scenarios.length === 0 && a.targets.length === ALL_TARGETS.length;
  if (full) {
    const md = join(dir, 'latest.md');
    writeFileSync(md, latestMarkdown(env, a, c!, microRows, restore, placement));
    process.stdout.write(`latest: ${md}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
});
