// The fuzz loops, shared by `npm run fuzz` (test/fuzz/run.ts) and the CI slice
// (test/unit/fuzz-slice.test.ts). Input i of seed s is generated from Rng(s, i)
// alone, so a run can be split over workers by index and any failure replayed
// from (seed, index). Failures are grouped by class (property and the shape of
// the first difference) and each class keeps its first example, shrunk.
import { randomCuts, Rng } from './rng.js';
import { KIND_NAMES, pickKind, requestStream } from './request-gen.js';
import { RequestChecker, type Failure } from './request-check.js';
import { replyStream, type ReplyStream } from './response-gen.js';
import { ResponseChecker } from './response-check.js';

export type Target = 'request' | 'response';

export interface Budget {
  seed: number;
  /** inputs to run: indexes first, first+step, ... below first+count */
  first: number;
  count: number;
  step: number;
  /** stop early at this Date.now() */
  deadline: number;
  /** the --max-item-size the request parser is built with */
  maxItemSize: number;
}

export interface FailureClass {
  property: string;
  key: string;
  count: number;
  /** first example: where it came from and its shrunk form */
  seed: number;
  index: number;
  kind: string;
  input: string;
  cuts: number[];
  detail: string;
}

export interface Report {
  target: Target;
  inputs: number;
  byKind: Record<string, number>;
  bytes: number;
  ms: number;
  timedOut: boolean;
  failures: FailureClass[];
}

/** What makes two failures the same bug: the property and the shape of the first difference. */
export function classify(f: Failure): string {
  const first = f.detail.split('\n').slice(0, 2).join(' / ');
  return `${f.property} :: ${first
    .replace(/"(?:[^"\\]|\\.)*"/g, '".."')
    .replace(/\[[^\]]*\]/g, '[..]')
    .replace(/\d+/g, 'N')}`;
}

function record(classes: Map<string, FailureClass>, f: Failure, ex: Omit<FailureClass, 'property' | 'key' | 'count' | 'detail'>, shrink: () => { input: string; cuts: number[]; detail: string }): void {
  const key = classify(f);
  const c = classes.get(key);
  if (c !== undefined) { c.count++; return; }
  const small = shrink();
  classes.set(key, { property: f.property, key, count: 1, ...ex, ...small });
}

/**
 * Shrinks an input while `fails` still fails with the same class: first
 * without cuts, then by deleting ever smaller ranges of bytes.
 */
export function shrinkText(text: string, cuts: number[], fails: (t: string, c: number[]) => Failure | null, key: string): { input: string; cuts: number[]; detail: string } {
  const same = (t: string, c: number[]): Failure | null => {
    const f = fails(t, c);
    return f !== null && classify(f) === key ? f : null;
  };
  let best = { input: text, cuts, detail: fails(text, cuts)?.detail ?? '' };
  if (cuts.length > 0) {
    const f = same(text, []);
    if (f !== null) best = { input: text, cuts: [], detail: f.detail };
  }
  let budget = 3000;
  // passes of ever smaller deletions, again while a pass made the input shorter
  for (let progress = true; progress && budget > 0;) {
    progress = false;
    for (let size = Math.max(1, best.input.length >> 1); size >= 1 && budget > 0; size = size >> 1) {
      for (let at = 0; at + size <= best.input.length && budget > 0;) {
        budget--;
        const t = best.input.slice(0, at) + best.input.slice(at + size);
        const c = best.cuts.filter((x) => x < at).concat(best.cuts.filter((x) => x >= at + size).map((x) => x - size)).filter((x) => x > 0 && x < t.length);
        const f = same(t, c);
        if (f !== null) { best = { input: t, cuts: c, detail: f.detail }; progress = true; } else at += size;
      }
    }
  }
  return best;
}

export function requestInput(seed: number, index: number, maxItemSize: number): { kind: string; text: string; cuts: number[] } {
  const rng = new Rng(seed, index);
  const kind = pickKind(rng);
  const text = requestStream(rng, kind, { maxItemSize });
  return { kind: KIND_NAMES[kind], text, cuts: randomCuts(rng, text.length) };
}

export function responseInput(seed: number, index: number): { kind: string; input: ReplyStream; cuts: number[] } {
  const rng = new Rng(seed ^ 0x5bd1e995, index);
  const kind = rng.weighted([3, 5, 2]);
  const input = replyStream(rng, kind);
  return { kind: KIND_NAMES[kind]!, input, cuts: randomCuts(rng, input.text.length) };
}

/** Every how many inputs an input is also run interleaved with the one before it through one parser. */
const SHARED_EVERY = 4;

/**
 * The loop both targets share: inputs of the budget's slice until its deadline,
 * counted by kind; each one checked alone (`check`) and every SHARED_EVERY-th
 * also after the one before it through one parser (`checkPair`). Both record
 * their failures in `classes`.
 */
