// Printing the end-to-end results: one table per scenario (text for the
// terminal, markdown for bench/results/latest.md), and the goals of issue 3
// read off the measured numbers.
import type { MicroRow } from '../micro/suite.js';
import { int, markdownTable, num, textTable } from '../table.js';
import type { CompareResult, ScenarioResult } from './compare.js';
import { BINARY, CONNS1000, HEADLINE, TLS } from './scenarios.js';
import type { TargetSummary } from './summary.js';

const HEAD = [
  'target', 'ops/s', '± %', 'x memcached', 'x twemproxy', 'x mcproxy', 'p50 ms', 'p99 ms', 'p99 x twem', 'p99 x mcp',
  'proxy CPU µs/op', 'CPU x twem', 'proxy RSS MiB', 'memcached CPU µs/op', 'load CPU %', 'other CPU %',
];

function ratio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}x` : '-';
}

function row(t: TargetSummary): string[] {
  return [
    t.errors > 0 ? `${t.label} (${t.errors} errors)` : t.label,
    int(t.opsPerSec),
    num(t.spreadPercent, 1),
    ratio(t.opsVsMemcached),
    ratio(t.opsVsTwemproxy),
    ratio(t.opsVsMcproxy),
    num(t.p50, 3),
    num(t.p99, 3),
    ratio(t.p99VsTwemproxy),
    ratio(t.p99VsMcproxy),
    num(t.proxyCpuUsPerOp, 2),
    ratio(t.cpuVsTwemproxy),
    num(t.proxyRssBytes / 1048576, 1),
    num(t.backendCpuUsPerOp, 2),
    num(t.loadCpuPercent, 0),
    num(t.otherCpuPercent, 0),
  ];
}

/** Targets during whose runs the load generator's threads were nearly all busy (it may have been the limit). */
function saturationNote(r: ScenarioResult): string {
  const limit = 90 * r.scenario.threads;
  const hot = r.targets.filter((t) => t.loadCpuPercent >= limit).map((t) => `${t.label} (${t.loadCpuPercent.toFixed(0)} %)`);
  if (hot.length === 0) return '';
  return `Load generator near saturation (>= ${limit} % CPU for ${r.scenario.threads} load thread${r.scenario.threads > 1 ? 's' : ''}) against: ${hot.join(', ')}; those ops/s may be limited by the load generator.\n`;
}

export function formatScenario(r: ScenarioResult, style: 'text' | 'markdown'): string {
  const body = r.targets.map(row);
  const note = saturationNote(r);
  if (style === 'markdown') return markdownTable(HEAD, body) + (note === '' ? '' : `\n${note}`);
  return `${r.scenario.name}: ${r.scenario.description}\n${textTable(HEAD, body)}${note}`;
}

export interface Goal {
  goal: string;
  measured: string;
  met: boolean | null;
}

function find(c: CompareResult, scenario: string, id: string): TargetSummary | undefined {
  return c.scenarios.find((s) => s.scenario.name === scenario)?.targets.find((t) => t.id === id);
}

/**
 * The speed goals one bench run can check: issue 17 (against twemproxy, by
 * memtier's count) and issue 19 (against memcached's own proxy), both for
 * mcrelay --workers 1; the binary one of issue 14; the TLS one of issue 18; the
 * micro ones of issue 3.
 */
export function goals(c: CompareResult | null, micro: readonly MicroRow[] | null): Goal[] {
  const out: Goal[] = [];
  const check = (goal: string, value: number, ok: (v: number) => boolean, show: (v: number) => string): void => {
    out.push({ goal, measured: Number.isFinite(value) ? show(value) : 'not measured', met: Number.isFinite(value) ? ok(value) : null });
  };
  if (c !== null) {
    const w1 = (scenario: string): TargetSummary | undefined => find(c, scenario, 'mcrelay-w1');
    const of = (a: TargetSummary | undefined, b: TargetSummary | undefined, f: (t: TargetSummary) => number): number =>
      a !== undefined && b !== undefined ? f(a) / f(b) : NaN;
    const atLeast = (x: number) => (v: number): boolean => v >= x;
    const atMost = (x: number) => (v: number): boolean => v <= x;
    const ops = (t: TargetSummary): number => t.opsPerSec;
    const h = w1(HEADLINE);
    check('headline ops/s >= 1.15x twemproxy (17)', h?.opsVsTwemproxy ?? NaN, atLeast(1.15), ratio);
    check('headline p99 <= 1.0x twemproxy (17)', h?.p99VsTwemproxy ?? NaN, atMost(1.0), ratio);
    check('headline proxy CPU/op <= 1.0x twemproxy (17)', h?.cpuVsTwemproxy ?? NaN, atMost(1.0), ratio);
    check('headline with a backup pool >= 1.05x twemproxy without one (17)',
      of(find(c, HEADLINE, 'mcrelay-w1-backup'), find(c, HEADLINE, 'twemproxy'), ops), atLeast(1.05), ratio);
    check('mget10 ops/s >= 1.15x twemproxy (17)', w1('mget10')?.opsVsTwemproxy ?? NaN, atLeast(1.15), ratio);
    check('mget10 proxy CPU/op <= 1.0x twemproxy (17)', w1('mget10')?.cpuVsTwemproxy ?? NaN, atMost(1.0), ratio);
    check('writes1to1 ops/s >= 1.10x twemproxy (17)', w1('writes1to1')?.opsVsTwemproxy ?? NaN, atLeast(1.10), ratio);
    check('values4k ops/s >= 1.0x twemproxy (17)', w1('values4k')?.opsVsTwemproxy ?? NaN, atLeast(1.0), ratio);
    check('pipeline16 ops/s >= 1.5x twemproxy (17)', w1('pipeline16')?.opsVsTwemproxy ?? NaN, atLeast(1.5), ratio);
    check('conns1000 ops/s >= 1.0x twemproxy (17)', w1(CONNS1000)?.opsVsTwemproxy ?? NaN, atLeast(1.0), ratio);
    check('conns1000 p99 <= 1.0x twemproxy (17)', w1(CONNS1000)?.p99VsTwemproxy ?? NaN, atMost(1.0), ratio);
    check('RSS under the headline <= 70 MB (17)', (h?.proxyRssBytes ?? NaN) / 1e6, atMost(70), (v) => `${v.toFixed(1)} MB`);
    check('headline ops/s >= 1.0x memcached proxy (19)', h?.opsVsMcproxy ?? NaN, atLeast(1.0), ratio);
    check('headline with a backup pool >= 1.0x memcached proxy with one (19)',
      of(find(c, HEADLINE, 'mcrelay-w1-backup'), find(c, HEADLINE, 'mcproxy-backup'), ops), atLeast(1.0), ratio);
    check('headline p99 <= 1.0x memcached proxy (19)', h?.p99VsMcproxy ?? NaN, atMost(1.0), ratio);
    check('pipeline16 ops/s > 1.0x memcached proxy (19)', w1('pipeline16')?.opsVsMcproxy ?? NaN, (v) => v > 1.0, ratio);
    check('mget10 ops/s > 1.0x memcached proxy (19)', w1('mget10')?.opsVsMcproxy ?? NaN, (v) => v > 1.0, ratio);
    check('binary ops/s >= 0.9x text, same run (14)', of(w1(BINARY), h, ops), atLeast(0.9), ratio);
    // Both over TLS in the tls scenario: x memcached is to memcached -Z, same client, same run.
    check('tls: mcrelay over TLS >= 0.8x memcached over TLS (18)', w1(TLS)?.opsVsMemcached ?? NaN, atLeast(0.8), ratio);
  }
  if (micro !== null) {
    const ops = (task: string): number => micro.find((m) => m.task === task)?.opsPerSec ?? NaN;
    const perSec = (v: number): string => `${(v / 1e6).toFixed(1)} M/s`;
    check('single-key get requests parsed >= 5 M/s (3)', ops('get, 1 key'), (v) => v >= 5e6, perSec);
    check('16 B keys hashed and routed >= 10 M/s (3)', ops('Router.route jump 16 B (4 masters + 2 backups)'), (v) => v >= 10e6, perSec);
    check('64 B keys hashed and routed >= 10 M/s (3)', ops('Router.route jump 64 B'), (v) => v >= 10e6, perSec);
  }
  return out;
}

export function formatGoals(list: readonly Goal[], style: 'text' | 'markdown'): string {
  const head = ['goal (issue)', 'measured', 'met'];
  const body = list.map((g) => [g.goal, g.measured, g.met === null ? '-' : g.met ? 'yes' : 'NO']);
  return style === 'markdown' ? markdownTable(head, body) : textTable(head, body);
}

export const COLUMNS_NOTE = [
  'ops/s: median over the rounds (a multi-key get is one op); ± %: half the range of the rounds, in % of the median;',
  'x memcached / x twemproxy / x mcproxy: ratio of the medians (mcproxy: memcached\'s own proxy, -t 1); p50/p99: medians of the rounds\' percentiles (ms);',
  'proxy CPU µs/op: utime+stime of the proxy process (all threads) from /proc/<pid>/stat over a run, divided by its ops;',
  'proxy RSS: VmRSS from /proc/<pid>/status after the last round; memcached CPU µs/op: both memcached servers;',
  'load CPU %: the load generator\'s own CPU over a run, in % of one core;',
  'other CPU %: CPU used meanwhile by processes the bench did not start (/proc/stat minus its own), in % of one core: noise.',
].join('\n');