function fuzzLoop<T extends { text: string; cuts: number[] }>(
  b: Budget,
  target: Report['target'],
  input: (index: number) => T & { kind: string },
  check: (x: T & { kind: string }, index: number, classes: Map<string, FailureClass>) => void,
  checkPair: (prev: T, x: T & { kind: string }, index: number, classes: Map<string, FailureClass>) => void,
): Report {
  const classes = new Map<string, FailureClass>();
  const byKind: Record<string, number> = { valid: 0, mutated: 0, random: 0 };
  const t0 = performance.now();
  let inputs = 0;
  let bytes = 0;
  let timedOut = false;
  let prev: T | null = null;
  for (let i = b.first; i < b.first + b.count; i += b.step) {
    if ((inputs & 255) === 0 && Date.now() > b.deadline) { timedOut = true; break; }
    const x = input(i);
    inputs++;
    bytes += x.text.length;
    byKind[x.kind]!++;
    check(x, i, classes);
    if (prev !== null && i % SHARED_EVERY === 0) checkPair(prev, x, i, classes);
    prev = x;
  }
  return { target, inputs, byKind, bytes, ms: performance.now() - t0, timedOut, failures: [...classes.values()] };
}

export function fuzzRequests(b: Budget): Report {
  const checker = new RequestChecker(b.maxItemSize);
  return fuzzLoop(b, 'request', (i) => requestInput(b.seed, i, b.maxItemSize),
    ({ kind, text, cuts }, i, classes) => {
      const f = checker.check(text, cuts);
      if (f !== null) {
        record(classes, f, { seed: b.seed, index: i, kind, input: text, cuts },
          () => shrinkText(text, cuts, (t, c) => checker.check(t, c), classify(f)));
      }
    },
    (p, { kind, text, cuts }, i, classes) => {
      const g = checker.checkShared(p.text, p.cuts, text, cuts);
      if (g !== null) {
        record(classes, g, { seed: b.seed, index: i, kind: `${kind} after the previous input`, input: `${p.text}\u241e${text}`, cuts },
          () => ({ input: `A: ${JSON.stringify(p.text)} cuts ${JSON.stringify(p.cuts)}\nB: ${JSON.stringify(text)}`, cuts, detail: g.detail }));
      }
    });
}

export function fuzzResponses(b: Budget): Report {
  const checker = new ResponseChecker();
  return fuzzLoop(b, 'response', (i) => {
    const { kind, input, cuts } = responseInput(b.seed, i);
    return { kind, input, cuts, text: input.text };
  },
  ({ kind, input, cuts }, i, classes) => {
    const f = checker.check(input, cuts);
    if (f !== null) {
      const fails = (t: string, c: number[]): Failure | null => checker.check({ text: t, kinds: input.kinds, units: t === input.text ? input.units : null }, c);
      record(classes, f, { seed: b.seed, index: i, kind, input: input.text, cuts: [...cuts] },
        () => ({ ...shrinkText(input.text, [...cuts], fails, classify(f)), input: `kinds ${JSON.stringify(input.kinds)} ${input.text}` }));
    }
  },
  (p, { kind, input, cuts }, i, classes) => {
    const g = checker.checkShared(p.input, p.cuts, input, cuts);
    if (g !== null) {
      record(classes, g, { seed: b.seed, index: i, kind, input: input.text, cuts },
        () => ({ input: `A: ${JSON.stringify(p.input)}\nB: ${JSON.stringify(input)}`, cuts, detail: g.detail }));
    }
  });
}

/** Sums reports of the same target from several workers (classes merged by key). */
export function mergeReports(reports: Report[]): Report {
  const out: Report = { target: reports[0]!.target, inputs: 0, byKind: {}, bytes: 0, ms: 0, timedOut: false, failures: [] };
  const classes = new Map<string, FailureClass>();
  for (const r of reports) {
    out.inputs += r.inputs;
    out.bytes += r.bytes;
    out.ms = Math.max(out.ms, r.ms);
    out.timedOut ||= r.timedOut;
    for (const [k, v] of Object.entries(r.byKind)) out.byKind[k] = (out.byKind[k] ?? 0) + v;
    for (const f of r.failures) {
      const c = classes.get(f.key);
      if (c === undefined) classes.set(f.key, { ...f });
      else { c.count += f.count; if (f.index < c.index) Object.assign(c, { ...f, count: c.count }); }
    }
  }
  out.failures = [...classes.values()].sort((a, b) => b.count - a.count);
  return out;
}

export function formatReport(r: Report): string {
  const secs = r.ms / 1000;
  const lines = [
    `${r.target} parser: ${r.inputs.toLocaleString('en')} inputs (${Object.entries(r.byKind).map(([k, v]) => `${v} ${k}`).join(', ')}), ` +
    `${(r.bytes / 1e6).toFixed(1)} MB, ${secs.toFixed(1)} s, ${Math.round(r.inputs / secs).toLocaleString('en')} inputs/s` +
    `${r.timedOut ? ' (stopped by the time limit)' : ''}; ${r.failures.length === 0 ? 'no failures' : `${r.failures.reduce((n, f) => n + f.count, 0)} failing inputs in ${r.failures.length} classes`}`,
  ];
  for (const f of r.failures) {
    lines.push('', `  [${f.count}x] ${f.property}`,
      `    first: seed ${f.seed} input ${f.index} (${f.kind}); replay with: npm run fuzz -- --seed ${f.seed} --replay ${r.target}:${f.index}`,
      `    shrunk input: ${JSON.stringify(f.input)}${f.cuts.length > 0 ? ` cut at ${JSON.stringify(f.cuts)}` : ' (whole)'}`,
      ...f.detail.split('\n').map((l) => `    ${l}`));
  }
  return lines.join('\n');
}
